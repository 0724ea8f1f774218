/** The reference server's options and their defaults. */
import type { IncomingMessage } from 'node:http';
import type { SessionStore } from './store';
import type { ServerTransport } from '../transports/server-types';

export interface ServerOptions {
  /** URL path of the endpoint. @default '/rt' */
  path?: string;
  /**
   * Origins allowed to connect (checked on every transport), '*' for any. Requests without an
   * `Origin` header (non-browser clients) are allowed. @default same origin as the Host header, or
   * as X-Forwarded-Host when a reverse proxy sets it (a page can never send that header itself:
   * WebSocket, EventSource and iframes cannot, and the preflight a fetch would need is refused)
   */
  allowedOrigins?: readonly string[] | '*' | ((origin: string, req: IncomingMessage) => boolean);
  /** Largest data frame a client may send (the encoded frame), bytes. @default 1048576 */
  maxPayload?: number;
  /** Largest batch (request body or WebSocket message) a client may send, bytes; at least maxPayload. @default the larger of 2097152 and maxPayload */
  maxBatch?: number;
  /** Most sessions and held upgrade probes at once, together; past it, handshakes get 503 / close 4429 with Retry-After. @default 10000 */
  maxSessions?: number;
  /** Most unacknowledged messages kept per session; past it the session closes with 4507. @default 4096 */
  maxBufferedMessages?: number;
  /** Most unacknowledged bytes kept per session; past it the session closes with 4507. @default 4194304 */
  maxBufferedBytes?: number;
  /** A session with no transport for this long expires, ms. @default 60000 */
  sessionTimeout?: number;
  /** Ping every this many ms. @default 25000 */
  pingInterval?: number;
  /** A client silent for pingInterval + pingTimeout has lost its transport, ms. @default 20000 */
  pingTimeout?: number;
  /** Longest a poll is held, ms; must be below pingInterval + pingTimeout. @default the smaller of 25000 and pingInterval */
  pollTimeout?: number;
  /** A streaming response is ended (and reopened by the client) after this many bytes. @default 262144 */
  streamLimit?: number;
  /** Delay before acknowledging received messages when nothing else is sent, ms. @default 50 */
  ackDelay?: number;
  /** Seconds a client should wait when the server is full. @default 5 */
  retryAfter?: number;
  /** Serve the browser bundles at `${path}/cometsocket.min.js` (production) and `${path}/cometsocket.js` (development, with debug messages). @default true */
  serveClient?: boolean;
  /** Server transports, as values (e.g. `[webSocketServer(), longPollingServer()]`). @default every transport */
  transports?: readonly ServerTransport[];
  /** Where sessions live. @default a new MemoryStore */
  store?: SessionStore;
}

export interface ResolvedServerOptions extends Required<Omit<ServerOptions, 'allowedOrigins' | 'store' | 'transports'>> {
  allowedOrigins: ServerOptions['allowedOrigins'];
}

/** The longest delay a Node timer takes as such (longer ones fire at once), ms. */
const MAX_DELAY = 2 ** 31 - 1;

/**
 * Options with their defaults, checked: a value of the wrong type or range (an option read from an
 * environment variable as a string, a negative timeout, a delay Node's timers cannot hold) is a
 * TypeError or RangeError naming the option, at createServer, not a misbehaving server later.
 */
export function resolveServerOptions(o: ServerOptions): ResolvedServerOptions {
  const num = (name: keyof ServerOptions, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const v = o[name];
    if (v === undefined) return def;
    if (typeof v !== 'number' || v !== v) throw new TypeError('cometsocket: server option ' + name + ' must be a number, not ' + (typeof v === 'number' ? 'NaN' : typeof v));
    if (v < min || v > max) throw new RangeError('cometsocket: server option ' + name + ' must be between ' + min + ' and ' + max + ', not ' + v);
    return v;
  };
  if (o.path !== undefined && typeof o.path !== 'string') throw new TypeError('cometsocket: server option path must be a string');
  if (o.serveClient !== undefined && typeof o.serveClient !== 'boolean') throw new TypeError('cometsocket: server option serveClient must be a boolean');
  const pingInterval = num('pingInterval', 25000, 1, MAX_DELAY);
  const pingTimeout = num('pingTimeout', 20000, 1, MAX_DELAY);
  const maxPayload = num('maxPayload', 1048576, 64);
  const r: ResolvedServerOptions = {
    path: (o.path === undefined ? '/rt' : o.path).replace(/\/+$/, ''),
    allowedOrigins: o.allowedOrigins,
    maxPayload,
    // A batch holds at least one frame: a larger maxPayload raises the default.
    maxBatch: num('maxBatch', Math.max(2097152, maxPayload), 64),
    maxSessions: num('maxSessions', 10000, 0), // 0: every handshake is told to come back later
    maxBufferedMessages: num('maxBufferedMessages', 4096, 1),
    maxBufferedBytes: num('maxBufferedBytes', 4194304, 1),
    sessionTimeout: num('sessionTimeout', 60000, 1, MAX_DELAY),
    pingInterval,
    pingTimeout,
    // Held polls are answered by the next ping anyway: a shorter pingInterval lowers the default.
    pollTimeout: num('pollTimeout', Math.min(25000, pingInterval), 1, MAX_DELAY),
    streamLimit: num('streamLimit', 262144, 1),
    ackDelay: num('ackDelay', 50, 0, MAX_DELAY),
    retryAfter: num('retryAfter', 5, 0, 86400),
    serveClient: o.serveClient === undefined ? true : o.serveClient,
  };
  if (r.pollTimeout >= r.pingInterval + r.pingTimeout) throw new RangeError('cometsocket: server option pollTimeout (' + r.pollTimeout + ') must be below pingInterval + pingTimeout (' + (r.pingInterval + r.pingTimeout) + ')');
  if (r.maxBatch < r.maxPayload) throw new RangeError('cometsocket: server option maxBatch (' + r.maxBatch + ') must be at least maxPayload (' + r.maxPayload + ')');
  return r;
}
