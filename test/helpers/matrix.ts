/**
 * Helpers for the transport × failure matrix (test/matrix): traffic both ways against the
 * reference server, fault-injecting WebSocket constructors and request wrappers for `env`, and a
 * tiny scripted network for fake-timer tests.
 */
import type { Connection } from '../../server/index';
import type { Env, HttpRequest, HttpResult, WebSocketConstructor, WebSocketLike } from '../../src/env';
import type { Socket } from '../../src/index';
import type { TestServer } from './server';

export function labels(prefix: string, n: number, from = 0): string[] {
  return Array.from({ length: n }, (_, i) => prefix + (from + i));
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Everything the server side saw: connections, messages (of the first session), transports. */
export interface ServerLog {
  conns: Connection[];
  /** Messages of the first session. */
  received: string[];
  /** Messages of every session, by session id. */
  bySession: Map<string, string[]>;
  transports: string[];
  /** Resolves with the first connection. */
  first: Promise<Connection>;
}

export function watchServer(srv: TestServer, onConnection?: (c: Connection) => void): ServerLog {
  const log: ServerLog = { conns: [], received: [], bySession: new Map(), transports: [], first: null as unknown as Promise<Connection> };
  log.first = new Promise<Connection>((resolve) => {
    srv.rt.on('connection', (c) => {
      log.conns.push(c);
      const mine: string[] = [];
      log.bySession.set(c.id, mine);
      c.on('message', (d) => mine.push(String(d)));
      if (log.conns.length === 1) {
        c.on('message', (d) => log.received.push(String(d)));
        c.on('transport', (t) => log.transports.push(t));
        // The connection emits its first 'transport' inside the handshake, before 'connection'.
        if (c.transport) log.transports.push(c.transport);
        resolve(c);
      }
      if (onConnection) onConnection(c);
    });
  });
  return log;
}

/** What the client side saw. */
export interface ClientLog {
  received: string[];
  transports: string[];
  reconnecting: Array<{ attempt: number; delay: number; code: number; reason: string; at: number }>;
  opens: number;
  resumes: number;
  /** Reconnecting episodes: 'reconnecting' events that followed an open session (not a failed attempt). */
  episodes: number;
  sessionLost: Array<{ unacked: Array<string | ArrayBuffer>; code: number }>;
  closes: Array<{ code: number; reason: string; wasClean: boolean }>;
  /** ms since `watchClient` when the first message arrived, or -1. */
  firstMessageAt: number;
}

export function watchClient(sock: Socket, t0 = performance.now()): ClientLog {
  const log: ClientLog = { received: [], transports: [], reconnecting: [], opens: 0, resumes: 0, episodes: 0, sessionLost: [], closes: [], firstMessageAt: -1 };
  sock.on('message', (d) => {
    if (log.firstMessageAt < 0) log.firstMessageAt = performance.now() - t0;
    log.received.push(d as string);
  });
  sock.on('transport', (n) => log.transports.push(n));
  // Attempt numbers do not mark episodes: they restart only after a transport stayed open backoffCap.
  let reconnecting = false;
  sock.on('reconnecting', (i) => {
    if (!reconnecting) log.episodes++;
    reconnecting = true;
    log.reconnecting.push({ ...i, at: performance.now() - t0 });
  });
  sock.on('open', () => {
    reconnecting = false;
    log.opens++;
  });
  sock.on('resume', () => {
    reconnecting = false;
    log.resumes++;
  });
  sock.on('session-lost', (i) => log.sessionLost.push({ unacked: i.unacked, code: i.code }));
  sock.on('close', (i) => log.closes.push(i));
  return log;
}

/**
 * Wait until both sides have `n` messages, then a little longer so a late duplicate would show,
 * and return both logs' messages for exact comparison.
 */
export async function bothWays(sl: ServerLog, cl: ClientLog, n: number, ms = 10000, settle = 150): Promise<void> {
  const end = Date.now() + ms;
  while (!(sl.received.length >= n && cl.received.length >= n)) {
    if (Date.now() > end) throw new Error('timed out waiting for ' + n + ' messages each way (server has ' + sl.received.length + ', client has ' + cl.received.length + ')');
    await sleep(5);
  }
  await sleep(settle);
}

// ---- fault-injecting WebSocket constructors ----------------------------------------------------

/** Base for fake sockets: the WebSocketLike surface, doing nothing. */
class FakeSocketBase implements WebSocketLike {
  readyState = 0;
  bufferedAmount = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  closed = false;
  constructor(readonly url: string) {}
  send(): void {
    throw new Error('fake WebSocket: send() before open');
  }
  close(): void {
    this.closed = true;
    this.readyState = 3;
  }
}

/** Records every fake socket made, so a test can see how many attempts there were and when. */
export interface FakeCtor {
  ctor: WebSocketConstructor;
  made: Array<{ url: string; at: number; socket: WebSocketLike }>;
}

/** A WebSocket that connects forever: never opens, never errors. */
export function hangingWebSocket(now: () => number = () => performance.now()): FakeCtor {
  const made: FakeCtor['made'] = [];
  class Hanging extends FakeSocketBase {
    constructor(url: string) {
      super(url);
      made.push({ url, at: now(), socket: this });
    }
  }
  return { ctor: Hanging, made };
}

/** A WebSocket that fails at once (next tick): error, then close 1006, as a refused connection does. */
export function erroringWebSocket(now: () => number = () => performance.now(), schedule: (fn: () => void) => void = (fn) => setTimeout(fn, 0)): FakeCtor {
  const made: FakeCtor['made'] = [];
  class Erroring extends FakeSocketBase {
    constructor(url: string) {
      super(url);
      made.push({ url, at: now(), socket: this });
      schedule(() => {
        if (this.closed) return;
        this.readyState = 3;
        if (this.onerror) this.onerror({ type: 'error' });
        if (this.onclose) this.onclose({ code: 1006, reason: '' });
      });
    }
  }
  return { ctor: Erroring, made };
}

/** The first `n` constructions hang; later ones are real (`Real`). */
export function hangFirst(n: number, Real: WebSocketConstructor, now: () => number = () => performance.now()): FakeCtor {
  const made: FakeCtor['made'] = [];
  const ctor = function (this: unknown, url: string): WebSocketLike {
    const socket: WebSocketLike = made.length < n ? new (hangingWebSocket().ctor)(url) : new Real(url);
    made.push({ url, at: now(), socket });
    return socket;
  } as unknown as WebSocketConstructor;
  return { ctor, made };
}

// ---- request wrappers ----------------------------------------------------------------------------

export interface RequestCall {
  method: 'GET' | 'POST';
  url: string;
  at: number;
  status?: number;
}

/** Wrap `env.request` to record every call (time, method, url, status). */
export function recordingRequest(base: HttpRequest, now: () => number = () => performance.now()): { request: HttpRequest; calls: RequestCall[] } {
  const calls: RequestCall[] = [];
  const request: HttpRequest = (method, url, body, timeoutMs, done) => {
    const call: RequestCall = { method, url, at: now() };
    calls.push(call);
    return base(method, url, body, timeoutMs, (r: HttpResult) => {
      call.status = r.status;
      done(r);
    });
  };
  return { request, calls };
}

export function isHandshake(url: string): boolean {
  return /[?&]v=1(&|$)/.test(url);
}

// ---- a scripted network for fake-timer tests ------------------------------------------------------

/**
 * A minimal long-polling peer living on `env.setTimeout`: the handshake GET is answered with an
 * open frame after `latency` ms, polls are held until `push()` or close, POSTs answer 204.
 * `fault` can answer a request with another status instead (return null to pass).
 */
export class ScriptedPolling {
  calls: Array<{ method: 'GET' | 'POST'; url: string; body: string | null; at: number }> = [];
  private held: Array<(r: HttpResult) => void> = [];
  private queue: string[] = [];
  constructor(
    private readonly env: Pick<Env, 'setTimeout' | 'now'>,
    private readonly latency = 5,
    public fault: (method: 'GET' | 'POST', url: string) => HttpResult | null = () => null,
  ) {}

  static openFrame(sid = 'sid1'): string {
    return JSON.stringify({ t: 'o', v: 1, sid, tok: 'tok1', hb: 25000, hto: 20000, ack: 0, lim: { payload: 1048576, batch: 2097152, buffer: 4096 } });
  }

  /** Send data frames (bodies of `d`) to the client on the held poll. */
  push(...data: string[]): void {
    for (const d of data) this.queue.push(JSON.stringify({ t: 'd', s: this.queue.length + 1, d }));
    this.flush();
  }

  private sent = 0;
  private flush(): void {
    const done = this.held.shift();
    if (!done || this.sent >= this.queue.length) {
      if (done) this.held.unshift(done);
      return;
    }
    const batch = this.queue.slice(this.sent).join('\n');
    this.sent = this.queue.length;
    this.env.setTimeout(() => done({ status: 200, body: batch, retryAfter: null }), this.latency);
  }

  readonly request: HttpRequest = (method, url, body, _timeout, done) => {
    this.calls.push({ method, url, body, at: this.env.now() });
    let live = true;
    const answer = (r: HttpResult): void => {
      if (live) (live = false), done(r);
    };
    const f = this.fault(method, url);
    if (f) {
      this.env.setTimeout(() => answer(f), this.latency);
    } else if (method === 'POST') {
      this.env.setTimeout(() => answer({ status: 204, body: '', retryAfter: null }), this.latency);
    } else if (isHandshake(url)) {
      this.env.setTimeout(() => answer({ status: 200, body: ScriptedPolling.openFrame(), retryAfter: null }), this.latency);
    } else {
      this.held.push(answer);
      this.flush();
    }
    return () => {
      live = false;
      const i = this.held.indexOf(answer);
      if (i >= 0) this.held.splice(i, 1);
    };
  };
}
