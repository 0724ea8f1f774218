/**
 * One server per library, each on its own node:http server on 127.0.0.1 (port 0), each serving
 * its own pages and its own script-tag bundle, each with the same application:
 *  - a greeting ('hello') on every new connection (cometsocket: every new session; Socket.IO:
 *    every new socket, reconnections included);
 *  - when armed (the reset link), from the first connection on: 's0' … 's(n-1)', one every
 *    `period` ms on a steady clock, to every live connection (there is one client: a broadcast
 *    reaches it on whichever connection it has now, and a first visit's race loser, a second
 *    cometsocket session that the client closes at once, cannot swallow a message meant for the
 *    winner), and a record of the numbers of the page's 'c<i>' messages, in arrival order, over
 *    every connection.
 *
 * cometsocket: the reference server through test/browser/helpers.ts (startTestServer), with an
 * Origin check that accepts the origin of the network in front (`pageOrigin`).
 * Socket.IO: `new Server(httpServer)` with its defaults (the bundle is served by this file, with
 * the same caching headers as cometsocket's, not by Socket.IO's serveClient).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Server as IoServer, type Socket as IoSocket } from 'socket.io';
import type { Connection } from '../../server/index';
import { ROOT, startTestServer } from '../../test/browser/helpers';
import type { Lib } from './pages';

export interface Exchange {
  /** Messages the server's application handed to the library ('s0' … 's(sent-1)'). */
  sent: number;
  /** Numbers the library refused at once (cometsocket: no open session, send() false): the application knows. */
  refused: number[];
  /** Numbers emitted while no connection was up (Socket.IO: io.emit with no connected socket drops them silently). */
  whileDown: number[];
  /** Numbers of the page's 'c<i>' messages, in arrival order, over every connection. */
  received: number[];
  /** When the application sent its last message (Date.now(); 0: not yet). */
  ended: number;
  /** 'ms event' at the server: connections opened and closed, ms since the first one (diagnostics). */
  log: string[];
}

export interface LibServer {
  readonly lib: Lib;
  /** http://127.0.0.1:PORT, the server itself. */
  readonly origin: string;
  readonly port: number;
  /** The origin pages are loaded from (the network in front of the server). */
  pageOrigin: string;
  /** Serve `html` at `path`. */
  page(path: string, html: string): void;
  /** Connections (cometsocket: sessions; Socket.IO: sockets) opened so far. */
  readonly connections: number;
  /** cometsocket: sessions closed as first-visit race losers ('lost the race'); Socket.IO: 0. */
  readonly raceLosers: number;
  /** Arm the exchange: `n` messages, one every `period` ms, from the next connection on. */
  arm(n: number, period: number): void;
  readonly exchange: Exchange;
  /** Exceptions in the application or in the server's upgrade handling. */
  readonly errors: unknown[];
  close(): Promise<void>;
}

/** Sends `n` numbered messages on a steady clock to whatever `send` reaches at each tick. */
/** `send` returns false when the library refused the message, 'down' when it took it with no connection up. */
function pump(n: number, period: number, ex: Exchange, send: (s: string) => boolean | 'down'): () => void {
  const start = Date.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = (): void => {
    timer = undefined;
    const due = Math.min(n, Math.floor((Date.now() - start) / period) + 1);
    while (ex.sent < due) {
      let ok: boolean | 'down' = false;
      try {
        ok = send('s' + ex.sent);
      } catch {
        /* refused */
      }
      if (ok === false) ex.refused.push(ex.sent);
      else if (ok === 'down') ex.whileDown.push(ex.sent);
      ex.sent++;
    }
    if (ex.sent < n) timer = setTimeout(tick, period);
    else ex.ended = Date.now();
  };
  tick();
  return () => {
    if (timer) clearTimeout(timer);
  };
}

function logger(ex: Exchange): (line: string) => void {
  let t0 = 0;
  return (line) => {
    if (!t0) t0 = Date.now();
    ex.log.push(Date.now() - t0 + ' ' + line + ' (sent so far ' + ex.sent + ')');
  };
}

const num = (d: unknown): number | null => (typeof d === 'string' && d.charAt(0) === 'c' ? Number(d.slice(1)) : null);

export async function startCometServer(): Promise<LibServer> {
  let pageOrigin = '';
  let direct = '';
  const srv = await startTestServer({ allowedOrigins: (origin: string) => origin === pageOrigin || origin === direct });
  direct = srv.origin;
  const ex: Exchange = { sent: 0, refused: [], whileDown: [], received: [], ended: 0, log: [] };
  const log = logger(ex);
  let armed: { n: number; period: number } | null = null;
  let stop: (() => void) | null = null;
  const live = new Set<Connection>();
  let connections = 0;
  let raceLosers = 0;
  const broadcast = (s: string): boolean => {
    let any = false;
    for (const c of live) if (c.send(s)) any = true;
    return any;
  };
  srv.rt.on('connection', (conn) => {
    connections++;
    const id = connections;
    log('session #' + id + ' opened on ' + conn.transport);
    live.add(conn);
    conn.on('close', (code, reason) => {
      log('session #' + id + ' closed ' + code + ' ' + reason);
      live.delete(conn);
      if (/lost the race/.test(String(reason))) raceLosers++;
    });
    conn.on('message', (d) => {
      const i = num(d);
      if (i !== null) ex.received.push(i);
    });
    try {
      conn.send('hello');
    } catch (e) {
      srv.errors.push(e);
    }
    if (armed && !stop) stop = pump(armed.n, armed.period, ex, broadcast);
  });
  return {
    lib: 'cometsocket',
    origin: srv.origin,
    port: Number(new URL(srv.origin).port),
    get pageOrigin() {
      return pageOrigin;
    },
    set pageOrigin(o: string) {
      pageOrigin = o;
    },
    page(path, html) {
      srv.page(path, html);
    },
    get connections() {
      return connections;
    },
    get raceLosers() {
      return raceLosers;
    },
    arm(n, period) {
      armed = { n, period };
    },
    exchange: ex,
    errors: srv.errors,
    async close() {
      if (stop) stop();
      srv.rt.removeAllListeners('connection');
      await srv.close();
    },
  };
}

const SIO_BUNDLE = join(ROOT, 'node_modules', 'socket.io-client', 'dist', 'socket.io.min.js');

export async function startSocketIoServer(): Promise<LibServer> {
  const bundle = readFileSync(SIO_BUNDLE);
  const etag = '"' + createHash('sha1').update(bundle).digest('base64url') + '"';
  const pages = new Map<string, string>();
  const http: HttpServer = createHttpServer((req, res) => {
    const path = (req.url || '/').split('?')[0];
    if (path === '/socket.io.min.js') {
      if (req.headers['if-none-match'] === etag) {
        res.writeHead(304, { ETag: etag });
        res.end();
        return;
      }
      // The same headers as cometsocket's server/serve-client.ts.
      res.writeHead(200, { 'Content-Type': 'application/javascript; charset=utf-8', 'Content-Length': bundle.length, 'Cache-Control': 'public, max-age=0, must-revalidate', ETag: etag });
      res.end(bundle);
      return;
    }
    const html = pages.get(path);
    if (html === undefined) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('no such page: ' + path);
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(html) });
    res.end(html);
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (http.address() as AddressInfo).port;
  const io = new IoServer(http, { serveClient: false });
  const errors: unknown[] = [];
  const ex: Exchange = { sent: 0, refused: [], whileDown: [], received: [], ended: 0, log: [] };
  const log = logger(ex);
  let armed: { n: number; period: number } | null = null;
  let stop: (() => void) | null = null;
  let connections = 0;
  io.on('connection', (socket: IoSocket) => {
    connections++;
    const id = connections;
    log('socket #' + id + ' connected on ' + socket.conn.transport.name);
    socket.on('disconnect', (reason) => log('socket #' + id + ' disconnected: ' + reason));
    socket.on('message', (d: unknown) => {
      const i = num(d);
      if (i !== null) ex.received.push(i);
    });
    socket.send('hello');
    // To every connected socket: with none connected (the client is reconnecting) Socket.IO drops
    // the message (no connection-state recovery by default): recorded as sent while down.
    if (armed && !stop)
      stop = pump(armed.n, armed.period, ex, (s) => {
        const up = io.of('/').sockets.size > 0;
        io.send(s);
        return up ? true : 'down';
      });
  });
  let pageOrigin = '';
  return {
    lib: 'socket.io',
    origin: 'http://127.0.0.1:' + port,
    port,
    get pageOrigin() {
      return pageOrigin;
    },
    set pageOrigin(o: string) {
      pageOrigin = o;
    },
    page(path, html) {
      pages.set(path, html);
    },
    get connections() {
      return connections;
    },
    raceLosers: 0,
    arm(n, period) {
      armed = { n, period };
    },
    exchange: ex,
    errors,
    async close() {
      if (stop) stop();
      io.removeAllListeners('connection');
      http.closeAllConnections();
      await io.close();
      http.closeAllConnections();
    },
  };
}

export function startLibServer(lib: Lib): Promise<LibServer> {
  return lib === 'cometsocket' ? startCometServer() : startSocketIoServer();
}
