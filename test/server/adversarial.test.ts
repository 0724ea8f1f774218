/**
 * Adversarial inputs against the reference server, aimed at what bad-input, limits, probe and
 * resilience tests leave out. Each states what PROTOCOL.md (or "no crash, no unbounded memory")
 * requires; the comment above a test names the defect it was written against, now fixed.
 *
 * A crash cannot be observed in-process without taking the test worker down, so two harnesses
 * turn it into something a test can see: the server used as middleware with the listener wrapped
 * in try/catch (a throw there is an uncaught exception under `listen()`), and an upgrade socket
 * whose unhandled 'error' events are recorded instead of thrown.
 */
import { createServer as createHttpServer, request, type Server as HttpServer } from 'node:http';
import { connect as netConnect, type AddressInfo, type Socket as NetSocket } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { longPolling, webSocket } from '../../src/index';
import { createServer } from '../../server/index';
import type { ServerOptions } from '../../server/options';
import { waitFor } from '../helpers/server';
import { cleanupAll, closeFrame, defer, echo, expectRefusal, healthy, http, lpHandshake, rawWs, serve, sleep } from '../helpers/raw';

afterEach(cleanupAll);

const FAST: ServerOptions = { pingInterval: 300, pingTimeout: 300, sessionTimeout: 2000, pollTimeout: 250, allowedOrigins: '*' };

/** The server as middleware: a throw from handleRequest / handleUpgrade is recorded (and answered 500). */
async function middleware(options: ServerOptions = FAST): Promise<{ url: string; thrown: unknown[] }> {
  const rt = createServer(options);
  const thrown: unknown[] = [];
  const server = createHttpServer((req, res) => {
    try {
      if (!rt.handleRequest(req, res)) res.writeHead(404).end();
    } catch (e) {
      thrown.push(e);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    }
  });
  server.on('upgrade', (req, socket: Duplex, head) => {
    try {
      if (!rt.handleUpgrade(req, socket, head)) socket.destroy();
    } catch (e) {
      thrown.push(e);
      socket.destroy();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  defer(() => new Promise<void>((r) => (rt.close(), server.close(() => r()), server.closeAllConnections())));
  return { url: 'http://127.0.0.1:' + (server.address() as AddressInfo).port + '/rt', thrown };
}

/** A raw TCP connection to `port`: what it received, and whether it closed. */
function tcp(port: number): { c: NetSocket; out: () => string; closed: () => boolean } {
  const c = netConnect(port, '127.0.0.1');
  let out = '';
  let closed = false;
  c.on('data', (d) => (out += d));
  c.on('error', () => {});
  c.on('close', () => (closed = true));
  defer(() => c.destroy());
  return { c, out: () => out, closed: () => closed };
}

/** A streaming GET that the client aborts once its body matches `until` (or it ends): "status body". */
function getAndAbort(url: string, until = /./): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      let body = '';
      const done = (): void => void (resolve(res.statusCode + ' ' + body), req.destroy());
      res.on('error', () => {});
      res.on('data', (c) => until.test((body += c)) && done());
      res.on('end', done);
    });
    req.on('error', reject);
    req.end();
    defer(() => req.destroy());
  });
}

const UPGRADE = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;


/**
 * The 'error' events of upgrade sockets that nobody listens to, recorded instead of thrown: under
 * listen() each would be an uncaught exception, which would end the test worker.
 */
function unhandledUpgradeErrors(http: HttpServer): unknown[] {
  const unhandled: unknown[] = [];
  http.prependListener('upgrade', (_req, socket: Duplex) => {
    const emit = socket.emit;
    socket.emit = function (this: Duplex, ev: string | symbol, ...args: unknown[]): boolean {
      if (ev === 'error' && this.listenerCount('error') === 0) return unhandled.push(args[0]), false;
      return emit.call(this, ev, ...args);
    } as typeof socket.emit;
  });
  return unhandled;
}

describe('crashes', () => {
  // Was: server.ts sameSecret() compared UTF-16 lengths, then timingSafeEqual threw RangeError on
  // buffers of different byte lengths. Anyone can open a session to learn a valid sid, so two
  // requests took the whole server down (an uncaught exception under listen()).
  it('a tok as long as the real one but with a non-ASCII character gets 404/4404 (no RangeError in sameSecret)', async () => {
    const m = await middleware();
    const lp = await lpHandshake(m.url);
    const q = 'sid=' + lp.sid + '&tok=' + encodeURIComponent('é' + 'a'.repeat(lp.tok.length - 1));
    const answers = [
      await http('GET', m.url + '/long-polling?' + q + '&ack=0'),
      await http('GET', m.url + '/long-polling?v=1&' + q + '&ack=0'),
      await http('POST', m.url + '/long-polling?' + q, { body: '{"t":"P"}' }),
    ];
    expect(m.thrown).toEqual([]);
    for (const r of answers) expectRefusal(r, 404, 4404);
  });

  it('the same tok on a WebSocket resume gets close frame 4404 (no RangeError in sameSecret)', async () => {
    const m = await middleware();
    const lp = await lpHandshake(m.url);
    const raw = rawWs(m.url + '/websocket?v=1&sid=' + lp.sid + '&tok=' + encodeURIComponent('é' + 'a'.repeat(lp.tok.length - 1)) + '&ack=0');
    await raw.closed;
    expect(m.thrown).toEqual([]);
    expect(raw.messages.map((x) => JSON.parse(x).c)).toEqual([4404]);
  });

  // Was: server.ts handleUpgrade() 501 branch. Node removes its own 'error' listener from a socket
  // it hands to 'upgrade'; `socket.end(...)` with no listener of ours made a client's TCP reset an
  // uncaught ECONNRESET (a crash under listen()). Same for the 403 branch without refuseUpgrade.
  it('an upgrade to a path that names no transport, then a TCP reset, emits no unhandled socket error', async () => {
    const s = await serve(FAST);
    const unhandled = unhandledUpgradeErrors(s.http);
    for (const path of ['/rt/nope', '/rt/long-polling?v=1', '/rt/nope', '/rt/sse?v=1']) {
      const t = tcp(s.port);
      t.c.write(UPGRADE(path), () => t.c.resetAndDestroy());
      await waitFor(t.closed, 2000, 'reset');
    }
    await sleep(200);
    expect(unhandled).toEqual([]);
  });

  it('an upgrade refused for its Origin by a transport without refuseUpgrade, then a TCP reset, emits no unhandled socket error', async () => {
    const s = await serve({ ...FAST, allowedOrigins: ['http://good.example'], transports: [{ name: 'custom', upgrade: () => {} }] });
    const unhandled = unhandledUpgradeErrors(s.http);
    for (let i = 0; i < 3; i++) {
      const t = tcp(s.port);
      t.c.write(UPGRADE('/rt/custom').replace('Host: x\r\n', 'Host: x\r\nOrigin: http://evil.example\r\n'), () => t.c.resetAndDestroy());
      await waitFor(t.closed, 2000, 'reset');
    }
    await sleep(200);
    expect(unhandled).toEqual([]);
  });
});

describe('probes', () => {
  // Was: a probe was released only by Probe.detach, which an HttpLink never called when its poll
  // was answered or its response closed; only the hb + hto timer released it. PROTOCOL.md: probes
  // count "until they end" (a poll ends with its batch; a stream when the client lets go).
  it('long-polling probes stop counting against the limit once answered', async () => {
    const s = await serve({ ...FAST, maxSessions: 2, pingInterval: 2000, pingTimeout: 2000, pollTimeout: 1000 });
    for (let i = 0; i < 3; i++) {
      const r = await http('GET', s.url + '/long-polling?v=1&probe=1');
      expect({ i, status: r.status, body: r.body }).toEqual({ i, status: 200, body: '{"t":"p"}' });
    }
  });

  it('xhr-streaming and sse probes the client let go of stop counting against the limit', async () => {
    const s = await serve({ ...FAST, maxSessions: 2, pingInterval: 2000, pingTimeout: 2000, pollTimeout: 1000 });
    const got: string[] = [];
    for (const t of ['xhr-streaming', 'sse', 'xhr-streaming', 'sse']) {
      // sse answers a refusal 200 with the close frame in its stream: look at the frame.
      const r = await getAndAbort(s.url + '/' + t + '?v=1&probe=1', /"t":"[pc]"/);
      got.push(t + ' ' + r.split(' ')[0] + ' ' + (r.match(/"t":"[pc]"(,"c":\d+)?/) || [''])[0]);
      await sleep(50); // the server has seen the close
    }
    expect(got).toEqual(['xhr-streaming 200 "t":"p"', 'sse 200 "t":"p"', 'xhr-streaming 200 "t":"p"', 'sse 200 "t":"p"']);
  });

  // Was: server.ts handshake() had a counter for probes (`probes >= maxSessions`) and one for
  // sessions (`store.size`), so up to 2 × maxSessions were held. PROTOCOL.md "Upgrade probes":
  // sessions and held probes share the one limit.
  it('a probe counts against the session limit: at the limit a probe gets 503, and held probes block new sessions', async () => {
    const s = await serve({ ...FAST, maxSessions: 1 });
    const lp = await lpHandshake(s.url);
    expect((await http('GET', s.url + '/long-polling?v=1&probe=1')).status).toBe(503);
    await http('GET', s.url + '/long-polling?v=1&sid=' + lp.sid + '&tok=' + lp.tok + '&ack=0');
    expect(await http('POST', lp.base, { body: '{"t":"c","c":1000,"r":""}' })).toMatchObject({ status: 204 });
    const probe = rawWs(s.url + '/websocket?v=1&probe=1');
    await waitFor(() => probe.messages.length > 0, 2000, 'probe ping');
    expectRefusal(await http('GET', s.url + '/long-polling?v=1'), 503, 4429);
  });
});

describe('WebSocket', () => {
  // Was: the `ws` library validated UTF-8 and closed with 1007 itself: no close frame, an
  // undocumented code, and the session not ended (PROTOCOL.md: a malformed frame closes the
  // session, 4400).
  it('a text message that is not UTF-8 is a malformed frame: close frame 4400, close code 4400, session ended', async () => {
    const s = await serve(FAST);
    const raw = rawWs(s.url + '/websocket?v=1');
    await raw.openFrame();
    raw.ws.send(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), { binary: false });
    const closed = await raw.closed;
    expect({ code: closed.code, sessions: s.rt.connections().length }).toEqual({ code: 4400, sessions: 0 });
    expect((await raw.closeFrame()).c).toBe(4400);
  });

  it('a ping flood from a client that does not read ends that socket (ws maxPendingAutoPongs); the session stays resumable and others are untouched', async () => {
    const s = await serve({ ...FAST, pingInterval: 3000, pingTimeout: 3000, pollTimeout: 2000 });
    echo(s.rt);
    const h = await healthy(s.url, webSocket);
    const t = tcp(s.port);
    t.c.write(UPGRADE('/rt/websocket?v=1'));
    await waitFor(() => t.out().includes('"t":"o"'), 2000, 'open frame');
    const open = JSON.parse(t.out().slice(t.out().indexOf('{"t":"o"')).split('\n')[0].replace(/[^}]*$/, ''));
    t.c.pause();
    const ping = Buffer.concat([Buffer.from([0x89, 0x80 | 125, 0, 0, 0, 0]), Buffer.alloc(125, 1)]);
    const burst = Buffer.concat(Array(1000).fill(ping));
    for (let i = 0; i < 40 && !t.closed(); i++) t.c.write(burst), await sleep(5);
    await waitFor(t.closed, 3000, 'flooding socket dropped');
    const again = rawWs(s.url + '/websocket?v=1&sid=' + open.sid + '&tok=' + open.tok + '&ack=0');
    expect(await again.openFrame()).toMatchObject({ sid: open.sid, r: 1 });
    await h.exchange('after flood');
  });

  it('frames after a client close frame, in the same batch or the next message, are not delivered', async () => {
    const s = await serve(FAST);
    const got: string[] = [];
    const codes: number[] = [];
    s.rt.on('connection', (c) => (c.on('message', (d) => got.push(String(d))), c.on('close', (code) => codes.push(code))));
    const raw = rawWs(s.url + '/websocket?v=1');
    await raw.openFrame();
    raw.ws.send('{"t":"d","s":1,"d":"a"}\n{"t":"c","c":4000,"r":"bye"}\n{"t":"d","s":2,"d":"b"}');
    raw.ws.send('{"t":"d","s":3,"d":"c"}');
    expect((await raw.closed).code).toBe(4000);
    expect({ got, codes, sessions: s.rt.clientsCount }).toEqual({ got: ['a'], codes: [4000], sessions: 0 });
  });
});

describe('request bodies', () => {
  it('a chunked POST that streams forever past maxBatch gets 413/4413 and its connection is closed', async () => {
    const s = await serve({ ...FAST, maxBatch: 4000, maxPayload: 1000 });
    const lp = await lpHandshake(s.url);
    const t = tcp(s.port);
    t.c.write(`POST /rt/long-polling?sid=${lp.sid}&tok=${lp.tok} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n`);
    for (let i = 0; i < 200 && !t.closed(); i++) t.c.write('1000\r\n' + 'a'.repeat(4096) + '\r\n'), await sleep(5);
    expect(t.closed()).toBe(true);
    expect(t.out()).toMatch(/^HTTP\/1.1 413 /);
    expect(t.out()).toContain('"c":4413');
    expect(s.rt.connections()).toEqual([]); // ended ('closing' until its close frame is collected)
  });

  // Was: refusals that did not read the body called `req.resume()` and answered with keep-alive, so
  // a body that never ends was drained until Node's requestTimeout (300 s by default): one
  // connection per attacker socket, busy for five minutes. Only the 413 path set `Connection: close`.
  it('a never-ending POST body to a refused request (501, 404) is cut off, not drained', async () => {
    const s = await serve(FAST);
    for (const path of ['/rt/nope', '/rt/long-polling?sid=x&tok=y']) {
      const t = tcp(s.port);
      t.c.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n`);
      for (let i = 0; i < 200 && !t.closed(); i++) t.c.write('1000\r\n' + 'a'.repeat(4096) + '\r\n'), await sleep(5);
      expect({ path, status: t.out().split('\r\n')[0], closed: t.closed() }).toEqual({ path, status: expect.stringMatching(/ (501|404) /), closed: true });
    }
  });

  it('a never-ending body to a request refused for its Origin (a POST, an sse GET answered in its body) or its method, or to an OPTIONS, is cut off, not drained', async () => {
    const s = await serve({ ...FAST, allowedOrigins: ['http://good.example'] });
    for (const [method, path, status] of [['POST', '/rt/long-polling?sid=x&tok=y', 403], ['GET', '/rt/sse?v=1', 200], ['PUT', '/rt/long-polling?v=1', 405], ['OPTIONS', '/rt/long-polling', 204]] as const) {
      const t = tcp(s.port);
      const origin = method === 'POST' || method === 'GET' ? 'Origin: http://evil.example\r\n' : '';
      t.c.write(`${method} ${path} HTTP/1.1\r\nHost: x\r\n${origin}Transfer-Encoding: chunked\r\n\r\n`);
      for (let i = 0; i < 200 && !t.closed(); i++) t.c.write('1000\r\n' + 'a'.repeat(4096) + '\r\n'), await sleep(5);
      expect({ path, status: t.out().split('\r\n')[0], closed: t.closed() }).toEqual({ path, status: expect.stringMatching(new RegExp('^HTTP/1.1 ' + status + ' ')), closed: true });
    }
  });

  it('a POST body that is not UTF-8 is malformed: 400/4400, and the session ends', async () => {
    const s = await serve(FAST);
    const lp = await lpHandshake(s.url);
    const r = await http('POST', lp.base, { body: Buffer.from([0x7b, 0x22, 0x74, 0x22, 0x3a, 0x22, 0x50, 0x22, 0x2c, 0x22, 0x78, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]) }); // {"t":"P","x":"\xff"}
    expectRefusal(r, 400, 4400);
    expect(s.rt.connections()).toEqual([]);
  });
});

describe('query values', () => {
  it('malformed ack values on a continuing GET and on a resume get 400/4400 and leave the session working', async () => {
    const s = await serve(FAST);
    const lp = await lpHandshake(s.url);
    for (const ack of ['NaN', 'Infinity', '1e400', '1.5', '-1', '9007199254740993', 'abc', '1,2']) {
      expectRefusal(await http('GET', lp.base + '&ack=' + encodeURIComponent(ack)), 400, 4400);
      expectRefusal(await http('GET', s.url + '/long-polling?v=1&sid=' + lp.sid + '&tok=' + lp.tok + '&ack=' + encodeURIComponent(ack)), 400, 4400);
    }
    expectRefusal(await http('GET', lp.base), 400, 4400); // a continuing GET without ack (nor Last-Event-ID)
    expect((await http('POST', lp.base, { body: '{"t":"d","s":1,"d":"x"}' })).status).toBe(204);
    expect((await http('GET', lp.base + '&ack=0&ack=99')).status).toBe(200); // the first value counts
  });

  // Was: reasons echoed the query or path in full; PROTOCOL.md "Frames": r is "at most 123 bytes".
  it('a refusal caused by a huge v or transport name still has a close reason of at most 123 bytes', async () => {
    const s = await serve(FAST);
    const bodies = [(await http('GET', s.url + '/long-polling?v=' + 'x'.repeat(500))).body, (await http('GET', s.url + '/' + 'y'.repeat(500))).body];
    const raw = rawWs(s.url + '/websocket?v=' + 'z'.repeat(500));
    await raw.closed;
    for (const b of [...bodies, raw.messages[0]]) expect(Buffer.byteLength(JSON.parse(b).r)).toBeLessThanOrEqual(123);
  });

  it('an application close reason over 123 bytes is cut to at most 123 in the close frame, on a character boundary', async () => {
    const s = await serve(FAST);
    const lp = await lpHandshake(s.url);
    s.rt.connections()[0].close(4000, 'é'.repeat(100));
    const f = closeFrame((await http('GET', lp.base + '&ack=0')).body.split('\n').find((l) => l.includes('"t":"c"'))!);
    expect(f.c).toBe(4000);
    expect(Buffer.byteLength(f.r)).toBeLessThanOrEqual(123);
    expect(f.r).toMatch(/^é+$/);
  });

  it('iframe-streaming: a markup or over-long i is refused 4400 in the body; markup in po never reaches the page unescaped', async () => {
    const s = await serve(FAST);
    for (const i of ['<b>', 'a'.repeat(33), '']) {
      const r = await http('GET', s.url + '/iframe-streaming?v=1&po=' + encodeURIComponent(s.origin) + '&i=' + encodeURIComponent(i));
      expect(r.status).toBe(200);
      expect(r.body).toContain('\\"c\\":4400');
      expect(r.body).toContain('p(null)');
    }
    const po = '"</script><script>alert(1)</script><!--\u2028';
    const r = await getAndAbort(s.url + '/iframe-streaming?v=1&i=x&po=' + encodeURIComponent(po), /"t\\+":\\+"o/);
    expect(r).toMatch(/^200 /);
    expect(r).not.toMatch(/<\/script><script>alert|<!--|\u2028/);
    const refused = await http('GET', s.url + '/iframe-streaming?v=1&i=x&po=' + encodeURIComponent(po) + '&sid=nope&tok=nope');
    expect(refused.body).not.toMatch(/<\/script><script>alert|<!--|\u2028/);
    expect(refused.body).toContain('4404');
  });

  it('Origin variants against an allow list (case, trailing slash, "null", two values) get 403/4403', async () => {
    const s = await serve({ ...FAST, allowedOrigins: ['http://good.example'] });
    for (const o of ['HTTP://GOOD.EXAMPLE', 'http://good.example/', 'null', 'http://good.example, http://evil.example', 'http://good.example.evil.example', '']) {
      expectRefusal(await http('GET', s.url + '/long-polling?v=1', { headers: { Origin: o } }), 403, 4403);
    }
    expect(s.rt.clientsCount).toBe(0);
  });
});

describe('aborted and concurrent GETs', () => {
  it('sse and xhr-streaming continuing GETs aborted 30 times leave one live session, no held response and no open sockets', async () => {
    const s = await serve({ ...FAST, pingInterval: 2000, pingTimeout: 2000, pollTimeout: 1000 });
    echo(s.rt);
    for (const t of ['sse', 'xhr-streaming']) {
      const first = await http('GET', s.url + '/long-polling?v=1');
      const open = JSON.parse(first.body.split('\n')[0]);
      const q = 'sid=' + open.sid + '&tok=' + open.tok;
      // Move the session to the stream transport, then abort continuing GETs over and over.
      expect(await getAndAbort(s.url + '/' + t + '?v=1&' + q + '&ack=0', /"t\\?":\\?"o/)).toMatch(/^200 /);
      for (let i = 0; i < 30; i++) expect(await getAndAbort(s.url + '/' + t + '?' + q + '&ack=0')).toMatch(/^200 /);
      const conn = s.rt.connections().find((c) => c.id === open.sid)!;
      await waitFor(() => !(conn.link as unknown as { holding: boolean }).holding, 1000, 'released');
      expect(conn.transport).toBe(t);
      expect((await http('POST', s.url + '/' + t + '?' + q, { body: '{"t":"d","s":1,"d":"still here"}' })).status).toBe(204);
    }
    await waitFor(() => (s.http as unknown as { _connections: number })._connections === 0, 2000, 'no sockets left');
    expect(s.rt.clientsCount).toBe(2);
  });

  it('eight concurrent continuing polls on one session: each is answered at once (200, or 409/4409 ending the held one), none stays held, and the session works on', async () => {
    const s = await serve({ ...FAST, pingInterval: 2000, pingTimeout: 2000, pollTimeout: 1000 });
    echo(s.rt);
    const lp = await lpHandshake(s.url);
    const t0 = Date.now();
    const rs = await Promise.all(Array.from({ length: 8 }, () => http('GET', lp.base + '&ack=0')));
    expect(Date.now() - t0).toBeLessThan(800); // not one waited for pollTimeout
    expect(rs.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 409, 409, 409, 409]);
    for (const r of rs) if (r.status === 409) expectRefusal(r, 409, 4409);
    expect((await http('POST', lp.base, { body: '{"t":"d","s":1,"d":"ok"}' })).status).toBe(204);
    expect((await http('GET', lp.base + '&ack=0')).body).toContain('"d":"ok"');
    const h = await healthy(s.url, longPolling);
    await h.exchange('after');
  });
});
