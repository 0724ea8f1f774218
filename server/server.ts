/**
 * The reference server: routes `${path}/${transport}` requests and upgrades to the transports,
 * checks Origin on every one, creates and resumes sessions within the limits, sweeps heartbeats
 * and expiry, broadcasts, and serves the browser bundle.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { Connection } from './connection';
import { Probe } from './probe';
import { resolveServerOptions, type ResolvedServerOptions, type ServerOptions } from './options';
import { CLIENT_FILES, serveClient } from './serve-client';
import { MemoryStore, type SessionStore } from './store';
import { closeFrame, closeIfUnread, NO_CACHE, refuse } from '../transports/http-server';
import { iframeStreamingServer } from '../transports/iframe-streaming/server';
import { longPollingServer } from '../transports/long-polling/server';
import { shortPollingServer } from '../transports/short-polling/server';
import { sseServer } from '../transports/sse/server';
import { xhrStreamingServer } from '../transports/xhr-streaming/server';
import type { LinkedConnection, Refusal, ServerLink, ServerTransport, TransportHub } from '../transports/server-types';
import { webSocketServer } from '../transports/websocket/server';

export interface ServerEvents {
  /**
   * A new session opened. A session opened by a racing handshake is announced once its client
   * keeps it: a race loser is never seen (PROTOCOL.md, "Handshake").
   */
  connection: [conn: Connection];
}

type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/** 128 random bits, base64url. */
function randomId(): string {
  return randomBytes(16).toString('base64url');
}

function sameSecret(a: string, b: string | null): boolean {
  if (b === null) return false;
  // Compared as bytes: a string as long as the token may still be longer in UTF-8 (timingSafeEqual throws then).
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function parseAck(s: string | null): number {
  const n = s === null ? 0 : Number(s);
  return Number.isSafeInteger(n) && n >= 0 ? n : -1;
}

export class RtServer extends EventEmitter<ServerEvents> implements TransportHub {
  readonly options: ResolvedServerOptions;
  private readonly store: SessionStore;
  private readonly transports = new Map<string, ServerTransport>();
  private readonly sweep: ReturnType<typeof setInterval>;
  private readonly attached: Array<{ server: HttpServer; request: RequestListener; upgrade: (req: IncomingMessage, s: Duplex, h: Buffer) => void; others: RequestListener[] }> = [];
  private own: HttpServer | null = null;
  /** Upgrade probes held open now (they count against maxSessions with the sessions). */
  private probes = 0;

  constructor(options: ServerOptions = {}) {
    super();
    this.options = resolveServerOptions(options);
    this.store = options.store || new MemoryStore();
    for (const t of options.transports || [webSocketServer(), sseServer(), xhrStreamingServer(), iframeStreamingServer(), longPollingServer(), shortPollingServer()]) this.transports.set(t.name, t);
    // Heartbeats and expiry run on one sweep; a ping due before the next sweep goes now, so the
    // gap between pings never exceeds pingInterval (PROTOCOL.md, "Heartbeat").
    const every = Math.min(1000, Math.max(10, this.options.pingInterval / 4));
    this.sweep = setInterval(() => {
      const now = Date.now();
      for (const c of Array.from(this.store.values())) c.tick(now, every);
    }, every);
    this.sweep.unref();
  }

  get maxBatch(): number {
    return this.options.maxBatch;
  }

  get pollTimeout(): number {
    return this.options.pollTimeout;
  }

  get streamLimit(): number {
    return this.options.streamLimit;
  }

  get drainTimeout(): number {
    return this.options.pingInterval + this.options.pingTimeout;
  }

  /** Sessions held: open ones, closing ones whose close frame still waits for its client, and racing ones not yet kept. */
  get clientsCount(): number {
    return this.store.size;
  }

  /** Every open session. */
  connections(): Connection[] {
    return Array.from(this.store.values()).filter((c) => c.state === 'open' && !c.pending);
  }

  /** Send to every open session; returns how many took it. */
  broadcast(data: string | ArrayBuffer | ArrayBufferView, except?: Connection): number {
    let n = 0;
    for (const c of this.connections()) if (c !== except && c.send(data)) n++;
    return n;
  }

  /** Serve on an existing HTTP server; requests outside `path` go to its other listeners. */
  attach(server: HttpServer): this {
    const others = server.listeners('request') as RequestListener[];
    server.removeAllListeners('request');
    const request: RequestListener = (req, res) => {
      if (!this.handleRequest(req, res)) {
        if (others.length) for (const l of others) l.call(server, req, res);
        else refuse(res, { status: 404, code: 4400, reason: 'not found' });
      }
    };
    const upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
      if (!this.handleUpgrade(req, socket, head) && server.listenerCount('upgrade') === 1) socket.destroy();
    };
    server.on('request', request);
    server.on('upgrade', upgrade);
    this.attached.push({ server, request, upgrade, others });
    return this;
  }

  /** Create an HTTP server on `port` (0 for any) and serve on it. */
  listen(port: number, host?: string, onListening?: () => void): HttpServer {
    const server = createHttpServer();
    this.own = server;
    this.attach(server);
    server.listen(port, host, onListening);
    return server;
  }

  /** Handle a request if it is under `path`; returns false otherwise (for use as middleware). */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    const route = this.route(req);
    if (!route) return false;
    const [name, query] = route;
    const origin = req.headers.origin;
    if (origin !== undefined) {
      // CORS headers on every answer, refusals included: without them a browser shows the page
      // status 0 instead of our 403 or 429, and the page cannot tell a refusal from a failure.
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Access-Control-Expose-Headers', 'Retry-After');
      res.setHeader('Vary', 'Origin');
      if (!this.originAllowed(origin, req)) {
        const r = { status: 403, code: 4403, reason: 'origin not allowed' };
        const t = this.transports.get(name);
        // An EventSource cannot read a status: sse answers in its stream, so the page learns 4403.
        if (t && t.refuseRequest) t.refuseRequest(req, res, query, r);
        else {
          req.resume();
          refuse(res, r);
        }
        return true;
      }
    }
    if (req.method === 'OPTIONS') {
      closeIfUnread(res);
      res.writeHead(204, { ...NO_CACHE, 'Access-Control-Allow-Methods': 'GET, POST', 'Access-Control-Allow-Headers': 'Content-Type', 'Access-Control-Max-Age': '600' });
      res.end();
      return true;
    }
    if (Object.prototype.hasOwnProperty.call(CLIENT_FILES, name)) {
      closeIfUnread(res);
      if (this.options.serveClient) serveClient(name, req, res);
      else refuse(res, { status: 404, code: 4400, reason: 'the browser bundle is not served here (serveClient: false)' });
      return true;
    }
    const t = this.transports.get(name);
    if (!t || !t.request) {
      req.resume();
      // Not 404: a client resuming on a transport this server leaves out must not take it for a lost session.
      refuse(res, { status: 501, code: 4501, reason: 'transport not offered: ' + name.slice(0, 32) });
    } else t.request(req, res, query, this);
    return true;
  }

  /** Handle an upgrade if it is under `path`; returns false otherwise. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const route = this.route(req);
    if (!route) return false;
    const [name, query] = route;
    // Node takes its own 'error' listener off a socket it hands to 'upgrade': without one, a client's
    // reset while we write to it would be an uncaught exception.
    socket.on('error', () => socket.destroy());
    const t = this.transports.get(name);
    if (!t || !t.upgrade) {
      const body = closeFrame({ status: 501, code: 4501, reason: 'transport not offered: ' + name.slice(0, 32) });
      const headers = Object.entries(NO_CACHE).map(([k, v]) => k + ': ' + v + '\r\n').join('');
      socket.end('HTTP/1.1 501 Not Implemented\r\nConnection: close\r\n' + headers + 'Content-Type: text/plain; charset=UTF-8\r\nContent-Length: ' + Buffer.byteLength(body) + '\r\n\r\n' + body);
      return true;
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !this.originAllowed(origin, req)) {
      // A browser cannot read the status of a refused upgrade (it sees 1006): the upgrade is
      // completed and carries the close frame 4403, with no session, so a WebSocket-only page
      // learns why instead of retrying forever.
      const r: Refusal = { status: 403, code: 4403, reason: 'origin not allowed' };
      if (t.refuseUpgrade) t.refuseUpgrade(req, socket, head, r);
      else socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return true;
    }
    t.upgrade(req, socket, head, query, this);
    return true;
  }

  handshake(query: URLSearchParams, req: IncomingMessage, link: ServerLink): LinkedConnection | Refusal {
    const v = query.get('v');
    if (v !== '1') return { status: 400, code: 4400, reason: 'unsupported protocol version ' + (v === null ? v : v.slice(0, 16)) };
    // Sessions and held probes share the one limit (PROTOCOL.md, "Upgrade probes").
    const full = this.store.size + this.probes >= this.options.maxSessions;
    if (query.get('probe') === '1') {
      if (full) return { status: 503, code: 4429, reason: 'too many sessions', retryAfter: this.options.retryAfter };
      this.probes++;
      // Held longer than any client waits for a probe's ping, so a buffering proxy never passes it in time.
      return new Probe(link, this.options.pingInterval + this.options.pingTimeout, () => this.probes--);
    }
    const sid = query.get('sid');
    if (sid !== null) {
      const conn = this.store.get(sid);
      if (!conn || conn.state === 'closed' || !sameSecret(conn.token, query.get('tok'))) return { status: 404, code: 4404, reason: 'unknown session' };
      const ack = parseAck(query.get('ack'));
      if (ack < 0) return { status: 400, code: 4400, reason: 'bad ack' };
      const refused = conn.attach(link, ack, true);
      if (refused) return refused;
      conn.keep();
      return conn;
    }
    if (full) {
      return { status: 503, code: 4429, reason: 'too many sessions', retryAfter: this.options.retryAfter };
    }
    // A racing handshake (w=1, PROTOCOL.md "Handshake") is announced when its client keeps it.
    const announce = (c: Connection): void => void this.emit('connection', c);
    const racing = query.get('w') === '1';
    const conn = new Connection(randomId(), randomId(), req, this.options, (c) => this.store.delete(c.id), racing ? announce : null);
    this.store.set(conn.id, conn);
    conn.attach(link, 0, false);
    if (!racing) announce(conn);
    return conn;
  }

  find(query: URLSearchParams): LinkedConnection | Refusal {
    const conn = this.store.get(query.get('sid') || '');
    if (!conn || conn.state === 'closed' || !sameSecret(conn.token, query.get('tok'))) return { status: 404, code: 4404, reason: 'unknown session' };
    return conn;
  }

  /** Close every session (1001, clients reconnect) and stop; closes the HTTP server if `listen` made it. */
  close(done?: () => void): void {
    clearInterval(this.sweep);
    for (const c of Array.from(this.store.values())) c.close(1001, 'server shutting down');
    // A held response or a WebSocket got its close frame just now; the sessions left (between
    // polls, behind backpressure) end without it: no sweep will ever remove them.
    for (const c of Array.from(this.store.values())) c.drop();
    for (const t of this.transports.values()) if (t.close) t.close();
    for (const a of this.attached) {
      a.server.removeListener('request', a.request);
      a.server.removeListener('upgrade', a.upgrade);
      for (const l of a.others) a.server.on('request', l);
    }
    this.attached.length = 0;
    const own = this.own;
    this.own = null;
    if (own) {
      own.close(() => done && done());
      own.closeAllConnections();
    } else if (done) setImmediate(done);
  }

  private route(req: IncomingMessage): [string, URLSearchParams] | null {
    const url = req.url || '';
    const q = url.indexOf('?');
    const pathname = q < 0 ? url : url.slice(0, q);
    const prefix = this.options.path + '/';
    if (pathname.slice(0, prefix.length) !== prefix) return null;
    return [pathname.slice(prefix.length), new URLSearchParams(q < 0 ? '' : url.slice(q + 1))];
  }

  originAllowed(origin: string, req: IncomingMessage): boolean {
    const allowed = this.options.allowedOrigins;
    if (allowed === '*') return true;
    if (typeof allowed === 'function') return allowed(origin, req);
    if (allowed) return allowed.indexOf(origin) >= 0;
    // Same origin: the page's host is the Host the request reached, or the one a reverse proxy in
    // front reports in X-Forwarded-Host (its first value).
    const fwd = req.headers['x-forwarded-host'];
    const forwarded = (Array.isArray(fwd) ? fwd[0] : fwd || '').split(',')[0].trim();
    try {
      const host = new URL(origin).host;
      return host === req.headers.host || (forwarded !== '' && host === forwarded);
    } catch {
      return false;
    }
  }
}

/**
 * Create a reference server: `const rt = createServer({ path: '/rt' }); rt.listen(8080)` (listen returns
 * the http.Server) or `createServer().attach(httpServer)` (returns the cometsocket server).
 */
export function createServer(options: ServerOptions = {}): RtServer {
  return new RtServer(options);
}
