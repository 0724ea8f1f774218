/** The socket's options, their defaults, and the event map. */
import { DEBUG } from './build';
import type { Env, WebSocketConstructor } from './env';
import type { Transport } from '../transports/types';

/** Why the socket (or one connection of it) closed. */
export interface CloseInfo {
  /** Close code (PROTOCOL.md, "Close codes"). */
  code: number;
  reason: string;
  /** True when the session ended by a close handshake (either side called close). */
  wasClean: boolean;
}

export interface ReconnectingInfo {
  /** 1 for the first attempt after a failure. */
  attempt: number;
  /** Milliseconds until the attempt. */
  delay: number;
  /** What ended the previous connection. */
  code: number;
  reason: string;
}

export interface SessionLostInfo {
  /** Messages sent in the lost session that the server never acknowledged, oldest first. */
  unacked: Array<string | ArrayBuffer>;
  code: number;
  reason: string;
}

export type SocketState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Events of a `Socket`, one line each. */
export interface SocketEvents {
  /** A session opened: the first time, and again after `session-lost`. */
  open: [];
  /** A message arrived: a string, or an ArrayBuffer when binary was sent. Exactly once, in order. */
  message: [data: string | ArrayBuffer];
  /** The transport carrying the session changed (its name). */
  transport: [name: string];
  /** The connection broke; a reconnect is scheduled. */
  reconnecting: [info: ReconnectingInfo];
  /** The session was resumed on a new connection; nothing was lost. */
  resume: [];
  /** The server no longer knows the session: here is what it never acknowledged. A new session follows. */
  'session-lost': [info: SessionLostInfo];
  /** The send buffer, full when `send()` returned false, has room again. */
  drain: [];
  /** The socket closed for good. */
  close: [info: CloseInfo];
}

export interface SocketOptions {
  /** Transports to try, best first. `connect()` defaults to every transport; `new Socket()` needs them. */
  transports?: readonly Transport[];
  /** Head start, ms, each candidate gets before the next one starts alongside. @default 250 */
  headStart?: number;
  /**
   * When nothing is remembered for the endpoint (a first visit), start the first fallback together
   * with the first candidate instead of after its head start. @default true
   */
  parallelFallback?: boolean;
  /** A connection attempt that has not opened by then is abandoned, ms. @default 10000 */
  connectTimeout?: number;
  /** Timeout of HTTP requests the server answers at once (handshakes, POSTs), ms. @default 10000 */
  requestTimeout?: number;
  /** A streaming response whose first frame has not arrived by then is buffered by a proxy: move on, ms. @default 1500 */
  probeTimeout?: number;
  /** Delay between short polls, and the least time between long polls answered empty, ms. @default 1000 */
  pollInterval?: number;
  /** First reconnect window, ms (full jitter: the delay is random within the window). @default 500 */
  backoffBase?: number;
  /** Largest reconnect window, ms. @default 15000 */
  backoffCap?: number;
  /**
   * Reconnect attempts before giving up with close code 4100. Counted, like the backoff window,
   * since a transport last stayed open for twice `backoffBase` (at most `backoffCap`). @default Infinity
   */
  maxAttempts?: number;
  /** Return false to stop reconnecting after this failure. @default always retry retryable codes */
  shouldRetry?: (info: { code: number; reason: string; attempt: number }) => boolean;
  /** Most messages `send()` keeps until acknowledged; beyond, it returns false. @default 4096 */
  maxBufferedMessages?: number;
  /** Most bytes `send()` keeps until acknowledged; beyond, it returns false. @default 4194304 */
  maxBufferedBytes?: number;
  /** Largest message before the server announces its own limit, bytes. @default 1048576 */
  maxPayload?: number;
  /** Delay before acknowledging received messages when nothing else is sent, ms. @default 50 */
  ackDelay?: number;
  /** Move to a better transport in the background when the session started on a fallback. @default true */
  upgrade?: boolean;
  /** Remember the transport that worked per endpoint for this long, ms (0: never). @default 3600000 */
  rememberFor?: number;
  /** WebSocket constructor to use (e.g. from the `ws` package under Node). @default globalThis.WebSocket */
  WebSocket?: WebSocketConstructor;
  /**
   * Log each decision (negotiation, reconnects) with its reason: true for console.debug
   * (`env.log`), or a function. The production IIFE (`cometsocket.iife.min.js`) leaves the
   * messages out to stay small; load `cometsocket.iife.js` to read them. @default false
   */
  debug?: boolean | ((message: string) => void);
  /** Replace parts of the environment (clock, timers, network); for tests and unusual hosts. */
  env?: Partial<Env>;
}

/** Options with every default applied. */
export interface ResolvedOptions {
  transports: readonly Transport[];
  headStart: number;
  parallelFallback: boolean;
  connectTimeout: number;
  requestTimeout: number;
  probeTimeout: number;
  pollInterval: number;
  backoffBase: number;
  backoffCap: number;
  maxAttempts: number;
  shouldRetry: (info: { code: number; reason: string; attempt: number }) => boolean;
  maxBufferedMessages: number;
  maxBufferedBytes: number;
  maxPayload: number;
  ackDelay: number;
  upgrade: boolean;
  rememberFor: number;
  log: ((message: string) => void) | null;
}

const DEFAULTS = {
  headStart: 250,
  parallelFallback: true,
  connectTimeout: 10000,
  requestTimeout: 10000,
  probeTimeout: 1500,
  pollInterval: 1000,
  backoffBase: 500,
  backoffCap: 15000,
  maxAttempts: Infinity,
  maxBufferedMessages: 4096,
  maxBufferedBytes: 4194304,
  maxPayload: 1048576,
  ackDelay: 50,
  upgrade: true,
  rememberFor: 3600000,
};

/** Throws a TypeError saying `what` unless `ok`: bad arguments fail where they are given. */
export function expect(ok: unknown, what: string): void {
  if (!ok) throw new TypeError('cometsocket: ' + what);
}

export function resolveOptions(o: SocketOptions, env: Pick<Env, 'log'>, fallback: readonly Transport[] = []): ResolvedOptions {
  const r = { transports: o.transports || fallback, shouldRetry: o.shouldRetry || (() => true) } as ResolvedOptions;
  const list = r.transports;
  // Socket.IO takes transport names; this takes the transport values (so bundlers drop the rest).
  for (let i = 0; i < list.length; i++) expect(list[i] && typeof list[i].open === 'function', 'transports[' + i + '] is not a transport: pass e.g. CometSocket.webSocket, not its name');
  expect(typeof r.shouldRetry === 'function', 'shouldRetry must be a function');
  const given = o as Record<string, unknown>;
  const out = r as unknown as Record<string, unknown>;
  for (const k in DEFAULTS) {
    const d = DEFAULTS[k as keyof typeof DEFAULTS];
    const v = given[k];
    // A script-tag page has no types: a string, NaN or negative number would otherwise reach the
    // timers (a NaN backoff reconnects in a tight loop).
    expect(v === undefined || (typeof v === typeof d && (v as number) >= 0), 'option ' + k + ' must be a ' + (typeof d === 'number' ? 'number >= 0' : typeof d) + ', not ' + typeof v + ' ' + v);
    out[k] = v === undefined ? d : v;
  }
  const debug = o.debug;
  r.log = typeof debug === 'function' ? debug : debug ? (m: string) => env.log(m) : null;
  // The production IIFE has no messages to write: say where they are, once.
  if (!DEBUG && r.log) r.log('debug messages: load the development build, cometsocket.js');
  return r;
}
