/**
 * Every server limit, with the status and close code it documents (server/options.ts), checked on
 * the wire; a healthy real client keeps exchanging messages before and after each breach.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { longPolling, webSocket } from '../../src/index';
import type { Connection } from '../../server/index';
import { waitFor } from '../helpers/server';
import {
  cleanupAll,
  dataLine,
  echo,
  expectRefusal,
  healthy,
  http,
  lpHandshake,
  rawWs,
  serve,
  sleep,
} from '../helpers/raw';

afterEach(cleanupAll);

const FAST = { pingInterval: 200, pingTimeout: 200, sessionTimeout: 500, pollTimeout: 300, allowedOrigins: '*' as const };

/** Collect 'close' events of every session the server opens. */
function closes(rt: { on(e: 'connection', f: (c: Connection) => void): unknown }): Map<Connection, Array<[number, string]>> {
  const m = new Map<Connection, Array<[number, string]>>();
  rt.on('connection', (c) => {
    m.set(c, []);
    c.on('close', (code, reason) => m.get(c)!.push([code, reason]));
  });
  return m;
}

describe('maxPayload', () => {
  it('a POSTed data frame larger than maxPayload gets 413 with close code 4413 and ends that session', async () => {
    const s = await serve({ ...FAST, maxPayload: 1000, maxBatch: 4000 });
    echo(s.rt);
    const cl = closes(s.rt);
    const h = await healthy(s.url, longPolling);
    await h.exchange('before');
    const lp = await lpHandshake(s.url);
    const conn = Array.from(cl.keys()).find((c) => c.id === lp.sid)!;
    // Exactly at the limit is fine…
    const ok = await http('POST', lp.base, { body: dataLine(1, 1000 - dataLine(1, 0).length) });
    expect(ok.status).toBe(204);
    // …one byte over is not.
    const r = await http('POST', lp.base, { body: dataLine(2, 1001 - dataLine(2, 0).length) });
    expectRefusal(r, 413, 4413);
    expect(cl.get(conn)).toEqual([[4413, expect.stringContaining('1000')]]);
    await h.exchange('after');
  });

  it('a WebSocket data frame larger than maxPayload gets a close frame 4413 and the socket closes', async () => {
    const s = await serve({ ...FAST, maxPayload: 1000, maxBatch: 4000 });
    echo(s.rt);
    const cl = closes(s.rt);
    const h = await healthy(s.url, webSocket);
    await h.exchange('before');
    const raw = rawWs(s.url + '/websocket?v=1');
    await raw.openFrame();
    raw.ws.send(dataLine(1, 1001 - dataLine(1, 0).length));
    expect((await raw.closeFrame()).c).toBe(4413);
    await raw.closed;
    await waitFor(() => Array.from(cl.values()).some((e) => e.length && e[0][0] === 4413), 2000, 'conn close 4413');
    await h.exchange('after');
  });
});

describe('maxPayload counts UTF-8 bytes', () => {
  it('a frame under maxPayload in characters but over it in UTF-8 bytes gets 413/4413; exactly maxPayload bytes passes', async () => {
    const s = await serve({ ...FAST, maxPayload: 1000, maxBatch: 4000 });
    echo(s.rt);
    const h = await healthy(s.url, longPolling);
    await h.exchange('before');
    const frame = (seq: number, d: string): string => JSON.stringify({ t: 'd', s: seq, d });
    const overhead = Buffer.byteLength(frame(1, ''));
    const exact = frame(1, '€'.repeat(Math.floor((1000 - overhead) / 3)) + 'x'.repeat((1000 - overhead) % 3));
    expect(Buffer.byteLength(exact)).toBe(1000);
    const lp = await lpHandshake(s.url);
    expect((await http('POST', lp.base, { body: exact })).status).toBe(204);
    const over = frame(2, '€'.repeat(400)); // 400 characters, 1,200 bytes
    expect(over.length).toBeLessThan(1000);
    expectRefusal(await http('POST', lp.base, { body: over }), 413, 4413);
    await h.exchange('after');
  });
});

describe('maxBatch', () => {
  it('a POST body larger than maxBatch gets 413 with close code 4413', async () => {
    const s = await serve({ ...FAST, maxPayload: 1000, maxBatch: 4000 });
    echo(s.rt);
    const h = await healthy(s.url, longPolling);
    await h.exchange('before');
    const cl = closes(s.rt);
    const lp = await lpHandshake(s.url);
    const conn = Array.from(cl.keys()).find((c) => c.id === lp.sid)!;
    // Six frames each under maxPayload, 5.4 kB together: only the batch limit is broken.
    const body = [1, 2, 3, 4, 5, 6].map((i) => dataLine(i, 880)).join('\n');
    expect(body.length).toBeGreaterThan(4000);
    const r = await http('POST', lp.base, { body });
    expectRefusal(r, 413, 4413);
    // PROTOCOL.md: "A POST body over lim.batch bytes gets 413 / 4413 and ends the session."
    expect(cl.get(conn)).toEqual([[4413, expect.any(String)]]);
    await h.exchange('after');
  });

  it('a WebSocket message larger than maxBatch makes ws close with 1009', async () => {
    const s = await serve({ ...FAST, maxPayload: 1000, maxBatch: 4000 });
    echo(s.rt);
    const h = await healthy(s.url, webSocket);
    await h.exchange('before');
    const raw = rawWs(s.url + '/websocket?v=1');
    await raw.openFrame();
    raw.ws.send([1, 2, 3, 4, 5, 6].map((i) => dataLine(i, 880)).join('\n'));
    expect((await raw.closed).code).toBe(1009);
    await h.exchange('after');
  });
});

describe('maxSessions', () => {
  it('a long-polling handshake past maxSessions gets 503, Retry-After and close code 4429', async () => {
    const s = await serve({ ...FAST, maxSessions: 2, retryAfter: 3 });
    echo(s.rt);
    const h = await healthy(s.url, webSocket);
    await h.exchange('before');
    const lp = await lpHandshake(s.url); // the second and last session
    expect(s.rt.clientsCount).toBe(2);
    const r = await http('GET', s.url + '/long-polling?v=1');
    expectRefusal(r, 503, 4429);
    expect(r.headers['retry-after']).toBe('3');
    expect(s.rt.clientsCount).toBe(2);
    // Resuming an existing session is not a new session: allowed at the limit.
    const resumed = await http('GET', s.url + '/long-polling?v=1&sid=' + encodeURIComponent(lp.sid) + '&tok=' + encodeURIComponent(lp.tok) + '&ack=0');
    expect(resumed.status).toBe(200);
    expect(JSON.parse(resumed.body.split('\n')[0])).toMatchObject({ t: 'o', sid: lp.sid, r: 1 });
    await h.exchange('after');
  });

  it('a WebSocket handshake past maxSessions gets a close frame 4429', async () => {
    const s = await serve({ ...FAST, maxSessions: 2, retryAfter: 3 });
    echo(s.rt);
    const h = await healthy(s.url, longPolling);
    await h.exchange('before');
    await lpHandshake(s.url);
    const raw = rawWs(s.url + '/websocket?v=1');
    expect((await raw.closeFrame()).c).toBe(4429);
    expect((await raw.closed).code).toBe(4429);
    expect(raw.messages).toHaveLength(1); // no open frame
    expect(s.rt.clientsCount).toBe(2);
    await h.exchange('after');
  });

  // Regression guard: this once failed because frame.ts documents `ra` ("Server → client, on 4429: retry after this many
  // ms") and the client reads it, but the server never sets it, so over WebSocket (no
  // Retry-After header) the client cannot learn the delay.
  it('the WebSocket close frame 4429 carries the retry delay in `ra` (ms)', async () => {
    const s = await serve({ ...FAST, maxSessions: 1, retryAfter: 3 });
    await lpHandshake(s.url);
    const raw = rawWs(s.url + '/websocket?v=1');
    const f = (await raw.closeFrame()) as { c: number; ra?: number };
    expect(f.c).toBe(4429);
    expect(f.ra).toBe(3000);
  });
});

describe('send buffer limits', () => {
  it('conn.send past maxBufferedMessages to a client that never acks closes the session with 4507', async () => {
    const s = await serve({ ...FAST, maxBufferedMessages: 5 });
    echo(s.rt);
    const cl = closes(s.rt);
    const h = await healthy(s.url, webSocket);
    await h.exchange('before');
    const raw = rawWs(s.url + '/websocket?v=1');
    const open = await raw.openFrame();
    const conn = Array.from(cl.keys()).find((c) => c.id === open.sid)!;
    for (let i = 1; i <= 5; i++) expect(conn.send('m' + i)).toBe(true);
    expect(cl.get(conn)).toEqual([]);
    expect(conn.send('m6')).toBe(false);
    expect(cl.get(conn)).toEqual([[4507, expect.any(String)]]);
    expect(conn.send('m7')).toBe(false);
    expect((await raw.closeFrame()).c).toBe(4507);
    await raw.closed;
    await h.exchange('after');
  });

  it('conn.send past maxBufferedBytes to a client that never acks closes the session with 4507', async () => {
    const s = await serve({ ...FAST, maxBufferedBytes: 1000 });
    echo(s.rt);
    const cl = closes(s.rt);
    const h = await healthy(s.url, longPolling);
    await h.exchange('before');
    const lp = await lpHandshake(s.url); // never polls, never acks
    const conn = Array.from(cl.keys()).find((c) => c.id === lp.sid)!;
    const msg = 'y'.repeat(300);
    for (let i = 1; i <= 3; i++) expect(conn.send(msg)).toBe(true);
    expect(conn.bufferedAmount).toBeLessThanOrEqual(1000);
    expect(conn.send(msg)).toBe(false);
    expect(cl.get(conn)).toEqual([[4507, expect.any(String)]]);
    // The close frame waits for the client's next poll.
    const r = await http('GET', lp.base + '&ack=0');
    expect(r.status).toBe(200);
    expect(r.body.split('\n').map((l) => JSON.parse(l).t)).toContain('c');
    expect(JSON.parse(r.body.split('\n').pop()!).c).toBe(4507);
    await h.exchange('after');
  });
});

describe('heartbeat', () => {
  it('a WebSocket client that never answers pings loses its transport after pingInterval + pingTimeout, and its session stays resumable', async () => {
    const s = await serve({ ...FAST, sessionTimeout: 2000 });
    echo(s.rt);
    const cl = closes(s.rt);
    const h = await healthy(s.url, webSocket);
    await h.exchange('before');
    const raw = rawWs(s.url + '/websocket?v=1');
    const open = (await raw.openFrame()) as { sid: string; tok: string };
    const t0 = Date.now();
    const conn = Array.from(cl.keys()).find((c) => c.id === open.sid)!;
    conn.send('kept');
    const closed = await raw.closed;
    const took = Date.now() - t0;
    expect(closed.code).toBe(1006); // dropped, not closed: the session lives on
    expect(took).toBeGreaterThanOrEqual(350);
    expect(took).toBeLessThan(1500);
    expect(raw.messages.join('\n')).toContain('{"t":"p"}');
    expect(conn.state).toBe('open');
    expect(cl.get(conn)).toEqual([]);
    // Resume: the unacknowledged message is written again after the open frame.
    const q = 'sid=' + encodeURIComponent(open.sid) + '&tok=' + encodeURIComponent(open.tok) + '&ack=0';
    const again = rawWs(s.url + '/websocket?v=1&' + q);
    const o2 = await again.openFrame();
    expect(o2).toMatchObject({ sid: open.sid, r: 1, ack: 0 });
    await waitFor(() => again.messages.join('\n').includes('"d":"kept"'), 2000, 'replayed message');
    await h.exchange('after');
  });

  it('a long-polling client that stops polling is dropped after pingInterval + pingTimeout and expires (4408) sessionTimeout later', async () => {
    const s = await serve({ ...FAST, sessionTimeout: 300 });
    echo(s.rt);
    const cl = closes(s.rt);
    const h = await healthy(s.url, longPolling);
    await h.exchange('before');
    const t0 = Date.now();
    const lp = await lpHandshake(s.url);
    const conn = Array.from(cl.keys()).find((c) => c.id === lp.sid)!;
    await waitFor(() => conn.transport === null, 2000, 'transport dropped');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(380);
    await waitFor(() => cl.get(conn)!.length > 0, 2000, 'expiry');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(680);
    expect(cl.get(conn)).toEqual([[4408, expect.any(String)]]);
    expectRefusal(await http('GET', lp.base + '&ack=0'), 404, 4404);
    await h.exchange('after');
  });
});

describe('a message larger than maxBufferedBytes', () => {
  it('conn.send throws RangeError and the session stays open', async () => {
    const s = await serve({ ...FAST, maxBufferedBytes: 1000 });
    echo(s.rt);
    const conns: Connection[] = [];
    s.rt.on('connection', (c) => conns.push(c));
    const h = await healthy(s.url, webSocket);
    expect(() => conns[0].send('z'.repeat(2000))).toThrow(RangeError);
    expect(conns[0].state).toBe('open');
    await h.exchange('after');
  });
});

describe('sessionTimeout', () => {
  it('a session with no transport expires with 4408 after sessionTimeout; resuming it then gets 404/4404', async () => {
    const s = await serve({ ...FAST, sessionTimeout: 500 });
    echo(s.rt);
    const cl = closes(s.rt);
    const h = await healthy(s.url, webSocket);
    await h.exchange('before');
    const raw = rawWs(s.url + '/websocket?v=1');
    const open = (await raw.openFrame()) as { sid: string; tok: string };
    const conn = Array.from(cl.keys()).find((c) => c.id === open.sid)!;
    raw.ws.terminate();
    await waitFor(() => conn.transport === null, 2000, 'transport detached');
    const gone = Date.now();
    await sleep(300);
    expect(cl.get(conn)).toEqual([]); // still resumable before the timeout
    await waitFor(() => cl.get(conn)!.length > 0, 2000, 'session expiry');
    expect(Date.now() - gone).toBeGreaterThanOrEqual(480);
    expect(cl.get(conn)).toEqual([[4408, expect.any(String)]]);
    const q = 'sid=' + encodeURIComponent(open.sid) + '&tok=' + encodeURIComponent(open.tok) + '&ack=0';
    expectRefusal(await http('GET', s.url + '/long-polling?v=1&' + q), 404, 4404);
    const ws = rawWs(s.url + '/websocket?v=1&' + q);
    expect((await ws.closeFrame()).c).toBe(4404);
    expect((await ws.closed).code).toBe(4404);
    await h.exchange('after');
  });
});

describe('polls', () => {
  it('a second concurrent poll gets 409/4409 and the first poll is answered at once', async () => {
    // Long poll timeout, so "answered at once" cannot be the timeout.
    const s = await serve({ pingInterval: 3000, pingTimeout: 3000, pollTimeout: 2500, allowedOrigins: '*' });
    echo(s.rt);
    const h = await healthy(s.url, longPolling);
    await h.exchange('before');
    const lp = await lpHandshake(s.url);
    const first = http('GET', lp.base + '&ack=0');
    let firstAt = 0;
    void first.then(() => (firstAt = Date.now()));
    await sleep(100);
    expect(firstAt).toBe(0); // held
    const t0 = Date.now();
    const second = await http('GET', lp.base + '&ack=0');
    expectRefusal(second, 409, 4409);
    const r = await first;
    expect(r.status).toBe(200);
    expect(firstAt - t0).toBeLessThan(500);
    await h.exchange('after');
  });

  it('a poll for a session carried by WebSocket gets 409/4409', async () => {
    const s = await serve(FAST);
    echo(s.rt);
    const h = await healthy(s.url, longPolling);
    await h.exchange('before');
    const raw = rawWs(s.url + '/websocket?v=1');
    const open = (await raw.openFrame()) as { sid: string; tok: string };
    const base = s.url + '/long-polling?sid=' + encodeURIComponent(open.sid) + '&tok=' + encodeURIComponent(open.tok);
    expectRefusal(await http('GET', base + '&ack=0'), 409, 4409);
    expect(raw.ws.readyState).toBe(raw.ws.OPEN); // the WebSocket keeps the session
    await h.exchange('after');
  });

  it('a held poll is answered with 200 and an empty batch after pollTimeout', async () => {
    const s = await serve({ pingInterval: 2000, pingTimeout: 1000, pollTimeout: 300, allowedOrigins: '*' });
    echo(s.rt);
    const h = await healthy(s.url, longPolling);
    await h.exchange('before');
    const lp = await lpHandshake(s.url);
    const t0 = Date.now();
    const r = await http('GET', lp.base + '&ack=0');
    const took = Date.now() - t0;
    expect(r.status).toBe(200);
    expect(r.body).toBe('');
    expect(took).toBeGreaterThanOrEqual(280);
    expect(took).toBeLessThan(1500);
    await h.exchange('after');
  });
});
