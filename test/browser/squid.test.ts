/**
 * The script-tag bundle in headless Chromium behind a REAL squid forward proxy configured like a
 * typical corporate proxy (the Debian package, /usr/sbin/squid, 5.7; `scripts/test-all.sh`
 * installs it): Debian's default access rules, "CONNECT to 443 only". Chromium is told to use it
 * (`--proxy-server`, and `--proxy-bypass-list=<-loopback>`, or Chromium would go straight to
 * 127.0.0.1), so the page, the bundle and every /rt/… request are proxy requests
 * (`GET http://127.0.0.1:PORT/…`) that squid forwards to the test server; the page's origin is the
 * test server's own, so the server's default Origin check applies.
 *
 * Chromium tunnels a ws:// WebSocket through an HTTP proxy with `CONNECT 127.0.0.1:PORT`, which
 * `http_access deny CONNECT !SSL_ports` refuses (403, TCP_DENIED in squid's access log): no
 * WebSocket can open through this proxy, every HTTP transport must carry the session.
 *
 * One squid (a fresh temp directory, started and stopped here by PID), one server and one browser
 * for the whole file; every cell checks in squid's access log, and in the Via header of the
 * session's handshake at the server, that its traffic really went through squid. One rule is
 * added after Debian's, for the test's sake only: squid forwards nothing but requests to
 * 127.0.0.1 (Chromium sends its own background requests to Google through the proxy too).
 * SQUID_LOG=1 prints squid's whole access log at the end.
 *
 * Traffic: the server sends 's0' … 's199' on each new session and echoes every page message as
 * 'e:' + message; the page sends 'c0' … 'c199' once open. Timings are printed ('[squid] …'):
 * first message after connect() (measured in the page), and the whole exchange (from opening the tab).
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ensureBuilt,
  expectExactlyOnceInOrder,
  expectOneSession,
  freePort,
  launchBrowser,
  openPage,
  readPage,
  serveApp,
  startDaemon,
  sleep,
  startTestServer,
  testPage,
  waitFor,
  waitUntil,
  type App,
  type Daemon,
  type PageConfig,
  type PageResult,
  type TestBrowser,
  type TestPage,
  type TestServer,
  type TransportName,
} from './helpers';

const SQUID = '/usr/sbin/squid';
/** Messages each way. */
const N = 200;

// ---- squid ---------------------------------------------------------------------------------------

/** One line of squid's access log (its native format), split in fields. */
interface LogEntry {
  line: string;
  /** When squid took the request (ms since the epoch, as Date.now()): the line's time minus its elapsed ms. */
  start: number;
  /** Result code / HTTP status: 'TCP_MISS/200', 'TCP_DENIED/403', … */
  result: string;
  /** 'GET', 'POST', 'CONNECT', … */
  method: string;
  /** The absolute URL of a proxy request, 'host:port' of a CONNECT. */
  url: string;
  /** Hierarchy code / peer: 'HIER_DIRECT/127.0.0.1' (forwarded), 'HIER_NONE/-' (not forwarded). */
  hierarchy: string;
}

interface Squid {
  /** http://127.0.0.1:PORT, for --proxy-server. */
  proxy: string;
  port: number;
  dir: string;
  child: ChildProcess;
  /** The access log so far, one entry a transaction (written when the transaction ends). */
  accessLog(): LogEntry[];
  /** squid's cache.log so far, and what it wrote to stdout/stderr. */
  diagnostics(): string;
  close(): Promise<void>;
}

/** uid and gid of the system user `name` (/etc/passwd), or null. */
function systemUser(name: string): { uid: number; gid: number } | null {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.split(':')[0] === name);
  if (!line) return null;
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/**
 * Start /usr/sbin/squid in the foreground (`-N`: no daemon, no kid processes) on a free port with
 * a minimal corporate configuration, everything it writes (pid, logs) in a fresh temp directory;
 * resolve once its port accepts TCP connections (within 10 s).
 */
async function startSquid(): Promise<Squid> {
  // Like nginx.test.ts with nginx: squid is a requirement of this file, not an optional extra.
  if (!existsSync(SQUID)) throw new Error(SQUID + ' is missing: scripts/test-all.sh installs it (Debian package squid, without starting the system service)');
  const dir = mkdtempSync(join(tmpdir(), 'cometsocket-squid-'));
  // Started as root, squid drops to cache_effective_user (Debian's `proxy`) right after reading
  // its configuration: the logs and the pid file are then written as that user.
  const root = process.getuid !== undefined && process.getuid() === 0;
  const proxyUser = root ? systemUser('proxy') : null;
  if (root && !proxyUser) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error('no system user "proxy" for squid to run as (it is created by the Debian package squid)');
  }
  if (proxyUser) chownSync(dir, proxyUser.uid, proxyUser.gid);
  const port = await freePort();
  const conf = join(dir, 'squid.conf');
  writeFileSync(
    conf,
    `# A corporate forward proxy: Debian's /etc/squid/squid.conf access rules, nothing cached.
http_port 127.0.0.1:${port}
visible_hostname cometsocket-test-proxy
${proxyUser ? 'cache_effective_user proxy' : ''}
acl SSL_ports port 443
acl Safe_ports port 80          # http
acl Safe_ports port 21          # ftp
acl Safe_ports port 443         # https
acl Safe_ports port 70          # gopher
acl Safe_ports port 210         # wais
acl Safe_ports port 1025-65535  # unregistered ports (the test server's port is one)
acl Safe_ports port 280         # http-mgmt
acl Safe_ports port 488         # gss-http
acl Safe_ports port 591         # filemaker
acl Safe_ports port 777         # multiling http
http_access deny !Safe_ports
http_access deny CONNECT !SSL_ports
# Not corporate, the test's sandbox: nothing but the test server, and no DNS server but loopback
# (Chromium sends its own background requests to Google hosts through the proxy too).
acl test_server dstdomain 127.0.0.1
http_access deny !test_server
dns_nameservers 127.0.0.1
http_access allow localhost
http_access deny all
cache deny all
pid_filename ${dir}/squid.pid
access_log stdio:${dir}/access.log
cache_log ${dir}/cache.log
cache_store_log none
coredump_dir ${dir}
logfile_rotate 0
pinger_enable off
shutdown_lifetime 0 seconds
`,
  );
  try {
    execFileSync(SQUID, ['-k', 'parse', '-f', conf], { stdio: 'pipe', timeout: 10000 });
  } catch (e) {
    const err = e as { stderr?: Buffer; stdout?: Buffer; message: string };
    rmSync(dir, { recursive: true, force: true });
    throw new Error('squid -k parse refused the configuration: ' + err.message + '\n' + String(err.stderr || '') + String(err.stdout || ''));
  }
  const diagnostics = (d: Daemon): string => 'squid cache.log (tail): ' + d.read('cache.log').split('\n').slice(-40).join('\n') + '\nsquid output: ' + d.output();
  // shutdown_lifetime 0: squid exits within a second or three of SIGTERM (it closes its logs first).
  const d = await startDaemon('squid', SQUID, ['-N', '-f', conf], { dir, port, readyMs: 10000, stopMs: 5000, diagnostics });
  return {
    proxy: 'http://127.0.0.1:' + port,
    port,
    dir,
    child: d.child,
    accessLog: () =>
      d
        .read('access.log')
        .split('\n')
        .filter(Boolean)
        .map((line) => {
          // time elapsed client result/status bytes method URL user hierarchy/peer type
          const f = line.trim().split(/\s+/);
          return { line, start: Math.round(Number(f[0]) * 1000) - Number(f[1]), result: f[3] || '', method: f[5] || '', url: f[6] || '', hierarchy: f[8] || '' };
        }),
    diagnostics: () => diagnostics(d),
    close: () => d.close(),
  };
}

// ---- one squid, one server and one browser (using the squid) for the file ---------------------------

let srv: TestServer | null = null;
let squid: Squid | null = null;
let browser: TestBrowser | null = null;
let apps: App[] = [];
let tabs: TestPage[] = [];

beforeAll(async () => {
  await ensureBuilt();
  // The server's default Origin check: squid forwards the page's Host untouched.
  srv = await startTestServer();
  squid = await startSquid();
  browser = await launchBrowser({
    // '<-loopback>' removes Chromium's implicit bypass of localhost/127.0.0.1: without it the
    // proxy would be ignored for this server, and the access-log checks below would fail.
    args: ['--proxy-server=' + squid.proxy, '--proxy-bypass-list=<-loopback>'],
  });
}, 120000);

afterEach(async () => {
  for (const t of tabs) await t.page.close().catch(() => undefined);
  tabs = [];
  for (const a of apps) a.stop();
  apps = [];
  // serveApp's 'connection' listeners: the next test's application starts alone.
  if (srv) srv.rt.removeAllListeners('connection');
}, 20000);

afterAll(async () => {
  if (browser) await browser.close().catch(() => undefined);
  if (squid && process.env.SQUID_LOG) console.log(squid.accessLog().map((e) => e.line).join('\n'));
  if (squid) await squid.close();
  if (srv) await srv.close();
  browser = squid = srv = null;
}, 30000);

const serverPort = (): number => Number(new URL(srv!.origin).port);

/**
 * Access-log entries of transactions squid took at `since` (Date.now()) or later: a cell's own.
 * (A line is written when its transaction ends: the stream of the previous cell's tab, aborted
 * when the tab closed, may be written during the next cell; its start time tells it apart.)
 */
const logSince = (since: number): LogEntry[] =>
  squid!
    .accessLog()
    .filter((e) => e.start >= since - 10);

/** Access-log entries since `since`, of proxy requests for paths starting with `path` on the test server. */
const requests = (path: string, since = 0): LogEntry[] => logSince(since).filter((e) => e.method !== 'CONNECT' && e.url.startsWith(srv!.origin + path));

/** Access-log entries since `since`, of CONNECTs to the test server (WebSocket tunnels). */
const tunnels = (since = 0): LogEntry[] => logSince(since).filter((e) => e.method === 'CONNECT' && e.url === '127.0.0.1:' + serverPort());

/**
 * The test page, plus timing: `window.M.t0` just before connect(), `window.M.first` at the first
 * 'message' (performance.now(), in the page), by wrapping CometSocket.connect after the bundle.
 */
function timedPage(c: PageConfig): string {
  const html = testPage(c);
  const timing = `<script>
(function () {
  var connect = CometSocket.connect;
  window.M = { t0: 0, first: 0 };
  CometSocket.connect = function () {
    M.t0 = performance.now();
    var s = connect.apply(this, arguments);
    s.on('message', function () { if (!M.first) M.first = performance.now(); });
    return s;
  };
})();
</script>
</head>`;
  if (html.indexOf('</head>') < 0) throw new Error('testPage() has no </head> to put the timing script before');
  return html.replace('</head>', timing);
}

/** Open `html` at `path` THROUGH squid in a new tab (closed after the test); its application is returned too. */
async function open(path: string, html: string): Promise<{ t: TestPage; a: App }> {
  const a = serveApp(srv!, { count: N });
  apps.push(a);
  srv!.page(path, html);
  const t = await openPage(browser!, srv!.origin + path);
  tabs.push(t);
  return { t, a };
}

/** ms from connect() to the first message, in the page; null if none yet. */
async function firstMessageMs(page: Page): Promise<number | null> {
  const m = (await page.evaluate('window.M ? { t0: M.t0, first: M.first } : null')) as { t0: number; first: number } | null;
  return m && m.first ? Math.round(m.first - m.t0) : null;
}

/**
 * N messages each way through squid on the page at `path`: wait (bounded) until both sides have
 * everything, let late duplicates arrive, then check exactly once and in order both ways, one
 * session, no session-lost or close, no page error; the socket ends on `expected`; the page, the
 * bundle and the session came through squid.
 */
async function exchange(path: string, transports: 'default' | TransportName, expected: string): Promise<{ r: PageResult; a: App; t: TestPage; ms: number; first: number | null; t0: number }> {
  const t0 = Date.now();
  const { t, a } = await open(path, timedPage({ transports, count: N, sendWhen: 'open' }));
  const fatal = 'window.T.fatal && /^(session-lost|close)/.test(window.T.fatal() || "")';
  await waitFor(t.page, `window.T && (window.T.got.length >= ${2 * N} || ${fatal})`, 2 * N + ' messages in the page through squid', 15000);
  await waitUntil(() => a.received.length >= N, 10000, N + ' messages at the server');
  await waitFor(t.page, 'window.T.sock.transport === ' + JSON.stringify(expected), 'the socket on ' + expected, 10000);
  const ms = Date.now() - t0;
  // Anything duplicated would arrive shortly after: give it the time of a few ack rounds.
  await sleep(300);
  const r = await readPage(t.page);
  const first = await firstMessageMs(t.page);
  const why = 'events: ' + r.events.join(', ') + '; console: ' + t.console.join(' | ') + '\nsquid access.log:\n' + logSince(t0).map((e) => e.line).join('\n') + '\n' + squid!.diagnostics();

  expect(r.hasGlobal, 'window.CometSocket from the script tag, through squid').toBe(true);
  expectExactlyOnceInOrder(srv!, r, a, N, t, why);
  expectOneSession(r, a, why);
  const live = a.conns.filter((c) => c.state === 'open');
  // The session ends on `expected`, at the page and at the server.
  expect(r.transport, why).toBe(expected);
  expect(r.transports[r.transports.length - 1], 'transport the page ended on: ' + r.transports.join(', ')).toBe(expected);
  expect(live[0].transport, 'transport of the session at the server').toBe(expected);
  expect(first, 'time to the first message, measured in the page').not.toBeNull();
  // Through squid, not around it: the handshake of the session carries squid's Via header …
  expect(String(live[0].headers.via || ''), 'Via header of the session handshake (squid adds it); ' + why).toMatch(/squid/);
  // … and the page and the bundle are in its access log, forwarded to the server.
  const pageLog = requests(path, t0);
  expect(pageLog.map((e) => e.method + ' ' + e.result + ' ' + e.hierarchy), 'the page in squid access log; ' + why).toEqual(['GET TCP_MISS/200 HIER_DIRECT/127.0.0.1']);
  expect(requests('/rt/cometsocket.min.js').length, 'the bundle in squid access log').toBeGreaterThan(0);
  return { r, a, t, ms, first, t0 };
}

const report = (cell: string, o: { r: PageResult; ms: number; first: number | null }, squidSaw: string): void => {
  console.log(`[squid] ${cell}: first message ${o.first} ms after connect(); ${2 * N} messages in ${o.ms} ms; transports ${o.r.transports.join(' → ')}; events: ${o.r.events.join(', ')}; squid logged: ${squidSaw}`);
};

/** A short summary of access-log entries: 'CONNECT TCP_DENIED/403 ×2, GET TCP_MISS/200 /rt/sse ×3'. */
function summary(entries: LogEntry[]): string {
  const counts = new Map<string, number>();
  for (const e of entries) {
    const what = e.method + ' ' + e.result + ' ' + e.url.replace(srv!.origin, '').replace(/\?.*/, '');
    counts.set(what, (counts.get(what) || 0) + 1);
  }
  return Array.from(counts, ([k, n]) => k + ' ×' + n).join(', ');
}

// ---- the cells -------------------------------------------------------------------------------------

describe.sequential('squid forward proxy (CONNECT to 443 only) × server default Origin check', () => {
  it(`squid × default negotiation → WebSocket refused by squid (CONNECT 403), ends on sse, ${N} each way exactly once in order`, async () => {
    const o = await exchange('/squid-negotiation.html', 'default', 'sse');
    report('default negotiation', o, summary(logSince(o.t0)));
    // The WebSocket attempt: Chromium asked squid for a CONNECT tunnel to the server's port,
    // squid refused it (403, not forwarded: HIER_NONE), and no upgrade reached the server.
    const ws = tunnels(o.t0);
    expect(ws.length, 'CONNECTs to the server in squid access log').toBeGreaterThan(0);
    for (const e of ws) {
      expect(e.result, 'squid answer to the WebSocket CONNECT: ' + e.line).toBe('TCP_DENIED/403');
      expect(e.hierarchy, e.line).toBe('HIER_NONE/-');
    }
    expect(srv!.control.upgrades, 'WebSocket upgrades that reached the server').toBe(0);
    // On a fallback the socket probes WebSocket again in the background (option `upgrade`; the
    // first probe within 1 s of opening, then with backoff up to 60 s): squid refuses that
    // CONNECT too, and the session does not notice.
    const t1 = Date.now();
    await waitUntil(() => tunnels(o.t0).length >= 2, 3000, 'a background WebSocket upgrade probe (a second CONNECT) in squid access log');
    const probeMs = Date.now() - t1;
    await sleep(100);
    const after = await readPage(o.t.page);
    console.log(`[squid] default negotiation: upgrade probe CONNECT ${probeMs} ms after the exchange; events since: ${after.events.slice(o.r.events.length).join(', ') || 'none'}`);
    expect(after.events, 'socket events after the refused upgrade probe').toEqual(o.r.events);
    expect(after.transport).toBe('sse');
    expect(after.got.length, 'messages after the probe (no duplicate)').toBe(2 * N);
    for (const e of tunnels(o.t0)) {
      expect(e.result, 'squid answer to a WebSocket CONNECT: ' + e.line).toBe('TCP_DENIED/403');
      expect(e.hierarchy, e.line).toBe('HIER_NONE/-');
    }
    // What was observed, and why: squid relays a response as it arrives (it does not hold it
    // whole: nothing is cached here, and a stream is no different from a slow download to it),
    // so sse, which raced alongside WebSocket (parallelFallback), gets its first frame at once,
    // well within probeTimeout, and the session opens and stays on sse: no fallback to polling
    // (it would show as a 'transport:long-polling' event).
    expect(o.r.transport).toBe('sse');
    expect(o.r.transports.filter((x) => x === 'websocket'), 'transports the page used: ' + o.r.transports.join(', ')).toEqual([]);
    expect(o.r.transports.length, 'transports the page used: ' + o.r.transports.join(', ')).toBeLessThanOrEqual(2);
    // sse's requests went through squid and were forwarded (its POSTs: the stream is still open,
    // and squid logs a transaction when it ends).
    expect(requests('/rt/sse', o.t0).filter((e) => /^TCP_MISS\/2\d\d$/.test(e.result)).length, 'sse requests in squid access log').toBeGreaterThan(0);
  }, 30000);

  for (const name of ['sse', 'xhr-streaming', 'iframe-streaming', 'long-polling', 'short-polling'] as const) {
    it(`squid × ${name} forced → ${N} each way exactly once in order, on ${name}, no reconnect`, async () => {
      const o = await exchange('/squid-forced-' + name + '.html', name, name);
      const mine = requests('/rt/' + name, o.t0);
      report(name + ' forced', o, summary(logSince(o.t0)));
      expect(o.r.transports, 'transports the page used').toEqual([name]);
      expect(o.r.events.filter((x) => x.startsWith('reconnecting')), 'reconnects').toEqual([]);
      // Its requests went through squid and were forwarded (a request is logged when it ends: the
      // POSTs and finished polls, not a stream still open), and nothing tried a tunnel.
      expect(mine.length, name + ' requests in squid access log').toBeGreaterThan(0);
      expect(mine.filter((e) => !/^TCP_MISS\/2\d\d$/.test(e.result) || e.hierarchy !== 'HIER_DIRECT/127.0.0.1').map((e) => e.line), name + ' requests squid did not forward with a 2xx').toEqual([]);
      expect(tunnels(o.t0).map((e) => e.line), 'CONNECTs (WebSocket tunnels) with ' + name + ' forced').toEqual([]);
      if (name === 'sse' || name === 'xhr-streaming' || name === 'iframe-streaming') {
        // The stream that carried the messages: squid logs it once the tab is closed (the
        // browser aborts it), as forwarded to the server, 200, with what it carried.
        await o.t.page.close();
        const streams = (): LogEntry[] => requests('/rt/' + name, o.t0).filter((e) => e.method === 'GET');
        await waitUntil(() => streams().length > 0, 5000, 'the ' + name + ' stream in squid access log once its tab closed');
        expect(
          streams().map((e) => e.result + ' ' + e.hierarchy),
          'the ' + name + ' stream in squid access log: ' + streams().map((e) => e.line).join(' | '),
        ).toEqual(['TCP_MISS_ABORTED/200 HIER_DIRECT/127.0.0.1']);
        console.log(`[squid] ${name} forced: its stream in squid access log: ${streams()[0].line}`);
      }
    }, 30000);
  }

  // A page that allows WebSocket only, behind a proxy that refuses its tunnel: Chromium fails the
  // socket at once (no status is visible to the page, 1006), the socket retries with backoff and,
  // with maxAttempts 2, closes for good with 4100 — a clear failure within seconds, not a hang.
  it('squid × websocket forced (maxAttempts 2) → every CONNECT refused (403), reconnecting 1006, then close 4100 within 10 s', async () => {
    const t0 = Date.now();
    const { t, a } = await open('/squid-forced-websocket.html', timedPage({ transports: 'websocket', extra: 'maxAttempts: 2, backoffBase: 200', count: N, sendWhen: 'open' }));
    await waitFor(t.page, 'window.T && window.T.closeInfo', "the socket's close event", 10000);
    const ms = Date.now() - t0;
    const r = (await t.page.evaluate('({ closeInfo: T.closeInfo, events: T.events, state: T.sock.state, got: T.got.length, transports: T.transports })')) as {
      closeInfo: { code: number; reason: string; wasClean: boolean };
      events: string[];
      state: string;
      got: number;
      transports: string[];
    };
    const ws = tunnels(t0);
    const why = 'events: ' + r.events.join(', ') + '; console: ' + t.console.join(' | ') + '\nsquid access.log:\n' + logSince(t0).map((e) => e.line).join('\n');
    console.log(`[squid] websocket forced: close ${r.closeInfo.code} ${r.closeInfo.reason} after ${ms} ms; events: ${r.events.join(', ')}; squid logged: ${summary(logSince(t0))}`);
    expect(r.closeInfo.code, why).toBe(4100);
    expect(r.state).toBe('closed');
    expect(r.events.filter((x) => x.startsWith('close')), 'close events').toHaveLength(1);
    // Never opened; each attempt ended in 1006, the only thing a page sees of a refused tunnel.
    expect(r.events.filter((x) => x === 'open'), why).toEqual([]);
    const retries = r.events.filter((x) => x.startsWith('reconnecting'));
    expect(retries.length, why).toBeGreaterThan(0);
    expect(retries.filter((x) => !x.startsWith('reconnecting:1006')), 'reconnects for another reason than 1006; ' + why).toEqual([]);
    // One CONNECT per attempt, all refused by squid and none forwarded.
    expect(ws.length, 'CONNECTs in squid access log; ' + why).toBe(retries.length + 1);
    expect(ws.filter((e) => e.result !== 'TCP_DENIED/403' || e.hierarchy !== 'HIER_NONE/-').map((e) => e.line), 'CONNECTs squid did not refuse').toEqual([]);
    expect(srv!.control.upgrades, 'WebSocket upgrades that reached the server').toBe(0);
    expect(a.conns, 'sessions the server opened').toEqual([]);
    expect(r.got, 'messages received').toBe(0);
    expect(t.errors, 'uncaught errors in the page').toEqual([]);
    // The page and the bundle still came through squid.
    expect(requests('/squid-forced-websocket.html', t0).map((e) => e.result)).toEqual(['TCP_MISS/200']);
  }, 20000);
});
