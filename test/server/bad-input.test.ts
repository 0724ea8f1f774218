/**
 * Bad inputs get the documented status / close code, and the server keeps serving a healthy real
 * client (WebSocket and long polling) before and after each one.
 */
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { connect, longPolling, webSocket } from '../../src/index';
import type { WebSocketConstructor } from '../../src/env';
import { waitFor } from '../helpers/server';
import type { ServerOptions } from '../../server/options';
import {
  cleanupAll,
  defer,
  echo,
  expectRefusal,
  healthy,
  http,
  lpHandshake,
  rawWs,
  serve,
  upgradeStatus,
  type Healthy,
  type OwnServer,
} from '../helpers/raw';

afterEach(cleanupAll);

const FAST: ServerOptions = { pingInterval: 200, pingTimeout: 200, sessionTimeout: 500, pollTimeout: 300, allowedOrigins: '*' };

/** A server with a healthy client on each transport, both checked before the bad input. */
async function setup(options: ServerOptions = FAST): Promise<{ s: OwnServer; ws: Healthy; lp: Healthy; check(label: string): Promise<void> }> {
  const s = await serve(options);
  echo(s.rt);
  const ws = await healthy(s.url, webSocket);
  const lp = await healthy(s.url, longPolling);
  const check = async (label: string): Promise<void> => {
    await Promise.all([ws.exchange(label + '-ws'), lp.exchange(label + '-lp')]);
  };
  await check('before');
  return { s, ws, lp, check };
}

const MALFORMED: Array<[string, string]> = [
  ['not JSON', '{"t":"d",'],
  ['JSON that is not an object', '42'],
  ['an unknown frame type', '{"t":"z"}'],
  ['a data frame without a sequence number', '{"t":"d","d":"x"}'],
  ['a data frame with sequence number 0', '{"t":"d","s":0,"d":"x"}'],
  ['a data frame with a non-string payload', '{"t":"d","s":1,"d":5}'],
  ['a server-only frame (ping) from a client', '{"t":"p"}'],
];

describe('malformed frames', () => {
  for (const [what, line] of MALFORMED) {
    it(`POST with ${what} gets 400/4400`, async () => {
      const { s, check } = await setup();
      const lp = await lpHandshake(s.url);
      expectRefusal(await http('POST', lp.base, { body: line }), 400, 4400);
      // The session is over: the next POST names an unknown (closing) session or is ignored.
      await check('after');
    });
  }

  for (const [what, line] of MALFORMED) {
    it(`WebSocket message with ${what} gets a close frame 4400`, async () => {
      const { s, check } = await setup();
      const raw = rawWs(s.url + '/websocket?v=1');
      await raw.openFrame();
      raw.ws.send(line);
      expect((await raw.closeFrame()).c).toBe(4400);
      await raw.closed;
      await check('after');
    });
  }

  it('a bad line after good frames in one batch: the good ones are delivered, then 400/4400', async () => {
    const { s, check } = await setup();
    const got: string[] = [];
    s.rt.on('connection', (c) => c.on('message', (d) => got.push(String(d))));
    const lp = await lpHandshake(s.url);
    const body = ['{"t":"d","s":1,"d":"a"}', '{"t":"d","s":2,"d":"b"}', 'garbage'].join('\n');
    expectRefusal(await http('POST', lp.base, { body }), 400, 4400);
    expect(got).toEqual(['a', 'b']);
    await check('after');
  });

  it('a binary WebSocket message that is not a binary data frame gets a close frame 4400', async () => {
    const { s, check } = await setup();
    const raw = rawWs(s.url + '/websocket?v=1');
    await raw.openFrame();
    raw.ws.send(Buffer.from('{"t":"d","s":1,"d":"x"}'), { binary: true });
    expect((await raw.closeFrame()).c).toBe(4400);
    await raw.closed;
    await check('after');
  });

  // Regression guard: this once failed because after a protocol error the server sends the close frame, but then closes
  // the WebSocket with 1000 instead of the close frame's code: Connection.end() sends the close
  // frame through link.notify(), the session becomes 'closed', and link.end() calls
  // ws.close(1000); WsLink.refuse() then finds the socket CLOSING and does nothing.
  for (const [what, send, code] of [
    ['a malformed frame', (w: import('ws').WebSocket) => w.send('{"t":"z"}'), 4400],
    ['a binary message without a frame header', (w: import('ws').WebSocket) => w.send(Buffer.from('x'), { binary: true }), 4400],
    ['a data frame over maxPayload', (w: import('ws').WebSocket) => w.send(JSON.stringify({ t: 'd', s: 1, d: 'x'.repeat(2000) })), 4413],
  ] as const) {
    it(`the WebSocket close code after ${what} is ${code}, as in the close frame`, async () => {
      const s = await serve({ ...FAST, maxPayload: 1000 });
      const raw = rawWs(s.url + '/websocket?v=1');
      await raw.openFrame();
      send(raw.ws);
      expect((await raw.closeFrame()).c).toBe(code);
      expect((await raw.closed).code).toBe(code);
    });
  }
});

describe('sequence and ack errors', () => {
  it('a POST that skips a sequence number gets 409/4409; the session lives on and takes the right one', async () => {
    const { s, check } = await setup();
    const got: string[] = [];
    s.rt.on('connection', (c) => c.on('message', (d) => got.push(String(d))));
    const lp = await lpHandshake(s.url);
    expectRefusal(await http('POST', lp.base, { body: '{"t":"d","s":2,"d":"b"}' }), 409, 4409);
    expect((await http('POST', lp.base, { body: '{"t":"d","s":1,"d":"a"}\n{"t":"d","s":2,"d":"b"}' })).status).toBe(204);
    // A replay is dropped silently.
    expect((await http('POST', lp.base, { body: '{"t":"d","s":2,"d":"b"}' })).status).toBe(204);
    expect(got).toEqual(['a', 'b']);
    await check('after');
  });

  it('a WebSocket message that skips a sequence number gets close frame 4409, close code 4409, and the session can be resumed', async () => {
    const { s, check } = await setup();
    const raw = rawWs(s.url + '/websocket?v=1');
    const open = (await raw.openFrame()) as { sid: string; tok: string };
    raw.ws.send('{"t":"d","s":3,"d":"c"}');
    expect((await raw.closeFrame()).c).toBe(4409);
    expect((await raw.closed).code).toBe(4409);
    const again = rawWs(s.url + '/websocket?v=1&sid=' + encodeURIComponent(open.sid) + '&tok=' + encodeURIComponent(open.tok) + '&ack=0');
    expect(await again.openFrame()).toMatchObject({ sid: open.sid, r: 1, ack: 0 });
    await check('after');
  });

  it('an ack beyond what the server sent gets 400/4400 (POST) and a resume with such an ack gets 400 and leaves the session alone', async () => {
    const { s, check } = await setup();
    const lp = await lpHandshake(s.url);
    const q = 'sid=' + encodeURIComponent(lp.sid) + '&tok=' + encodeURIComponent(lp.tok);
    expectRefusal(await http('GET', s.url + '/long-polling?v=1&' + q + '&ack=5'), 400, 4400);
    expectRefusal(await http('GET', s.url + '/long-polling?v=1&' + q + '&ack=x'), 400, 4400);
    // Still there: a good resume works.
    const ok = await http('GET', s.url + '/long-polling?v=1&' + q + '&ack=0');
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body.split('\n')[0])).toMatchObject({ t: 'o', sid: lp.sid, r: 1 });
    expectRefusal(await http('POST', lp.base, { body: '{"t":"a","a":7}' }), 400, 4400);
    await check('after');
  });
});

describe('response headers', () => {
  it('every transport response and refusal is marked no-store', async () => {
    const { s, check } = await setup();
    const lp = await lpHandshake(s.url);
    const responses = [
      await http('GET', s.url + '/long-polling?v=1'),
      await http('POST', lp.base, { body: '{"t":"P"}' }),
      await http('GET', lp.base + '&ack=0'),
      await http('GET', s.url + '/long-polling?v=2'),
      await http('GET', s.url + '/nope'),
      await http('OPTIONS', s.url + '/long-polling'),
    ];
    for (const r of responses) expect(r.headers['cache-control']).toContain('no-store');
    expect(responses[0].headers['content-type']).toMatch(/^text\/plain/);
    await check('after');
  });
});

describe('unknown session, wrong token', () => {
  it('poll, POST and resume with an unknown session id get 404/4404', async () => {
    const { s, check } = await setup();
    const q = 'sid=AAAAAAAAAAAAAAAAAAAAAA&tok=BBBBBBBBBBBBBBBBBBBBBB';
    const base = s.url + '/long-polling?' + q;
    expectRefusal(await http('GET', base + '&ack=0'), 404, 4404);
    expectRefusal(await http('POST', base, { body: '{"t":"d","s":1,"d":"x"}' }), 404, 4404);
    expectRefusal(await http('GET', s.url + '/long-polling?v=1&' + q + '&ack=0'), 404, 4404);
    const raw = rawWs(s.url + '/websocket?v=1&' + q + '&ack=0');
    expect((await raw.closeFrame()).c).toBe(4404);
    expect((await raw.closed).code).toBe(4404);
    await check('after');
  });

  it('poll, POST and resume of a live session with a wrong token get 404/4404 and leave the session alone', async () => {
    const { s, check } = await setup();
    const lp = await lpHandshake(s.url);
    const bad = (tok: string): string => 'sid=' + encodeURIComponent(lp.sid) + '&tok=' + encodeURIComponent(tok);
    const wrong = lp.tok.slice(0, -2) + (lp.tok.endsWith('AA') ? 'BB' : 'AA');
    for (const tok of [wrong, '', lp.tok + 'x', lp.sid]) {
      expectRefusal(await http('GET', s.url + '/long-polling?' + bad(tok) + '&ack=0'), 404, 4404);
      expectRefusal(await http('POST', s.url + '/long-polling?' + bad(tok), { body: '{"t":"d","s":1,"d":"x"}' }), 404, 4404);
      expectRefusal(await http('GET', s.url + '/long-polling?v=1&' + bad(tok) + '&ack=0'), 404, 4404);
    }
    const noTok = await http('GET', s.url + '/long-polling?sid=' + encodeURIComponent(lp.sid) + '&ack=0');
    expectRefusal(noTok, 404, 4404);
    const raw = rawWs(s.url + '/websocket?v=1&' + bad(wrong) + '&ack=0');
    expect((await raw.closeFrame()).c).toBe(4404);
    expect((await raw.closed).code).toBe(4404);
    // The real owner still gets its session.
    expect((await http('POST', lp.base, { body: '{"t":"d","s":1,"d":"mine"}' })).status).toBe(204);
    const poll = await http('GET', lp.base + '&ack=0');
    expect(poll.status).toBe(200);
    expect(poll.body).toContain('mine'); // echoed
    await check('after');
  });
});

describe('bad requests', () => {
  it('protocol version v=2 gets 400/4400 on long polling and on WebSocket', async () => {
    const { s, check } = await setup();
    expectRefusal(await http('GET', s.url + '/long-polling?v=2'), 400, 4400);
    expectRefusal(await http('GET', s.url + '/long-polling?v=abc'), 400, 4400);
    const raw = rawWs(s.url + '/websocket?v=2');
    expect((await raw.closeFrame()).c).toBe(4400);
    expect((await raw.closed).code).toBe(4400);
    const before = s.rt.clientsCount;
    expect(before).toBe(2);
    await check('after');
  });

  it('a WebSocket upgrade without v gets close 4400', async () => {
    const { s, check } = await setup();
    const raw = rawWs(s.url + '/websocket');
    expect((await raw.closeFrame()).c).toBe(4400);
    await check('after');
  });

  it('a transport the server does not offer gets 501/4501, not 404 (a resume must not read it as a lost session), HTTP and upgrade; paths outside the prefix are not served', async () => {
    const { s, check } = await setup();
    const r = await http('GET', s.url + '/nope?v=1');
    expectRefusal(r, 501, 4501);
    expect(r.headers['cache-control']).toMatch(/no-store/);
    expectRefusal(await http('POST', s.url + '/nope', { body: 'x' }), 501, 4501);
    expect(await upgradeStatus(s.url + '/nope?v=1')).toBe(501);
    expect(await upgradeStatus(s.url + '/long-polling?v=1')).toBe(501); // no upgrade on an HTTP transport
    expect((await http('GET', s.origin + '/rtx/long-polling?v=1')).status).toBe(404);
    expect((await http('GET', s.origin + '/')).status).toBe(404);
    // An upgrade outside the path, with nobody else to take it, is dropped.
    await expect(upgradeStatus(s.origin + '/elsewhere')).rejects.toThrow();
    await check('after');
  });

  it('a method other than GET/POST on long polling gets 405', async () => {
    const { s, check } = await setup();
    const r = await http('PUT', s.url + '/long-polling?v=1', { body: 'x' });
    expectRefusal(r, 405, 4400);
    await check('after');
  });

  it('a poll with a bad ack gets 400/4400', async () => {
    const { s, check } = await setup();
    const lp = await lpHandshake(s.url);
    expectRefusal(await http('GET', lp.base + '&ack=-1'), 400, 4400);
    const lp2 = await lpHandshake(s.url);
    expectRefusal(await http('GET', lp2.base + '&ack=99'), 400, 4400); // beyond what the server sent
    await check('after');
  });
});

describe('Origin', () => {
  /**
   * A refused WebSocket: a browser cannot read the status of a refused upgrade, so the upgrade
   * completes and carries only the close frame 4403, then closes with 4403.
   */
  async function expectWsRefused(url: string, origin: string): Promise<void> {
    const raw = rawWs(url, { origin });
    expect((await raw.closeFrame()).c).toBe(4403);
    expect((await raw.closed).code).toBe(4403);
    expect(raw.messages.map((m) => JSON.parse(m).t)).toEqual(['c']);
  }

  const GOOD = 'http://good.example';
  const EVIL = 'http://evil.example';

  it('with allowedOrigins, a foreign Origin gets 403/4403 on long-polling GET and POST, and the upgrade carries only the close frame 4403', async () => {
    const { s, check } = await setup({ ...FAST, allowedOrigins: [GOOD] });
    const lp = await lpHandshake(s.url, { Origin: GOOD });
    // Handshake, poll, POST: refused for a foreign origin, even with a valid session.
    expectRefusal(await http('GET', s.url + '/long-polling?v=1', { headers: { Origin: EVIL } }), 403, 4403);
    expectRefusal(await http('GET', lp.base + '&ack=0', { headers: { Origin: EVIL } }), 403, 4403);
    expectRefusal(await http('POST', lp.base, { body: '{"t":"d","s":1,"d":"x"}', headers: { Origin: EVIL } }), 403, 4403);
    await expectWsRefused(s.url + '/websocket?v=1', EVIL);
    // A refused request created nothing.
    expect(s.rt.clientsCount).toBe(3);
    // The allowed origin works on both transports, with CORS headers.
    const ok = await http('POST', lp.base, { body: '{"t":"d","s":1,"d":"x"}', headers: { Origin: GOOD } });
    expect(ok.status).toBe(204);
    expect(ok.headers['access-control-allow-origin']).toBe(GOOD);
    expect(await upgradeStatus(s.url + '/websocket?v=1', GOOD)).toBe(101);
    await check('after');
  });

  it('a CORS preflight from a foreign origin gets 403; from an allowed one 204', async () => {
    const { s, check } = await setup({ ...FAST, allowedOrigins: [GOOD] });
    expect((await http('OPTIONS', s.url + '/long-polling', { headers: { Origin: EVIL } })).status).toBe(403);
    const ok = await http('OPTIONS', s.url + '/long-polling', { headers: { Origin: GOOD } });
    expect(ok.status).toBe(204);
    expect(ok.headers['access-control-allow-origin']).toBe(GOOD);
    await check('after');
  });

  it('requests without an Origin header are allowed even with allowedOrigins', async () => {
    const { s, check } = await setup({ ...FAST, allowedOrigins: [GOOD] });
    const lp = await lpHandshake(s.url);
    expect((await http('POST', lp.base, { body: '{"t":"d","s":1,"d":"x"}' })).status).toBe(204);
    expect(await upgradeStatus(s.url + '/websocket?v=1')).toBe(101);
    await check('after');
  });

  it('by default (allowedOrigins unset) the same origin is allowed and others get 403/4403', async () => {
    const { s, check } = await setup({ ...FAST, allowedOrigins: undefined });
    const same = s.origin; // Origin host == Host header (127.0.0.1:port)
    const lp = await lpHandshake(s.url, { Origin: same });
    expect((await http('POST', lp.base, { body: '{"t":"d","s":1,"d":"x"}', headers: { Origin: same } })).status).toBe(204);
    expect(await upgradeStatus(s.url + '/websocket?v=1', same)).toBe(101);
    for (const other of [EVIL, 'http://127.0.0.1:1', 'http://localhost:' + s.port, 'null', 'not a url']) {
      expectRefusal(await http('GET', s.url + '/long-polling?v=1', { headers: { Origin: other } }), 403, 4403);
      expectRefusal(await http('POST', lp.base, { body: '{"t":"d","s":2,"d":"x"}', headers: { Origin: other } }), 403, 4403);
      await expectWsRefused(s.url + '/websocket?v=1', other);
    }
    // Without an Origin: allowed.
    expect((await http('GET', s.url + '/long-polling?v=1')).status).toBe(200);
    await check('after');
  });

  it('by default, behind a reverse proxy that rewrites Host and sets X-Forwarded-Host, the public origin is allowed and others still get 403', async () => {
    const { s, check } = await setup({ ...FAST, allowedOrigins: undefined });
    const pub = 'https://chat.example.com';
    const fwd = { 'X-Forwarded-Host': 'chat.example.com, 10.0.0.7:8080' };
    const lp = await lpHandshake(s.url, { Origin: pub, ...fwd });
    expect((await http('POST', lp.base, { body: '{"t":"d","s":1,"d":"x"}', headers: { Origin: pub, ...fwd } })).status).toBe(204);
    // The forwarded host must match the Origin's; without the header a proxied origin is foreign.
    expectRefusal(await http('GET', s.url + '/long-polling?v=1', { headers: { Origin: EVIL, ...fwd } }), 403, 4403);
    expectRefusal(await http('GET', s.url + '/long-polling?v=1', { headers: { Origin: pub } }), 403, 4403);
    expectRefusal(await http('GET', s.url + '/long-polling?v=1', { headers: { Origin: pub, 'X-Forwarded-Host': '10.0.0.7:8080, chat.example.com' } }), 403, 4403);
    await check('after');
  });

  it('a WebSocket-only client from a foreign origin closes with 4403 at once instead of retrying (it cannot read an upgrade status)', async () => {
    const { s, check } = await setup({ ...FAST, allowedOrigins: [GOOD] });
    const FromEvil = class extends WebSocket {
      constructor(url: string) {
        super(url, { origin: EVIL });
        this.on('error', () => {});
      }
    } as unknown as WebSocketConstructor;
    const sock = connect(s.url, { transports: [webSocket], WebSocket: FromEvil, backoffBase: 20, backoffCap: 50 });
    defer(() => sock.close());
    const events: string[] = [];
    sock.on('reconnecting', (i) => events.push('reconnecting ' + i.code));
    sock.on('close', (i) => events.push('close ' + i.code + ' ' + i.reason));
    await waitFor(() => sock.state === 'closed', 3000, 'closed');
    expect(events).toEqual(['close 4403 origin not allowed']);
    expect(s.rt.clientsCount).toBe(2);
    await check('after');
  });

  it('a function allowedOrigins decides per request', async () => {
    const seen: string[] = [];
    const { s, check } = await setup({ ...FAST, allowedOrigins: (o) => (seen.push(o), o.endsWith('.good.example')) });
    expect((await http('GET', s.url + '/long-polling?v=1', { headers: { Origin: 'https://a.good.example' } })).status).toBe(200);
    expectRefusal(await http('GET', s.url + '/long-polling?v=1', { headers: { Origin: EVIL } }), 403, 4403);
    await expectWsRefused(s.url + '/websocket?v=1', EVIL);
    expect(seen).toEqual(['https://a.good.example', EVIL, EVIL]);
    await check('after');
  });
});
