/**
 * Memory under abuse and over time, measured as the process's heap after a forced GC (server and
 * clients share the process; the clients are closed before each measure).
 *
 *  - A slow reader: a client whose socket stops reading (paused). The server session's buffers
 *    cannot grow past maxBufferedMessages / maxBufferedBytes; the server closes it with 4507 and,
 *    once that is over, the heap is back where it was.
 *  - The soak: 200 clients connect, exchange and leave, in a loop; the heap (after GC) is sampled
 *    between rounds and must stay flat (median of the last third within 20 % of the first third).
 *    10 minutes with SOAK=1 (sampled every 10 s); a 20 s version (sampled every 2 s) runs by
 *    default so the mechanism is exercised in CI.
 *
 * GC: vitest gives no way to pass --expose-gc to its workers from a test file, so the flag is set
 * at run time and `gc` taken from a new context (v8.setFlagsFromString + vm.runInNewContext).
 */
import { request } from 'node:http';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, longPolling, webSocket, type Socket, type Transport } from '../../src/index';
import type { WebSocketConstructor } from '../../src/env';
import type { Connection } from '../../server/index';
import type { ServerOptions } from '../../server/options';
import { waitFor } from '../helpers/server';
import { cleanupAll, defer, echo, lpHandshake, rawWs, serve, sleep, WS, type OwnServer } from '../helpers/raw';

afterEach(cleanupAll);

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const MB = 1024 * 1024;

/** WeakRef (ES2021; the project's lib is ES2020). */
interface Weak<T> {
  deref(): T | undefined;
}
const WeakRefCtor = (globalThis as unknown as { WeakRef: new <T extends object>(t: T) => Weak<T> }).WeakRef;

/** Server sessions, held weakly so that a measure after GC sees only what the server keeps. */
function weakConnections(srv: OwnServer): Array<Weak<Connection>> {
  const refs: Array<Weak<Connection>> = [];
  srv.rt.on('connection', (c) => refs.push(new WeakRefCtor(c)));
  return refs;
}

function deref(refs: Array<Weak<Connection>>, i = 0): Connection {
  const c = refs[i] && refs[i].deref();
  if (!c) throw new Error('connection ' + i + ' is gone');
  return c;
}

/** heapUsed (and the rest) after a full GC, twice so finalizers' garbage goes too. */
async function heap(): Promise<NodeJS.MemoryUsage> {
  await sleep(20);
  gc();
  await new Promise((r) => setImmediate(r));
  gc();
  return process.memoryUsage();
}

const mb = (n: number): string => (n / MB).toFixed(1) + ' MB';

function connections(srv: OwnServer): Promise<number> {
  return new Promise((resolve) => srv.http.getConnections((_e, n) => resolve(n)));
}

/** A `ws` WebSocket that keeps every instance, so a test can reach the underlying TCP socket. */
function keepingWebSocket(made: Array<{ _socket: { pause(): void; resume(): void } }>): WebSocketConstructor {
  const Base = WS as unknown as new (url: string) => object;
  return class extends Base {
    constructor(url: string) {
      super(url);
      made.push(this as unknown as (typeof made)[number]);
    }
  } as unknown as WebSocketConstructor;
}

// ---- slow reader ----------------------------------------------------------------------------------

const HB = { pingInterval: 1500, pingTimeout: 1500, pollTimeout: 1000 };
const LIMIT = HB.pingInterval + HB.pingTimeout;
const SWEEP = Math.min(1000, Math.max(10, HB.pingInterval / 4));

interface FillResult {
  accepted: number;
  maxBytes: number;
  closedWith: number[];
}

/** The server application sends `payload`-sized messages until send() refuses, watching the buffer. */
async function fill(conn: Connection, payload: number, opts: ServerOptions): Promise<FillResult> {
  const closedWith: number[] = [];
  conn.on('close', (code) => closedWith.push(code));
  const d = 'x'.repeat(payload);
  let accepted = 0;
  let maxBytes = 0;
  const end = Date.now() + 10000;
  while (conn.send(d)) {
    accepted++;
    maxBytes = Math.max(maxBytes, conn.bufferedAmount);
    expect(conn.bufferedAmount).toBeLessThanOrEqual(opts.maxBufferedBytes!);
    if (accepted % 16 === 0) await new Promise((r) => setImmediate(r)); // let the transport write
    if (Date.now() > end) throw new Error('the server kept accepting sends for 10 s');
  }
  return { accepted, maxBytes, closedWith };
}

describe('slow reader: bounded buffers, 4507, memory back', () => {
  const CASES: Array<{ name: string; opts: ServerOptions; payload: number; limit: 'messages' | 'bytes' }> = [
    { name: 'count limit (500 small messages)', opts: { maxBufferedMessages: 500, maxBufferedBytes: 4 * MB }, payload: 200, limit: 'messages' },
    { name: 'byte limit (2 MiB of 16 KiB messages)', opts: { maxBufferedMessages: 4096, maxBufferedBytes: 2 * MB }, payload: 16 * 1024, limit: 'bytes' },
  ];
  for (const c of CASES) {
    it(`websocket client that pauses its socket, ${c.name}: closed with 4507; reading again it gets every message then the close; heap back`, async () => {
      const opts: ServerOptions = { allowedOrigins: '*', ...HB, ...c.opts };
      const before = await heap();
      const srv = await serve(opts);
      const refs = weakConnections(srv);
      const made: Array<{ _socket: { pause(): void; resume(): void } }> = [];
      const sock = connect(srv.url, { transports: [webSocket], WebSocket: keepingWebSocket(made), upgrade: false });
      defer(() => sock.state !== 'closed' && sock.close());
      let got = 0;
      const closes: Array<{ code: number; wasClean: boolean }> = [];
      const lost: number[] = [];
      sock.on('message', () => got++);
      sock.on('close', (i) => closes.push(i));
      sock.on('session-lost', (i) => lost.push(i.code));
      await waitFor(() => sock.state === 'open' && refs.length === 1, 3000, 'open');
      made[0]._socket.pause();
      const r = await fill(deref(refs), c.payload, opts);
      const peak = process.memoryUsage();
      await waitFor(() => r.closedWith.length > 0, 1000, 'the 4507 close');
      expect(r.closedWith).toEqual([4507]);
      if (c.limit === 'messages') expect(r.accepted).toBe(c.opts.maxBufferedMessages);
      else expect(r.maxBytes).toBeGreaterThan(c.opts.maxBufferedBytes! - c.payload - 64); // refused only when the next one would not fit
      expect(r.maxBytes).toBeLessThanOrEqual(c.opts.maxBufferedBytes!);

      // The client reads again (before its heartbeat gives up): every message, then the 4507 close.
      await sleep(300);
      made[0]._socket.resume();
      await waitFor(() => closes.length === 1, 5000, 'the client to see the close');
      expect(closes[0].code).toBe(4507);
      expect(got).toBe(r.accepted);
      expect(lost).toEqual([]);
      await waitFor(() => srv.rt.clientsCount === 0, 3000, 'the session gone');
      const open = await (async () => {
        const end = Date.now() + 3000;
        while (Date.now() < end && (await connections(srv)) > 0) await sleep(20);
        return connections(srv);
      })();
      expect(open).toBe(0);
      const mid = await heap();
      const collected = refs[0].deref() === undefined;
      await srv.close();
      const after = await heap();
      console.log(
        `[slow reader] websocket, ${c.name}: accepted ${r.accepted} messages (${mb(r.maxBytes)} buffered at most) before 4507; ` +
          `heapUsed before ${mb(before.heapUsed)}, at the limit ${mb(peak.heapUsed)} (no GC), once the client read the close ${mb(mid.heapUsed)} ` +
          `(session object collected: ${collected}), after the server closed ${mb(after.heapUsed)} (delta ${mb(after.heapUsed - before.heapUsed)})`,
      );
      expect(collected).toBe(true);
      expect(mid.heapUsed - before.heapUsed).toBeLessThan(2 * MB);
      expect(after.heapUsed - before.heapUsed).toBeLessThan(2 * MB);
    });
  }

  it('long-polling client that stops polling: 4507 at the limit, the session goes after hb + hto, heap back', async () => {
    const opts: ServerOptions = { allowedOrigins: '*', ...HB, maxBufferedMessages: 4096, maxBufferedBytes: 2 * MB };
    const before = await heap();
    const srv = await serve(opts);
    const refs = weakConnections(srv);
    await lpHandshake(srv.url); // and never polls again
    await waitFor(() => refs.length === 1, 1000, 'session');
    const r = await fill(deref(refs), 16 * 1024, opts);
    const peak = await heap();
    await waitFor(() => r.closedWith.length > 0, 1000, 'the 4507 close');
    expect(r.closedWith).toEqual([4507]);
    expect(r.maxBytes).toBeLessThanOrEqual(2 * MB);
    const t = performance.now();
    await waitFor(() => srv.rt.clientsCount === 0, LIMIT + SWEEP + 1000, 'the closing session to be dropped');
    const goneAfter = performance.now() - t;
    const mid = await heap();
    const collected = refs[0].deref() === undefined;
    await srv.close();
    const after = await heap();
    console.log(
      `[slow reader] long-polling, no poll: accepted ${r.accepted} (${mb(r.maxBytes)}) before 4507; session dropped ${goneAfter.toFixed(0)} ms later; ` +
        `heapUsed before ${mb(before.heapUsed)}, at the limit ${mb(peak.heapUsed)}, once dropped ${mb(mid.heapUsed)} (session object collected: ${collected}), ` +
        `after the server closed ${mb(after.heapUsed)} (delta ${mb(after.heapUsed - before.heapUsed)})`,
    );
    expect(goneAfter).toBeLessThanOrEqual(LIMIT + SWEEP + 500);
    expect(collected).toBe(true);
    expect(mid.heapUsed - before.heapUsed).toBeLessThan(2 * MB);
    expect(after.heapUsed - before.heapUsed).toBeLessThan(2 * MB);
  });

  /**
   * A reader that stops for good (a raw client: no acks, no pongs, no heartbeat of its own) with a
   * backlog larger than the connection can absorb (kernel buffers plus the WebSocket link's 1 MiB
   * high-water mark), so the close frame cannot reach it. The streams (default streamLimit) end
   * their response after 256 KiB and hold the rest in the session, so the same reader costs them
   * only the session buffer, which goes with the session.
   */
  const STUCK: Record<string, (srv: OwnServer) => Promise<void>> = {
    websocket: async (srv) => {
      const raw = rawWs(srv.url + '/websocket?v=1');
      await raw.openFrame();
      (raw.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    },
    'xhr-streaming': (srv) => stuckStream(srv, 'xhr-streaming'),
    sse: (srv) => stuckStream(srv, 'sse'),
  };

  /** A streaming GET whose reader takes the first chunk (the open frame) and then stops reading. */
  function stuckStream(srv: OwnServer, name: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const req = request(srv.url + '/' + name + '?v=1', { agent: false }, (res) => {
        res.once('data', () => {
          res.pause();
          resolve();
        });
      });
      req.on('error', reject);
      defer(() => req.destroy());
      req.end();
    });
  }

  async function stuckReader(kind: string): Promise<{ r: FillResult; open: number; state: string; closingAtLimit: boolean; collected: boolean; deltaPeak: number; deltaAfter: number }> {
    const opts: ServerOptions = { allowedOrigins: '*', ...HB, maxBufferedMessages: 4096, maxBufferedBytes: 32 * MB };
    const before = await heap();
    const srv = await serve(opts);
    const refs = weakConnections(srv);
    await STUCK[kind](srv);
    await waitFor(() => refs.length === 1, 1000, 'session');
    await sleep(20);
    const r = await fill(deref(refs), 256 * 1024, opts);
    await waitFor(() => r.closedWith.length > 0, 1000, 'the 4507 close');
    const closingAtLimit = deref(refs).state === 'closing';
    const peak = await heap();
    // The server gives a closing session hb + hto to collect its close frame, then drops it.
    await waitFor(() => srv.rt.clientsCount === 0, LIMIT + SWEEP + 1000, 'the session to be dropped');
    const state = deref(refs).state;
    await sleep(500);
    const after = await heap();
    const collected = refs[0].deref() === undefined;
    const open = await connections(srv);
    console.log(
      `[slow reader] stuck ${kind} reader, ${mb(r.maxBytes)} backlog: session ${closingAtLimit ? 'closing' : 'closed'} at the limit, then ${state}; ` +
        `server sockets still open: ${open}, session object collected: ${collected}; heapUsed before ${mb(before.heapUsed)}, at the limit ${mb(peak.heapUsed)}, ` +
        `${LIMIT + SWEEP + 500} ms after 4507 ${mb(after.heapUsed)} (delta ${mb(after.heapUsed - before.heapUsed)})`,
    );
    return { r, open, state, closingAtLimit, collected, deltaPeak: peak.heapUsed - before.heapUsed, deltaAfter: after.heapUsed - before.heapUsed };
  }

  for (const kind of Object.keys(STUCK)) {
    it(`stuck ${kind} reader with a backlog it cannot absorb: 4507, buffers bounded, session dropped`, { timeout: 30000 }, async () => {
      const { r, state, deltaPeak, closingAtLimit, open, collected } = await stuckReader(kind);
      expect(r.closedWith).toEqual([4507]);
      expect(r.maxBytes).toBeLessThanOrEqual(32 * MB);
      expect(deltaPeak).toBeGreaterThan(16 * MB); // the backlog was really held at the limit...
      expect(deltaPeak).toBeLessThan(3 * 32 * MB); // ...and no more than the limit allows (strings, frames, socket queue)
      if (kind === 'websocket') expect(closingAtLimit).toBe(true); // the close frame waits behind the backlog
      expect(state).toBe('closed');
      // The streams let go of everything (and so does the WebSocket, below).
      if (kind !== 'websocket') expect({ open, collected }).toEqual({ open: 0, collected: true });
    });
  }

  // Regression guard, server/connection.ts tick()/gone(): a closing session dropped after hb + hto never ends its link: the WebSocket stays open and keeps the session reachable.
  it('stuck websocket reader: after hb + hto the server ends the socket and frees the session', { timeout: 30000 }, async () => {
    const { r, open, collected, deltaAfter } = await stuckReader('websocket');
    expect(r.closedWith).toEqual([4507]);
    expect({ open, collected, heapReleased: deltaAfter < 4 * MB }).toEqual({ open: 0, collected: true, heapReleased: true });
  });
});

describe('slow reader that comes back after the 4507 (the close frame waited behind the backlog)', () => {
  // Regression guard, server/connection.ts take()/gone(): when the close frame is written later (after backpressure), nobody calls link.end(): the WebSocket is never closed with 4507.
  it('the server writes the close frame, then closes the WebSocket with 4507 (PROTOCOL.md, Close)', { timeout: 20000 }, async () => {
    const opts: ServerOptions = { allowedOrigins: '*', ...HB, maxBufferedMessages: 4096, maxBufferedBytes: 32 * MB };
    const srv = await serve(opts);
    const refs = weakConnections(srv);
    const raw = rawWs(srv.url + '/websocket?v=1');
    await raw.openFrame();
    const tcp = (raw.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    tcp.pause();
    await sleep(20);
    const r = await fill(deref(refs), 256 * 1024, opts);
    await waitFor(() => r.closedWith.length > 0, 1000, 'the 4507 close');
    expect(deref(refs).state).toBe('closing'); // the close frame waits behind the backlog
    await sleep(300);
    tcp.resume(); // reading again, well within hb + hto
    const frame = await raw.closeFrame();
    expect(frame.c).toBe(4507);
    const closed = await Promise.race([raw.closed, sleep(3000).then(() => ({ code: -1, reason: 'still open 3 s after the close frame' }))]);
    console.log(`[slow reader] reader back after 4507: close frame ${frame.c}, then WebSocket close: ${JSON.stringify(closed)}`);
    expect(closed.code).toBe(4507);
  });
});

// ---- soak -----------------------------------------------------------------------------------------

const SOAK = process.env.SOAK === '1';
const CLIENTS = 200;

interface SoakResult {
  rounds: number;
  sessions: number;
  messages: number;
  samples: Array<{ t: number; heap: number; handles: number }>;
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function activeHandles(): number {
  return (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;
}

/** Rounds of CLIENTS clients (1 in 5 on long polling) that connect, exchange and leave, for `ms`. */
async function soak(ms: number, every: number): Promise<SoakResult> {
  const srv = await serve({ allowedOrigins: '*' });
  echo(srv.rt);
  const res: SoakResult = { rounds: 0, sessions: 0, messages: 0, samples: [] };
  const round = async (): Promise<void> => {
    const socks: Socket[] = [];
    const got: number[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const t: Transport = i % 5 === 4 ? longPolling : webSocket;
      const s = connect(srv.url, { transports: [t], WebSocket: WS, upgrade: false, rememberFor: 0 });
      const k = socks.push(s) - 1;
      got.push(0);
      s.on('message', () => got[k]++);
    }
    try {
      await waitFor(() => socks.every((s) => s.state === 'open'), 15000, 'round ' + res.rounds + ': every client open');
      for (const s of socks) for (let m = 0; m < 5; m++) s.send('m' + m + ' ' + 'y'.repeat(100));
      srv.rt.broadcast('to everyone');
      await waitFor(() => got.every((n) => n === 6), 15000, 'round ' + res.rounds + ': echoes');
    } finally {
      for (const s of socks) if (s.state !== 'closed') s.close();
    }
    await waitFor(() => srv.rt.clientsCount === 0, 10000, 'round ' + res.rounds + ': every session gone from the server');
    res.rounds++;
    res.sessions += CLIENTS;
    res.messages += CLIENTS * 11;
  };
  await round(); // warm-up: JIT, pools, lazily created servers
  const t0 = performance.now();
  let next = 0;
  while (performance.now() - t0 < ms) {
    if (performance.now() - t0 >= next) {
      const h = await heap();
      res.samples.push({ t: performance.now() - t0, heap: h.heapUsed, handles: activeHandles() });
      next += every;
    }
    await round();
  }
  const h = await heap();
  res.samples.push({ t: performance.now() - t0, heap: h.heapUsed, handles: activeHandles() });
  return res;
}

function report(label: string, r: SoakResult): { first: number; last: number } {
  const n = r.samples.length;
  const third = Math.max(1, Math.floor(n / 3));
  const first = median(r.samples.slice(0, third).map((s) => s.heap));
  const last = median(r.samples.slice(n - third).map((s) => s.heap));
  console.log(
    [
      `[soak] ${label}: ${r.rounds} rounds of ${CLIENTS} clients (1 in 5 long-polling), ${r.sessions} sessions, ${r.messages} messages`,
      `[soak] heapUsed after GC (MB) at t (s): ` + r.samples.map((s) => `${(s.t / 1000).toFixed(0)}s ${(s.heap / MB).toFixed(1)}`).join(', '),
      `[soak] active handles: ` + r.samples.map((s) => s.handles).join(', '),
      `[soak] median of the first third ${mb(first)}, of the last third ${mb(last)} (${(((last - first) / first) * 100).toFixed(1)} %)`,
    ].join('\n'),
  );
  return { first, last };
}

/**
 * Open handles (sockets, timers) do not pile up. They swing by up to one per long-polling client
 * between samples (fetch keeps idle connections for a few seconds), so the bound is half a round
 * of clients: a leak of one handle per session would pass it within the first round or two.
 */
function expectHandlesFlat(r: SoakResult): void {
  const h = r.samples.map((s) => s.handles);
  const third = Math.max(1, Math.floor(h.length / 3));
  expect(Math.max(...h.slice(h.length - third))).toBeLessThanOrEqual(Math.max(...h.slice(0, third)) + CLIENTS / 2);
}

describe('soak: clients connect, exchange and leave in a loop; the heap stays flat', () => {
  if (!SOAK) console.log('[soak] the 10-minute soak is skipped; run it with: SOAK=1 npx vitest run test/soak');

  it(`short soak (20 s, sampled every 2 s): ${CLIENTS} clients per round`, { timeout: 90_000 }, async () => {
    const r = await soak(20_000, 2_000);
    const { first, last } = report('20 s', r);
    expect(r.rounds).toBeGreaterThanOrEqual(5);
    expect(Math.abs(last - first) / first).toBeLessThan(0.2);
    expectHandlesFlat(r);
  });

  it.skipIf(!SOAK)(`10-minute soak (sampled every 10 s): ${CLIENTS} clients per round`, { timeout: 15 * 60_000 }, async () => {
    const r = await soak(10 * 60_000, 10_000);
    const { first, last } = report('10 min', r);
    expect(Math.abs(last - first) / first).toBeLessThan(0.2);
    expectHandlesFlat(r);
  });
});
