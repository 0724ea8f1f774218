/**
 * Delivery across broken transports and lost sessions: 2,000 numbered messages each way while the
 * transport is killed abruptly (no loss, no duplicate, no reorder, 'resume' fired); a server
 * restart mid-stream ('session-lost' with the messages the old server never received, then a new
 * session); server close() sending 1001; expiry while the client is away.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Socket as NetSocket } from 'node:net';
import { connect, longPolling, webSocket, type Socket, type Transport } from '../../src/index';
import type { SessionLostInfo } from '../../src/options';
import type { Connection } from '../../server/index';
import { waitFor } from '../helpers/server';
import { cleanupAll, defer, echo, serve, startProxy, WS, type OwnServer } from '../helpers/raw';

afterEach(cleanupAll);

const FAST = { pingInterval: 200, pingTimeout: 200, sessionTimeout: 2000, pollTimeout: 300, allowedOrigins: '*' as const };
const N = 2000;
const seq = (p: string, from: number, to: number): string[] => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => p + (from + i));

/** A client that records its events. */
function client(url: string, t: Transport): { sock: Socket; events: string[]; got: string[]; count(e: string): number } {
  const sock = connect(url, { transports: [t], WebSocket: WS, backoffBase: 20, backoffCap: 100, upgrade: false });
  defer(() => sock.close());
  const events: string[] = [];
  const got: string[] = [];
  sock.on('open', () => events.push('open'));
  sock.on('resume', () => events.push('resume'));
  sock.on('reconnecting', (i) => events.push('reconnecting ' + i.code));
  sock.on('session-lost', (i) => events.push('session-lost ' + i.code));
  sock.on('close', (i) => events.push('close ' + i.code));
  sock.on('message', (d) => got.push(d as string));
  return { sock, events, got, count: (e) => events.filter((x) => x === e).length };
}

/**
 * Stream N numbered messages each way between a client on `t` (at `url`) and `s`, calling `kill`
 * twice mid-stream (each time after a resume), and check exactly-once in-order delivery.
 */
async function streamThroughKills(s: OwnServer, url: string, t: Transport, kill: (conn: Connection) => void): Promise<void> {
  const conns: Connection[] = [];
  const serverGot: string[] = [];
  s.rt.on('connection', (c) => {
    conns.push(c);
    c.on('message', (d) => serverGot.push(d as string));
  });
  const c = client(url, t);
  await waitFor(() => c.count('open') === 1 && conns.length === 1, 3000, 'open');
  const conn = conns[0];
  const sid = c.sock.id;
  let sentS = 0;
  let sentC = 0;
  const refused: string[] = [];
  const pump = setInterval(() => {
    for (let k = 0; k < 16 && sentS < N; k++) if (!conn.send('s' + ++sentS)) refused.push('s' + sentS);
    for (let k = 0; k < 16 && sentC < N; k++) if (!c.sock.send('c' + ++sentC)) refused.push('c' + sentC);
  }, 2);
  defer(() => clearInterval(pump));
  for (const at of [N / 4, N / 2]) {
    await waitFor(() => sentS >= at && sentC >= at && c.got.length >= at / 2 && serverGot.length >= at / 2, 10000, 'stream to ' + at);
    const resumes = c.count('resume');
    kill(conn);
    await waitFor(() => c.count('resume') > resumes, 5000, 'resume after kill at ' + at);
  }
  await waitFor(() => c.got.length >= N && serverGot.length >= N, 15000, 'all messages');
  clearInterval(pump);
  // Let any late duplicate show up.
  await new Promise((r) => setTimeout(r, 100));
  expect(refused).toEqual([]);
  expect(c.got.length).toBe(N);
  expect(serverGot.length).toBe(N);
  expect(c.got).toEqual(seq('s', 1, N));
  expect(serverGot).toEqual(seq('c', 1, N));
  expect(c.count('resume')).toBeGreaterThanOrEqual(2);
  expect(c.events.filter((e) => e.startsWith('session-lost') || e.startsWith('close'))).toEqual([]);
  expect(c.count('open')).toBe(1);
  expect(c.sock.id).toBe(sid);
  expect(conns).toHaveLength(1);
  expect(conn.state).toBe('open');
}

describe('abrupt transport loss mid-stream', () => {
  it('WebSocket: destroying the server side TCP socket twice while 2,000 messages flow each way loses, duplicates and reorders nothing', async () => {
    const s = await serve(FAST);
    await streamThroughKills(s, s.url, webSocket, (conn) => {
      // Test-only path to the underlying TCP socket of the session's WebSocket.
      const ws = (conn.link as unknown as { ws: { _socket: NetSocket } }).ws;
      expect(conn.transport).toBe('websocket');
      ws._socket.destroy();
    });
  });

  it('WebSocket through a TCP proxy: cutting every connection twice (in-flight data lost both ways) loses nothing', async () => {
    const s = await serve(FAST);
    const proxy = await startProxy(s.port);
    await streamThroughKills(s, 'http://127.0.0.1:' + proxy.port + '/rt', webSocket, () => {
      expect(proxy.cut()).toBeGreaterThan(0);
    });
  });

  it('long polling through a TCP proxy: destroying the in-flight poll (and POST) connections twice loses nothing', async () => {
    const s = await serve(FAST);
    const proxy = await startProxy(s.port);
    await streamThroughKills(s, 'http://127.0.0.1:' + proxy.port + '/rt', longPolling, (conn) => {
      // A poll is always in flight (held, or being answered): cut it, and any POST with it.
      expect(conn.transport).toBe('long-polling');
      expect(proxy.cut()).toBeGreaterThan(0);
    });
  });

  it('long polling: the in-flight poll\'s TCP connection destroyed on the server side, its response lost, twice: nothing is lost', async () => {
    const s = await serve(FAST);
    let armed = false;
    let killed = 0;
    s.http.prependListener('request', (req, res) => {
      if (!armed || req.method !== 'GET' || !/long-polling\?/.test(req.url!) || /[?&]v=/.test(req.url!)) return;
      armed = false;
      // When the server answers this poll (at once or after holding it), the answer never
      // reaches the client: the TCP connection is destroyed instead. The session has already
      // taken the frames as written, so they must be written again after the resume.
      res.end = ((): typeof res => {
        killed++;
        req.socket.destroy();
        return res;
      }) as typeof res.end;
    });
    await streamThroughKills(s, s.url, longPolling, () => {
      armed = true;
    });
    expect(killed).toBe(2);
  });
});

describe('session loss', () => {
  /** Restart the server on the same port while the client streams; check 'session-lost'. */
  async function restartMidStream(t: Transport): Promise<{ oldGot: string[]; lost: SessionLostInfo; sentAtLost: number; events: string[] }> {
    const s1 = await serve(FAST);
    const oldGot: string[] = [];
    s1.rt.on('connection', (c) => c.on('message', (d) => oldGot.push(d as string)));
    const c = client(s1.url, t);
    let lost: SessionLostInfo | null = null;
    let sent = 0;
    let sentAtLost = -1;
    c.sock.on('session-lost', (i) => ((lost = i), (sentAtLost = sent)));
    await waitFor(() => c.count('open') === 1, 3000, 'open');
    const pump = setInterval(() => {
      for (let k = 0; k < 10; k++) c.sock.send('c' + ++sent);
    }, 2);
    defer(() => clearInterval(pump));
    await waitFor(() => oldGot.length >= 300, 5000, 'old server receiving');
    await s1.close();
    const s2 = await serve(FAST, s1.port);
    const newGot: string[] = [];
    s2.rt.on('connection', (conn) => conn.on('message', (d) => newGot.push(d as string)));
    await waitFor(() => lost !== null && c.count('open') === 2, 5000, 'session-lost then open');
    await waitFor(() => sent >= sentAtLost + 50, 2000, 'more sends on the new session');
    clearInterval(pump);
    await waitFor(() => newGot.length >= sent - sentAtLost, 5000, 'new session delivery');
    // The old server got a clean prefix; the new session carries exactly what was sent after the loss.
    expect(oldGot).toEqual(seq('c', 1, oldGot.length));
    expect(newGot).toEqual(seq('c', sentAtLost + 1, sent));
    const l = lost! as SessionLostInfo;
    expect(l.code).toBe(4404);
    expect(c.events.indexOf('session-lost 4404')).toBeGreaterThan(c.events.indexOf('open'));
    expect(c.events.lastIndexOf('open')).toBeGreaterThan(c.events.indexOf('session-lost 4404'));
    expect(c.events).not.toContain('resume');
    expect(c.sock.state).toBe('open');
    return { oldGot, lost: l, sentAtLost, events: c.events };
  }

  for (const t of [webSocket, longPolling]) {
    it(`${t.name}: restarting the server mid-stream gives 'session-lost' with every message the old server never received, then 'open'`, async () => {
      const r = await restartMidStream(t);
      // PROTOCOL.md, "Delivery guarantees": the unacked messages are a contiguous tail that
      // includes every message the old server did not receive. (Exactly those, with no overlap,
      // needs the final ack to reach the client: see the test below and the bug it marks.)
      const first = Number((r.lost.unacked[0] as string).slice(1));
      expect(first).toBeLessThanOrEqual(r.oldGot.length + 1);
      expect(r.lost.unacked).toEqual(seq('c', first, r.sentAtLost));
      expect(r.lost.unacked.length).toBeGreaterThan(r.sentAtLost - r.oldGot.length - 1);
    });
  }

  // Regression guard: this once failed because RtServer.close() writes the 1001 close frame (with the final ack) and then
  // at once terminates every WebSocket (webSocketServer().close() -> ws.terminate(), a TCP
  // reset while the client is still sending). The client's next write fails, its socket errors
  // before it reads the close frame, so it sees 1006, never gets the final ack, and
  // 'session-lost' hands back messages the old server did receive and deliver. Deterministic
  // here; mid-stream (above) it happens in about half the runs.
  it("WebSocket: server close() while the client is sending still delivers 1001 and the final ack, so 'session-lost' holds exactly the messages the old server never received", async () => {
    const o = { ...FAST, pingInterval: 5000, pingTimeout: 5000, ackDelay: 5000 };
    const s1 = await serve(o);
    const oldGot: string[] = [];
    s1.rt.on('connection', (c) => c.on('message', (d) => oldGot.push(d as string)));
    const c = client(s1.url, webSocket);
    let lost: SessionLostInfo | null = null;
    c.sock.on('session-lost', (i) => (lost = i));
    await waitFor(() => c.count('open') === 1, 3000, 'open');
    for (let i = 1; i <= 10; i++) c.sock.send('c' + i);
    await waitFor(() => oldGot.length === 10, 2000, 'first ten'); // received, not yet acked (ackDelay)
    for (let i = 11; i <= 20; i++) c.sock.send('c' + i);
    const closing = s1.close();
    for (let i = 21; i <= 30; i++) c.sock.send('c' + i); // the client keeps sending
    await closing;
    await serve(o, s1.port);
    await waitFor(() => lost !== null && c.count('open') === 2, 5000, 'session-lost then open');
    expect(oldGot).toEqual(seq('c', 1, 10));
    expect(c.events[1]).toBe('reconnecting 1001');
    expect((lost! as SessionLostInfo).unacked).toEqual(seq('c', 11, 30));
  });

  it('server close() sends 1001 to WebSocket and long-polling clients, which reconnect and open a new session on the restarted server', async () => {
    // Idle clients, no pings: nothing is in flight towards the server when it closes.
    const o = { ...FAST, pingInterval: 5000, pingTimeout: 5000 };
    const s1 = await serve(o);
    const conns: Connection[] = [];
    const closes: number[] = [];
    s1.rt.on('connection', (c) => (conns.push(c), c.on('close', (code) => closes.push(code))));
    const a = client(s1.url, webSocket);
    const b = client(s1.url, longPolling);
    await waitFor(() => a.count('open') === 1 && b.count('open') === 1, 3000, 'both open');
    // The long-polling client must have a poll held, to be told.
    const lpConn = conns.find((c) => c.transport === 'long-polling')!;
    await waitFor(() => (lpConn.link as unknown as { holding: boolean }).holding, 2000, 'held poll');
    await s1.close();
    expect(closes).toEqual([1001, 1001]);
    await waitFor(() => a.events.includes('reconnecting 1001') && b.events.includes('reconnecting 1001'), 2000, 'reconnecting 1001');
    const s2 = await serve(o, s1.port);
    echo(s2.rt);
    await waitFor(() => a.count('open') === 2 && b.count('open') === 2, 5000, 'new sessions');
    for (const x of [a, b]) {
      expect(x.events[0]).toBe('open');
      expect(x.events[1]).toBe('reconnecting 1001');
      expect(x.events).toContain('session-lost 4404');
      expect(x.events).not.toContain('close 1001');
      x.sock.send('hello again');
    }
    await waitFor(() => a.got.includes('hello again') && b.got.includes('hello again'), 3000, 'echo on the new server');
    expect(s2.rt.clientsCount).toBe(2);
  });

  it('a session that expired while its client was away is lost (4404) and its unacked messages are handed back', async () => {
    const s = await serve({ ...FAST, sessionTimeout: 300 });
    const got: string[] = [];
    let conn: Connection | null = null;
    s.rt.on('connection', (c) => ((conn ??= c), c.on('message', (d) => got.push(d as string))));
    const proxy = await startProxy(s.port);
    const c = client('http://127.0.0.1:' + proxy.port + '/rt', webSocket);
    let lost: SessionLostInfo | null = null;
    c.sock.on('session-lost', (i) => (lost = i));
    await waitFor(() => c.count('open') === 1, 3000, 'open');
    c.sock.send('delivered');
    await waitFor(() => got.length === 1 && c.sock.bufferedAmount === 0, 2000, 'first message acked');
    // Keep the client away long enough for the session to expire: the proxy refuses to forward.
    await proxy.close();
    c.sock.send('never delivered 1');
    c.sock.send('never delivered 2');
    await waitFor(() => conn!.state === 'closed', 3000, 'expiry');
    await startProxy(s.port, proxy.port); // the client's URL works again
    await waitFor(() => lost !== null && c.count('open') === 2, 5000, 'session-lost');
    expect(lost!.unacked).toEqual(['never delivered 1', 'never delivered 2']);
    expect(got).toEqual(['delivered']);
  });
});
