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
  /** Largest batch (request body or WebSocket message) a client may send, bytes. @default 2097152 */
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
  /** Longest a poll is held, ms; must be below pingInterval + pingTimeout. @default 25000 */
  pollTimeout?: number;
  /** A streaming response is ended (and reopened by the client) after this many bytes. @default 262144 */
  streamLimit?: number;
  /** Delay before acknowledging received messages when nothing else is sent, ms. @default 50 */
  ackDelay?: number;
  /** Seconds a client should wait when the server is full. @default 5 */
  retryAfter?: number;
  /** Serve the browser bundles at `${path}/cometsocket.min.js` (production) and `${path}/cometsocket.js` (development, with debug messages). @default true */
  serveClient?: boolean;
  /** Server transports, by name. @default every transport */
  transports?: readonly ServerTransport[];
  /** Where sessions live. @default a new MemoryStore */
  store?: SessionStore;
}

export interface ResolvedServerOptions extends Required<Omit<ServerOptions, 'allowedOrigins' | 'store' | 'transports'>> {
  allowedOrigins: ServerOptions['allowedOrigins'];
}

export function resolveServerOptions(o: ServerOptions): ResolvedServerOptions {
  const d = <T>(v: T | undefined, def: T): T => (v === undefined ? def : v);
  const r: ResolvedServerOptions = {
    path: d(o.path, '/rt').replace(/\/+$/, ''),
    allowedOrigins: o.allowedOrigins,
    maxPayload: d(o.maxPayload, 1048576),
    maxBatch: d(o.maxBatch, 2097152),
    maxSessions: d(o.maxSessions, 10000),
    maxBufferedMessages: d(o.maxBufferedMessages, 4096),
    maxBufferedBytes: d(o.maxBufferedBytes, 4194304),
    sessionTimeout: d(o.sessionTimeout, 60000),
    pingInterval: d(o.pingInterval, 25000),
    pingTimeout: d(o.pingTimeout, 20000),
    pollTimeout: d(o.pollTimeout, 25000),
    streamLimit: d(o.streamLimit, 262144),
    ackDelay: d(o.ackDelay, 50),
    retryAfter: d(o.retryAfter, 5),
    serveClient: d(o.serveClient, true),
  };
  if (r.pollTimeout >= r.pingInterval + r.pingTimeout) throw new RangeError('pollTimeout must be below pingInterval + pingTimeout');
  if (r.maxBatch < r.maxPayload) throw new RangeError('maxBatch must be at least maxPayload');
  return r;
}
