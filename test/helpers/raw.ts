/**
 * Raw wire helpers for server tests: plain HTTP requests (node:http, no connection pooling),
 * long-polling handshakes, raw `ws` clients, a healthy real client, a TCP proxy that can be cut,
 * servers on a chosen port, and a cleanup list for afterEach.
 */
import { createServer as createHttpServer, request, type IncomingHttpHeaders, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, connect as netConnect, type AddressInfo, type Socket as NetSocket } from 'node:net';
import WebSocket from 'ws';
import { expect } from 'vitest';
import { connect, type Socket, type Transport } from '../../src/index';
import type { WebSocketConstructor } from '../../src/env';
import type { SocketOptions } from '../../src/options';
import { createServer, type RtServer } from '../../server/index';
import type { ServerOptions } from '../../server/options';
import { waitFor } from './server';

/**
 * 'error' events a `ws` client emitted with no listener. Node's EventEmitter would throw them as
 * uncaught exceptions; the WebSocket given to real clients records them here instead, so a test
 * can assert there were none without crashing the run.
 */
export const unhandledWsErrors: unknown[] = [];

class GuardedWebSocket extends WebSocket {
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'error' && this.listenerCount('error') === 0) {
      unhandledWsErrors.push(args[0]);
      return false;
    }
    return super.emit(event, ...args);
  }
}

/** The `ws` WebSocket for real clients (`connect(url, { WebSocket: WS })`). */
export const WS = GuardedWebSocket as unknown as WebSocketConstructor;

// ---- cleanup ------------------------------------------------------------------------------------

const pending: Array<() => unknown> = [];

/** Register something to undo after the test (run in reverse order by `cleanupAll`). */
export function defer(fn: () => unknown): void {
  pending.push(fn);
}

/** Run every deferred cleanup, newest first; errors are swallowed, each step is bounded. */
export async function cleanupAll(): Promise<void> {
  while (pending.length) {
    const fn = pending.pop()!;
    try {
      await Promise.race([Promise.resolve(fn()), sleep(2000)]);
    } catch {
      /* best effort */
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---- servers ------------------------------------------------------------------------------------

export interface OwnServer {
  rt: RtServer;
  http: HttpServer;
  port: number;
  /** http://127.0.0.1:port */
  origin: string;
  /** origin + path */
  url: string;
  close(): Promise<void>;
}

/**
 * A reference server on 127.0.0.1 at `port` (0 for any), registered for cleanup. Unlike
 * `startServer`, options are passed as they are (allowedOrigins stays at its default unless
 * given) and the HTTP server is exposed.
 */
export async function serve(options: ServerOptions = {}, port = 0): Promise<OwnServer> {
  const rt = createServer(options);
  const http = rt.listen(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    http.once('listening', () => resolve());
    http.once('error', reject);
  });
  const p = (http.address() as AddressInfo).port;
  let closed: Promise<void> | null = null;
  const s: OwnServer = {
    rt,
    http,
    port: p,
    origin: 'http://127.0.0.1:' + p,
    url: 'http://127.0.0.1:' + p + (options.path || '/rt'),
    close: () => (closed ||= new Promise<void>((r) => rt.close(() => r()))),
  };
  defer(() => s.close());
  return s;
}

// ---- plain HTTP ---------------------------------------------------------------------------------

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface HttpCall extends Promise<HttpResponse> {
  /** Destroy the request's TCP connection. */
  destroy(): void;
}

/** One HTTP request on its own connection (no agent); rejects after `timeout` ms. */
export function http(
  method: string,
  url: string,
  opts: { body?: string | Buffer; headers?: Record<string, string>; timeout?: number } = {},
): HttpCall {
  let destroy = (): void => {};
  const p = new Promise<HttpResponse>((resolve, reject) => {
    const req = request(url, { method, agent: false, headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode || 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', (e) => (clearTimeout(timer), reject(e)));
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error('HTTP ' + method + ' ' + url + ' timed out'));
    }, opts.timeout ?? 5000);
    req.on('error', (e) => (clearTimeout(timer), reject(e)));
    destroy = () => req.destroy();
    defer(() => req.destroy());
    if (opts.body !== undefined) req.end(opts.body);
    else req.end();
  });
  return Object.assign(p, { destroy: () => destroy() });
}

/** Parse a refusal body: one close frame. */
export function closeFrame(body: string): { t: string; c: number; r: string } {
  const f = JSON.parse(body);
  expect(f.t).toBe('c');
  return f;
}

/** Expect a refusal with this HTTP status and close code in the body. */
export function expectRefusal(r: HttpResponse, status: number, code: number): void {
  expect({ status: r.status, code: r.body ? JSON.parse(r.body).c : undefined }).toEqual({ status, code });
  expect(closeFrame(r.body).c).toBe(code);
}

export interface LpSession {
  sid: string;
  tok: string;
  /** `${url}/long-polling?sid&tok` */
  base: string;
  open: Record<string, unknown>;
}

/** Open a session by a raw long-polling handshake. */
export async function lpHandshake(url: string, headers?: Record<string, string>): Promise<LpSession> {
  const r = await http('GET', url + '/long-polling?v=1', { headers });
  expect(r.status).toBe(200);
  const open = JSON.parse(r.body.split('\n')[0]);
  expect(open.t).toBe('o');
  return {
    sid: open.sid,
    tok: open.tok,
    base: url + '/long-polling?sid=' + encodeURIComponent(open.sid) + '&tok=' + encodeURIComponent(open.tok),
    open,
  };
}

/** A data frame line with a payload of `n` characters. */
export function dataLine(s: number, n: number): string {
  return JSON.stringify({ t: 'd', s, d: 'x'.repeat(n) });
}

// ---- raw WebSocket ------------------------------------------------------------------------------

export interface RawWs {
  ws: WebSocket;
  /** Text messages received, in order ('<binary>' where a binary message came). */
  messages: string[];
  /** Binary messages received, in order. */
  binaries: Buffer[];
  opened: Promise<void>;
  /** The close code and reason (1006 when the connection dropped). */
  closed: Promise<{ code: number; reason: string }>;
  /** Resolve with the open frame. */
  openFrame(): Promise<Record<string, unknown>>;
  /** Resolve with the first close frame received. */
  closeFrame(): Promise<{ t: string; c: number; r: string }>;
}

/** A raw `ws` client; never acks, never pongs. */
export function rawWs(url: string, opts: { origin?: string } = {}): RawWs {
  const ws = new WebSocket(url.replace(/^http/, 'ws'), opts.origin ? { origin: opts.origin } : {});
  const messages: string[] = [];
  const binaries: Buffer[] = [];
  ws.on('message', (d, bin) => {
    messages.push(bin ? '<binary>' : d.toString());
    if (bin) binaries.push(d as Buffer);
  });
  ws.on('error', () => {});
  defer(() => ws.terminate());
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('close', () => reject(new Error('closed before open')));
  });
  opened.catch(() => {});
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  const frames = (): Array<Record<string, unknown>> =>
    messages
      .filter((m) => m !== '<binary>')
      .flatMap((m) => m.split('\n'))
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  return {
    ws,
    messages,
    binaries,
    opened,
    closed,
    async openFrame() {
      await waitFor(() => frames().some((f) => f.t === 'o'), 3000, 'open frame');
      return frames().find((f) => f.t === 'o')!;
    },
    async closeFrame() {
      await waitFor(() => frames().some((f) => f.t === 'c'), 3000, 'close frame');
      return frames().find((f) => f.t === 'c') as { t: string; c: number; r: string };
    },
  };
}

/** Status of a refused WebSocket upgrade (or 101 when it opened). */
export function upgradeStatus(url: string, origin?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws'), origin ? { origin } : {});
    defer(() => ws.terminate());
    const timer = setTimeout(() => reject(new Error('upgrade timed out')), 3000);
    ws.on('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      resolve(res.statusCode || 0);
      res.resume();
      ws.terminate();
    });
    ws.on('open', () => {
      clearTimeout(timer);
      resolve(101);
      ws.terminate();
    });
    ws.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

// ---- a healthy client ---------------------------------------------------------------------------

/** Make every session on `rt` echo what it receives. */
export function echo(rt: RtServer): void {
  rt.on('connection', (c) => c.on('message', (d) => c.send(d)));
}

export interface Healthy {
  sock: Socket;
  got: Array<string | ArrayBuffer>;
  /** Send a few messages and wait for their echoes (the server must echo). */
  exchange(label: string): Promise<void>;
}

/** A real client that is expected to keep working; the server must echo (`echo(rt)`). */
export async function healthy(url: string, transport: Transport, options: SocketOptions = {}): Promise<Healthy> {
  const sock = connect(url, { transports: [transport], WebSocket: WS, backoffBase: 20, backoffCap: 200, upgrade: false, ...options });
  defer(() => sock.close());
  const got: Array<string | ArrayBuffer> = [];
  sock.on('message', (d) => got.push(d));
  let opened = false;
  sock.on('open', () => (opened = true));
  await waitFor(() => opened, 3000, 'healthy client open');
  const h: Healthy = {
    sock,
    got,
    async exchange(label) {
      const want = [1, 2, 3].map((i) => label + '#' + i);
      for (const m of want) sock.send(m);
      await waitFor(() => want.every((m) => got.includes(m)), 3000, 'echo of ' + label + ' on ' + transport.name);
      expect(sock.state).toBe('open');
    },
  };
  return h;
}

// ---- a TCP proxy that can be cut ----------------------------------------------------------------

export interface Proxy {
  port: number;
  /** Connections ever accepted. */
  accepted: number;
  /** Destroy every open connection, both sides, at once. */
  cut(): number;
  close(): Promise<void>;
}

/** A TCP proxy on 127.0.0.1:`listenPort` (0 for any) to 127.0.0.1:`targetPort`. */
export async function startProxy(targetPort: number, listenPort = 0): Promise<Proxy> {
  const pairs = new Set<[NetSocket, NetSocket]>();
  const p: Proxy = {
    port: 0,
    accepted: 0,
    cut() {
      const n = pairs.size;
      for (const [a, b] of pairs) a.destroy(), b.destroy();
      pairs.clear();
      return n;
    },
    close: () =>
      new Promise<void>((r) => {
        p.cut();
        server.close(() => r());
      }),
  };
  const server = createNetServer((c) => {
    p.accepted++;
    const s = netConnect(targetPort, '127.0.0.1');
    const pair: [NetSocket, NetSocket] = [c, s];
    pairs.add(pair);
    const kill = (): void => {
      pairs.delete(pair);
      c.destroy();
      s.destroy();
    };
    c.on('error', kill).on('close', kill);
    s.on('error', kill).on('close', kill);
    c.pipe(s);
    s.pipe(c);
  });
  await new Promise<void>((r) => server.listen(listenPort, '127.0.0.1', () => r()));
  p.port = (server.address() as AddressInfo).port;
  defer(() => p.close());
  return p;
}

/** A plain HTTP server on 127.0.0.1:0 with a handler, registered for cleanup. */
export async function plainHttpServer(handler: Parameters<typeof createHttpServer>[1]): Promise<{ server: HttpServer; port: number }> {
  const server = createHttpServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  defer(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  );
  return { server, port: (server.address() as AddressInfo).port };
}
