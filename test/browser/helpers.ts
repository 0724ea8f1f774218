/**
 * Real-browser helpers: the reference server attached to a node:http server that also serves
 * small test pages from the same origin, one headless Chromium per test file, and bounded waits
 * inside the page. Nothing here talks to anything but 127.0.0.1.
 */
import { execSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Socket as NetSocket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { expect } from 'vitest';
import { createServer, type Connection, type RtServer } from '../../server/index';
import type { ServerOptions } from '../../server/options';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BUNDLE = join(ROOT, 'dist', 'cometsocket.iife.min.js');
/** The development bundle: the same code unminified, with the debug messages. */
export const DEV_BUNDLE = join(ROOT, 'dist', 'cometsocket.iife.js');
export const RT_PATH = '/rt';

// ---- the build ---------------------------------------------------------------------------------

function newest(dir: string): number {
  return readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
    const p = join(dir, e.name);
    return Math.max(m, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }, 0);
}

let built = false;

function bundleIsFresh(): boolean {
  const sources = Math.max(newest(join(ROOT, 'src')), newest(join(ROOT, 'transports')), newest(join(ROOT, 'server')));
  return [BUNDLE, DEV_BUNDLE].every((f) => existsSync(f) && statSync(f).mtimeMs >= sources);
}

/** One build at a time across the test files (workers) that call ensureBuilt together. */
const BUILD_LOCK = join(tmpdir(), 'cometsocket-build-' + createHash('sha1').update(ROOT).digest('hex').slice(0, 12) + '.lock');

/**
 * Make sure dist/cometsocket.iife.min.js exists and is not older than the sources it is built
 * from (the same rule as scripts/ensure.mjs); run `npm run build` once otherwise.
 */
export async function ensureBuilt(): Promise<void> {
  const deadline = Date.now() + 180000;
  while (!built) {
    if (bundleIsFresh()) {
      built = true;
      break;
    }
    try {
      mkdirSync(BUILD_LOCK);
    } catch {
      // Another worker is building: wait for it (a lock older than 3 minutes was abandoned).
      try {
        if (Date.now() - statSync(BUILD_LOCK).mtimeMs > 180000) rmSync(BUILD_LOCK, { recursive: true, force: true });
      } catch {
        /* just released */
      }
      if (Date.now() > deadline) throw new Error('timed out waiting for another worker to build ' + BUNDLE);
      await sleep(200);
      continue;
    }
    try {
      if (!bundleIsFresh()) execSync('npm run build', { cwd: ROOT, stdio: 'pipe', timeout: 120000 });
    } finally {
      rmSync(BUILD_LOCK, { recursive: true, force: true });
    }
    if (!existsSync(BUNDLE)) throw new Error('npm run build did not produce ' + BUNDLE);
    built = true;
  }
}

// ---- the server --------------------------------------------------------------------------------

export interface TestServer {
  rt: RtServer;
  http: HttpServer;
  /** http://127.0.0.1:PORT */
  origin: string;
  /** Serve `html` at `path` (same origin as the endpoint); returns the page's absolute URL. */
  page(path: string, html: string): string;
  /** TCP sockets of live WebSocket upgrades under `${RT_PATH}/websocket`. */
  readonly wsSockets: ReadonlySet<Duplex>;
  /** TCP sockets that carried a plain HTTP request of each transport under `${RT_PATH}/` (keep-alive included). */
  readonly httpSockets: ReadonlyMap<string, ReadonlySet<NetSocket>>;
  /** Destroy every live WebSocket's TCP socket (an abrupt network drop); returns how many. */
  killWebSockets(): number;
  /** Destroy every open TCP socket that carried a request of HTTP transport `name` (polls, streams, POSTs); returns how many. */
  killHttp(name: string): number;
  /**
   * Make every live WebSocket's TCP socket a black hole, as a dead network path would: stop
   * reading what the browser sends and drop what the server writes. The sockets stay open until
   * `killWebSockets()`. Returns how many; `dropped` counts what was thrown away (server writes, browser bytes).
   */
  blackholeWebSockets(): number;
  readonly dropped: { writes: number; bytes: number; inBytes: number };
  /**
   * `refuseUpgrades`: drop that many next WebSocket upgrades; `delayUpgrades`: hand upgrades to
   * the endpoint that many ms late (a slow proxy); `upgrades`: how many the browser asked for.
   */
  readonly control: { refuseUpgrades: number; delayUpgrades: number; upgrades: number };
  /** Exceptions thrown by the server while handling an upgrade, or by the test application. */
  readonly errors: unknown[];
  close(): Promise<void>;
}

/**
 * The reference server (`createServer({ path: '/rt', allowedOrigins })`) attached to a node:http
 * server on 127.0.0.1, port 0, whose own request listener serves the registered test pages.
 */
export async function startTestServer(options: ServerOptions = {}): Promise<TestServer> {
  const pages = new Map<string, string>();
  const http = createHttpServer((req, res) => {
    const path = (req.url || '/').split('?')[0];
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
  const origin = 'http://127.0.0.1:' + (http.address() as AddressInfo).port;

  const rt = createServer({ path: RT_PATH, allowedOrigins: [origin], ...options });
  // attach() takes over the 'request' listeners present now (the page handler above) and calls
  // them only for requests outside the endpoint; listeners added afterwards see every request.
  rt.attach(http);

  // Keep track of the endpoint's TCP sockets, so a test can cut them like a network would, and
  // stand between the browser and the endpoint's upgrade handler like a proxy: it can drop or
  // delay WebSocket upgrades, and an exception the endpoint throws while upgrading is recorded
  // (it would otherwise take the whole test process down).
  const wsSockets = new Set<Duplex>();
  const httpSockets = new Map<string, Set<NetSocket>>();
  const errors: unknown[] = [];
  const control = { refuseUpgrades: 0, delayUpgrades: 0, upgrades: 0 };
  const endpointUpgrade = http.listeners('upgrade') as Array<(req: IncomingMessage, socket: Duplex, head: Buffer) => void>;
  http.removeAllListeners('upgrade');
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const dispatch = (): void => {
      try {
        for (const l of endpointUpgrade) l.call(http, req, socket, head);
      } catch (e) {
        errors.push(e);
        socket.destroy();
      }
    };
    if (!(req.url || '').startsWith(RT_PATH + '/websocket')) return dispatch();
    control.upgrades++;
    if (control.refuseUpgrades > 0) {
      // A proxy that drops WebSocket upgrades.
      control.refuseUpgrades--;
      socket.destroy();
      return;
    }
    wsSockets.add(socket);
    socket.once('close', () => wsSockets.delete(socket));
    if (control.delayUpgrades > 0) setTimeout(dispatch, control.delayUpgrades);
    else dispatch();
  });
  http.on('request', (req: IncomingMessage) => {
    const m = /^[^?]*\/([\w-]+)(\?|$)/.exec(req.url || '');
    if (!(req.url || '').startsWith(RT_PATH + '/') || !m) return;
    let set = httpSockets.get(m[1]);
    if (!set) httpSockets.set(m[1], (set = new Set()));
    const s = req.socket;
    if (set.has(s)) return;
    const live = set;
    live.add(s);
    s.once('close', () => live.delete(s));
  });

  const dropped = { writes: 0, bytes: 0, inBytes: 0 };
  return {
    rt,
    http,
    origin,
    wsSockets,
    httpSockets,
    dropped,
    control,
    errors,
    blackholeWebSockets() {
      for (const s of Array.from(wsSockets)) {
        // Read and discard what the browser sends (pause() alone would be undone: the ws
        // receiver resumes its socket whenever it drains).
        s.removeAllListeners('data');
        s.on('data', (chunk: Buffer) => {
          dropped.inBytes += chunk.length;
        });
        // Every write "succeeds" and goes nowhere.
        s.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
          dropped.writes++;
          dropped.bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
          const cb = rest.find((x) => typeof x === 'function') as ((err?: Error | null) => void) | undefined;
          if (cb) process.nextTick(cb);
          return true;
        }) as Duplex['write'];
      }
      return wsSockets.size;
    },
    page(path, html) {
      pages.set(path, html);
      return origin + path;
    },
    killHttp(name) {
      const set = httpSockets.get(name);
      const list = set ? Array.from(set) : [];
      for (const s of list) s.destroy();
      return list.length;
    },
    killWebSockets() {
      const n = wsSockets.size;
      for (const s of Array.from(wsSockets)) s.destroy();
      return n;
    },
    close() {
      return new Promise<void>((resolve) => {
        rt.close(() => {
          for (const s of Array.from(wsSockets)) s.destroy();
          http.closeAllConnections();
          http.close(() => resolve());
        });
      });
    },
  };
}

// ---- ports ---------------------------------------------------------------------------------------

/** A free TCP port on 127.0.0.1: bind a server to port 0, read the port, close it. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Whether a TCP connection to 127.0.0.1:`port` succeeds. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = netConnect(port, '127.0.0.1');
    const done = (ok: boolean): void => {
      c.destroy();
      resolve(ok);
    };
    c.setTimeout(500, () => done(false));
    c.once('connect', () => done(true));
    c.once('error', () => done(false));
  });
}

/** A server program (nginx, squid) run in the foreground by a test, its files in `dir`. */
export interface Daemon {
  child: ChildProcess;
  /** A file of `dir` ('' when absent). */
  read(name: string): string;
  /** What it wrote to stdout and stderr. */
  output(): string;
  /** Stop it by its PID (SIGTERM, SIGKILL after `stopMs`) and remove `dir`. */
  close(): Promise<void>;
}

/**
 * Spawn `command` in the foreground with its files in `dir`; resolve once 127.0.0.1:`port`
 * accepts TCP connections (within `readyMs`), else stop it and throw with `diagnostics()`.
 */
export async function startDaemon(
  name: string,
  command: string,
  args: string[],
  o: { dir: string; port: number; readyMs: number; stopMs: number; diagnostics(d: Daemon): string },
): Promise<Daemon> {
  const out: string[] = [];
  const child = spawn(command, args, { cwd: o.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (b: Buffer) => out.push(b.toString()));
  child.stderr!.on('data', (b: Buffer) => out.push(b.toString()));
  let exited: string | null = null;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = 'exited with ' + (signal || code);
      resolve();
    });
    child.once('error', (e) => {
      exited = 'failed to start: ' + e.message;
      resolve();
    });
  });
  const d: Daemon = {
    child,
    read(file) {
      try {
        return readFileSync(join(o.dir, file), 'utf8');
      } catch {
        return '';
      }
    },
    output: () => out.join(''),
    async close() {
      // By its PID only (child.kill signals child.pid): the process this test started, nothing else.
      if (exited === null && child.pid !== undefined) {
        child.kill('SIGTERM');
        const stopped = await Promise.race([exit.then(() => true), sleep(o.stopMs).then(() => false)]);
        if (!stopped) {
          child.kill('SIGKILL');
          await Promise.race([exit, sleep(2000)]);
        }
      }
      rmSync(o.dir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + o.readyMs;
  for (;;) {
    if (exited !== null || Date.now() > deadline) {
      const why = o.diagnostics(d);
      await d.close();
      throw new Error(name + (exited !== null ? ' ' + exited + ' before listening' : ' did not accept connections within ' + o.readyMs + ' ms') + ' on ' + o.port + '\n' + why);
    }
    if (await canConnect(o.port)) return d;
    await sleep(50);
  }
}

// ---- the browser -------------------------------------------------------------------------------

export interface TestBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

/**
 * One headless Chromium (the Debian package) with a fresh profile directory, removed on close.
 * `options.args`: more command-line flags, after the usual ones (e.g. `--proxy-server=…`).
 */
export async function launchBrowser(options: { args?: readonly string[] } = {}): Promise<TestBrowser> {
  const dir = mkdtempSync(join(tmpdir(), 'cometsocket-chromium-'));
  let context: BrowserContext;
  try {
    // Playwright refuses --user-data-dir in launch() args: the persistent context takes the directory.
    context = await chromium.launchPersistentContext(dir, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', ...(options.args || [])],
      timeout: 30000,
    });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    context,
    async close() {
      try {
        await context.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

export interface TestPage {
  page: Page;
  /** Uncaught exceptions and unhandled rejections in the page ('pageerror'). */
  errors: string[];
  /** console.error / console.warning lines, for diagnostics. */
  console: string[];
}

/** Open a new tab on `url`, collecting uncaught page errors from before the first script runs. */
export async function openPage(browser: TestBrowser, url: string): Promise<TestPage> {
  const page = await browser.context.newPage();
  page.setDefaultTimeout(15000);
  const errors: string[] = [];
  const lines: string[] = [];
  page.on('pageerror', (e) => errors.push(e.stack || e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') lines.push(m.type() + ': ' + m.text());
  });
  // Not 'load': a forever-frame (iframe-streaming) holds the page's load event back.
  await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 15000 });
  return { page, errors, console: lines };
}

/**
 * Wait, inside the page, until `expression` (a JavaScript expression string) is truthy; at most
 * `timeout` ms. On timeout the error carries `what` and the page's state from `describe`.
 */
export async function waitFor(page: Page, expression: string, what: string, timeout = 10000, describe = 'JSON.stringify(window.T && window.T.summary ? window.T.summary() : null)'): Promise<void> {
  try {
    await page.waitForFunction(expression, undefined, { timeout, polling: 10 });
  } catch (e) {
    let state = '(page state unavailable)';
    try {
      state = String(await page.evaluate(describe));
    } catch {
      /* the page is gone */
    }
    throw new Error('timed out after ' + timeout + ' ms waiting for ' + what + '; page state: ' + state + '\n' + (e as Error).message);
  }
}

/** Resolve when `check()` is true, polling every 5 ms; reject after `ms` (Node side). */
export async function waitUntil(check: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out after ' + ms + ' ms waiting for ' + what);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---- the test page -----------------------------------------------------------------------------

/** Transport names and the `CometSocket` global that holds each. */
export const TRANSPORTS = {
  websocket: 'webSocket',
  sse: 'sse',
  'xhr-streaming': 'xhrStreaming',
  'iframe-streaming': 'iframeStreaming',
  'long-polling': 'longPolling',
  'short-polling': 'shortPolling',
} as const;
export type TransportName = keyof typeof TRANSPORTS;

export interface PageConfig {
  /**
   * Which transports the page asks for: every one (`connect('/rt')`), or the list given,
   * as `connect('/rt', { transports: [CometSocket.webSocket, …] })`.
   */
  transports: 'default' | TransportName | readonly TransportName[];
  /** More connect() options, as JavaScript source, e.g. `parallelFallback: false`. */
  extra?: string;
  /** Globals to delete (`<script>delete window.WebSocket</script>`) before the bundle loads. */
  deleteGlobals?: readonly string[];
  /** Messages the page sends: 'c0', 'c1', … */
  count: number;
  /** Start sending at once after connect() (before open), or on the 'open' event, or when told (T.pump). */
  sendWhen: 'now' | 'open' | 'manual';
  /** Messages per timer tick; 0 sends everything in one go. */
  chunk?: number;
  /** Never be more than this many messages ahead of the server's own messages received (0: no limit). */
  lead?: number;
}

/**
 * A plain HTML page that loads the bundle by script tag from the endpoint and records everything
 * the socket does in `window.T`.
 */
export function testPage(c: PageConfig): string {
  const list = c.transports === 'default' ? null : typeof c.transports === 'string' ? [c.transports as TransportName] : c.transports;
  const opts = [list ? 'transports: [' + list.map((n) => 'CometSocket.' + TRANSPORTS[n]).join(', ') + ']' : '', c.extra || ''].filter(Boolean).join(', ');
  const connect = "CometSocket.connect('" + RT_PATH + "'" + (opts ? ', { ' + opts + ' }' : '') + ')';
  const deletes = (c.deleteGlobals || []).map((g) => 'delete window.' + g + ';').join(' ');
  return `<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>cometsocket browser test</title>
${deletes ? '<script>' + deletes + '</script>' : ''}
<script src="${RT_PATH}/cometsocket.min.js"></script>
</head>
<body>
<script>
var T = (window.T = {
  got: [],
  own: 0,
  sent: 0,
  refused: 0,
  events: [],
  transports: [],
  closeInfo: null,
  hadWebSocket: typeof window.WebSocket === 'function',
  hadEventSource: typeof window.EventSource === 'function',
  hasGlobal: typeof window.CometSocket === 'object' && typeof CometSocket.connect === 'function',
});
// What worked is remembered per endpoint: start every page from nothing.
try { localStorage.clear(); } catch (e) {}
var sock = (T.sock = ${connect});
// Events that never happen in a healthy exchange: a protocol error, a refusal, a lost or closed session.
T.fatal = function () {
  for (var i = 0; i < T.events.length; i++) if (/^(reconnecting:(1002|4\d\d\d)|session-lost|close)/.test(T.events[i])) return T.events[i];
  return null;
};
T.summary = function () {
  return { state: sock.state, transport: sock.transport, got: T.got.length, own: T.own, sent: T.sent, refused: T.refused, events: T.events.slice(-20), closeInfo: T.closeInfo };
};
sock.on('open', function () { T.events.push('open'); });
sock.on('transport', function (n) { T.transports.push(n); T.events.push('transport:' + n); });
sock.on('resume', function () { T.events.push('resume'); });
sock.on('reconnecting', function (i) { T.events.push('reconnecting:' + i.code + ' ' + i.reason); });
sock.on('session-lost', function (i) { T.events.push('session-lost:' + i.code + ' ' + i.reason + ' unacked=' + i.unacked.length); });
sock.on('drain', function () { T.events.push('drain'); });
sock.on('close', function (i) { T.closeInfo = i; T.events.push('close:' + i.code + ' ' + i.reason); });
sock.on('message', function (d) {
  T.got.push(d);
  if (typeof d === 'string' && d.charAt(0) === 's') T.own++;
});
T.pump = function (n, chunk, lead) {
  var tick = function () {
    var limit = lead ? Math.min(n, T.own + lead) : n;
    var k = 0;
    while (T.sent < limit && (!chunk || k < chunk)) {
      if (!sock.send('c' + T.sent)) { T.refused++; break; }
      T.sent++;
      k++;
    }
    if (T.sent < n) setTimeout(tick, 4);
  };
  tick();
};
${c.sendWhen === 'now' ? `T.pump(${c.count}, ${c.chunk || 0}, ${c.lead || 0});` : ''}
${c.sendWhen === 'open' ? `sock.once('open', function () { T.pump(${c.count}, ${c.chunk || 0}, ${c.lead || 0}); });` : ''}
</script>
</body>
</html>
`;
}

/** State of the page's `window.T` that the assertions read. */
export interface PageResult {
  got: string[];
  events: string[];
  transports: string[];
  transport: string | null;
  state: string;
  sent: number;
  refused: number;
  hadWebSocket: boolean;
  hadEventSource: boolean;
  hasGlobal: boolean;
}

export function readPage(page: Page): Promise<PageResult> {
  return page.evaluate(
    `(function () {
      var T = window.T;
      return { got: T.got, events: T.events, transports: T.transports, transport: T.sock.transport, state: T.sock.state, sent: T.sent, refused: T.refused, hadWebSocket: T.hadWebSocket, hadEventSource: T.hadEventSource, hasGlobal: T.hasGlobal };
    })()`,
  ) as Promise<PageResult>;
}

/** ['p0', 'p1', …] */
export function numbered(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => prefix + i);
}

// ---- the server's application ------------------------------------------------------------------

export interface AppOptions {
  /** Messages the server sends on each new session: 's0', 's1', … */
  count: number;
  /** Messages per timer tick (2 ms); 0 sends everything at once, on 'connection'. */
  chunk?: number;
  /** Never be more than this many of its own messages ahead of the page's messages received (0: no limit). */
  lead?: number;
  /** Called after each message from the page, with how many have arrived. */
  onReceive?: (received: number, conn: Connection) => void;
}

export interface App {
  conns: Connection[];
  /** Every message from any page, in arrival order. */
  received: string[];
  /** Own messages sent so far, over every session. */
  sent: number;
  /** Transport names the server saw, in order ('connection', then each 'transport' event). */
  transports: string[];
  /** 'code reason' of every session close. */
  closes: string[];
  stop(): void;
}

/**
 * The test application: on each new session, send `count` numbered messages of its own
 * ('s0', 's1', …), and echo every message from the page as 'e:' + message.
 */
export function serveApp(srv: TestServer, o: AppOptions): App {
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const app: App = {
    conns: [],
    received: [],
    sent: 0,
    transports: [],
    closes: [],
    stop() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
  };
  const guard = (fn: () => void): void => {
    try {
      fn();
    } catch (e) {
      srv.errors.push(e);
    }
  };
  srv.rt.on('connection', (conn) => {
    app.conns.push(conn);
    if (conn.transport) app.transports.push(conn.transport);
    conn.on('transport', (name) => app.transports.push(name));
    conn.on('close', (code, reason) => app.closes.push(code + ' ' + reason));
    conn.on('message', (d) => {
      const s = typeof d === 'string' ? d : '(binary)';
      app.received.push(s);
      guard(() => conn.send('e:' + s));
      if (o.onReceive) o.onReceive(app.received.length, conn);
    });
    let own = 0;
    const pump = (): void => {
      const limit = o.lead ? Math.min(o.count, app.received.length + o.lead) : o.count;
      guard(() => {
        for (let k = 0; own < limit && (!o.chunk || k < o.chunk); k++) conn.send('s' + own++), app.sent++;
      });
      if (own < o.count && conn.state === 'open') {
        const t = setTimeout(() => (timers.delete(t), pump()), 2);
        timers.add(t);
      }
    };
    pump();
  });
  return app;
}

// ---- the checks every exchange cell makes ---------------------------------------------------------

/**
 * The traffic of `testPage` and `serveApp` arrived exactly once and in order both ways (the page's
 * c0 … c(n-1) at the server; the server's s0 … s(n-1) and the echo of every page message in the
 * page), and nothing threw in the server or the page. `why` is added to the messages.
 */
export function expectExactlyOnceInOrder(srv: TestServer, r: PageResult, a: App, n: number, t: TestPage, why = ''): void {
  expect(srv.errors, 'exceptions in the server').toEqual([]);
  expect(a.received, 'messages the server received; ' + why).toEqual(numbered('c', n));
  expect(r.got.length, 'messages the page received; ' + why).toBe(2 * n);
  expect(r.got.filter((d) => d.charAt(0) === 's')).toEqual(numbered('s', n));
  expect(r.got.filter((d) => d.slice(0, 2) === 'e:')).toEqual(numbered('e:c', n));
  expect(r.sent).toBe(n);
  expect(r.refused, 'send() calls that returned false').toBe(0);
  expect(t.errors, 'uncaught errors in the page; console: ' + t.console.join(' | ') + '; ' + why).toEqual([]);
}

/**
 * One session from start to end: opened once, never lost, nothing closed. A first visit starts the
 * first fallback alongside WebSocket: the race loser opens a session too, but the application
 * never sees it (racing handshakes are announced when kept, PROTOCOL.md "Handshake").
 */
export function expectOneSession(r: PageResult, a: App, why = ''): void {
  const live = a.conns.filter((c) => c.state === 'open');
  expect(live.length, 'sessions open at the server').toBe(1);
  expect(a.conns.length, "sessions the application saw ('connection' events)").toBe(1);
  expect(a.closes, 'sessions closed').toEqual([]);
  expect(r.events.filter((e) => /^(session-lost|close)/.test(e)), 'socket events; ' + why).toEqual([]);
  expect(r.events.filter((e) => e === 'open'), why).toEqual(['open']);
  expect(r.state).toBe('open');
}
