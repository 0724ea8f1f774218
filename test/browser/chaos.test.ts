/**
 * Browser chaos: the script-tag build (dist/cometsocket.iife.min.js, global CometSocket) in
 * headless Chromium, talking to the reference server through the TCP fault proxy of the Node chaos
 * suite (test/chaos/fault-proxy.ts: resets, half-open connections, partitions, slow links,
 * WebSocket blocks). The page itself is served by the same node:http server as the endpoint and
 * opened through the proxy's port, so every request it makes (page, bundle, WebSocket upgrades,
 * streams, polls, POSTs, the forever-frame's navigations) crosses the proxy; it is loaded before
 * the first fault.
 *
 * One test per configuration: the default negotiation (every transport, plus WebSocket blocks
 * that force a fallback) and each of websocket, sse, xhr-streaming, iframe-streaming and long
 * polling forced alone. Per configuration both ends send numbered messages ('1', '2', …) at a
 * steady pace while a seeded schedule of faults runs, then every message is accounted for with the
 * Node suite's rule (`account` in test/chaos/harness.ts): delivered exactly once and in order
 * within its session, or handed back with its lost session ('session-lost' `unacked` in the page;
 * the server session's unacknowledged messages when it closed). Also: no uncaught error in the page
 * or the server, the socket never closed on its own and is open at the end, every half-open
 * connection noticed on both ends within interval + timeout (+ slack), and a final close(1000)
 * reaches the server.
 *
 * The page calls `CometSocket.connect('/rt', { transports: [CometSocket.sse] })` etc. (nothing
 * for the default negotiation) with backoffBase 100 and backoffCap 1000, as the Node chaos
 * harness does, so that reconnects take the time the faults cost rather than long backoffs. Per
 * configuration one line is printed: messages each way, faults by kind, reconnects by code,
 * resumes, session losses, longest outage, transports seen, half-open detection times, time.
 *
 * Also here: a sabotaged run (no faults) showing that the accounting catches a lost and a
 * duplicated message each way, and the reduced reproduction of a defect the runs showed
 * ("browser chaos findings, reduced").
 *
 * The seed is printed first; CHAOS_SEED overrides it (shared with the Node suite). Also:
 * CHAOS_ONLY=default,sse,…,sabotage,stuck picks tests; CHAOS_BROWSER_MESSAGES /
 * CHAOS_BROWSER_FAULTS change the counts and CHAOS_BROWSER_WEIGHTS=half-open=4,reset=1 the mix of
 * faults; CHAOS_DETECT_SLACK (ms) widens the heartbeat bound on a slow machine; CHAOS_DEBUG=1
 * loads the development bundle (cometsocket.js) with the socket's debug log and prints it with the
 * proxy's trace and the fault log.
 * About 2 min 15 s in all (the faults' planned time dominates).
 */
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Connection } from '../../server/index';
import { FAULT_KINDS, FaultProxy, FaultScheduler, type FaultKind, type FaultPlanOptions, type Pair } from '../chaos/fault-proxy';
import { account, chaosParams, chaosPlan, type ChaosParams, type DirectionStats } from '../chaos/harness';
import { ensureBuilt, launchBrowser, openPage, RT_PATH, sleep, startTestServer, TRANSPORTS, waitFor, type TestBrowser, type TestPage, type TestServer, type TransportName } from './helpers';

// ---- parameters ----------------------------------------------------------------------------------

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(name + ' must be a number, got ' + v);
  return n;
}

/** Server heartbeat: short, so that half-open connections are noticed within L = 2 s. */
const PING_INTERVAL = 1000;
const PING_TIMEOUT = 1000;
const L = PING_INTERVAL + PING_TIMEOUT;
/** Below L, as the server requires. */
const POLL_TIMEOUT = 1500;
/** Far above the longest outage a plan makes (partition ≤ 2.5 s + detection + backoff). */
const SESSION_TIMEOUT = 10_000;
const DETECT_SLACK = envInt('CHAOS_DETECT_SLACK') ?? 1000;
const DEBUG = process.env.CHAOS_DEBUG === '1';

const PLAN: Omit<FaultPlanOptions, 'count' | 'weights'> = {
  gap: [250, 800],
  // Well under the session timeout: no session is expected to be lost (it is accounted for if one is).
  partition: [300, 2500],
  slow: [400, 1500],
  slowDelay: [50, 200],
  wsBlock: [1500, 3500],
  halfOpenMax: 3 * L,
  halfOpenEstimate: L + 200,
};

/** The Node suite's parameters (seed from CHAOS_SEED), with this file's counts, heartbeat and plan. */
const base = chaosParams();
const P: ChaosParams = {
  ...base,
  messages: envInt('CHAOS_BROWSER_MESSAGES') ?? 1000,
  faults: envInt('CHAOS_BROWSER_FAULTS') ?? 12,
  pingInterval: PING_INTERVAL,
  pingTimeout: PING_TIMEOUT,
  sessionTimeout: SESSION_TIMEOUT,
  pollTimeout: POLL_TIMEOUT,
  plan: PLAN,
  detectSlack: DETECT_SLACK,
};

interface BrowserChaosConfig {
  /** 'default', or the transport forced alone. */
  name: 'default' | TransportName;
  weights: Partial<Record<FaultKind, number>>;
}

/** CHAOS_BROWSER_WEIGHTS=half-open=5,reset=1 replaces the weights of every configuration (investigation). */
function weightsFromEnv(): Partial<Record<FaultKind, number>> | null {
  const v = process.env.CHAOS_BROWSER_WEIGHTS;
  if (!v) return null;
  const w: Partial<Record<FaultKind, number>> = {};
  for (const part of v.split(',')) {
    const [k, n] = part.split('=');
    if (FAULT_KINDS.indexOf(k as FaultKind) < 0 || !(Number(n) >= 0)) throw new Error('CHAOS_BROWSER_WEIGHTS: bad entry ' + part);
    w[k as FaultKind] = Number(n);
  }
  return w;
}
const W = weightsFromEnv();
const BASE_WEIGHTS = W || { reset: 3, 'half-open': 2, partition: 2, slow: 2 };
const CONFIGS: BrowserChaosConfig[] = [
  { name: 'default', weights: W || { ...BASE_WEIGHTS, 'ws-block': 3 } },
  { name: 'websocket', weights: { ...BASE_WEIGHTS } },
  { name: 'sse', weights: { ...BASE_WEIGHTS } },
  { name: 'xhr-streaming', weights: { ...BASE_WEIGHTS } },
  { name: 'iframe-streaming', weights: { ...BASE_WEIGHTS } },
  { name: 'long-polling', weights: { ...BASE_WEIGHTS } },
];

/** A plan per configuration, from the seed (index 100+ keeps them apart from the Node suite's). */
function planOf(cfg: BrowserChaosConfig, index: number): ReturnType<typeof chaosPlan> {
  return chaosPlan({ name: cfg.name, transports: [], weights: cfg.weights }, P, 100 + index);
}

console.log(
  '[browser-chaos] seed ' + P.seed + (process.env.CHAOS_SEED ? ' (CHAOS_SEED)' : ' (default; CHAOS_SEED overrides)') + ', ' + P.messages + ' messages each way, ' + P.faults + ' faults per configuration, heartbeat ' + PING_INTERVAL + ' + ' + PING_TIMEOUT + ' ms, partitions ' + PLAN.partition.join('–') + ' ms, session timeout ' + SESSION_TIMEOUT + ' ms',
);

// ---- the page ------------------------------------------------------------------------------------

/**
 * The page: loads the bundle by script tag through the proxy, and on `T.go()` connects to '/rt'
 * and, from the first 'open', sends N numbered messages at a steady pace over `pace` ms. It
 * records, for the accounting, the session each message was sent in (`c2sK[n]` indexes `sidOfK`,
 * whose entry the next 'open' names; 'session-lost' starts the next index), every delivery per
 * session, and what 'session-lost' handed back. `window.chaosOpen(sid)` (a Playwright binding)
 * tells the test which session the server's application should send on.
 */
function chaosPage(cfg: BrowserChaosConfig, n: number, pace: number, dev: boolean): string {
  const opts = [cfg.name === 'default' ? '' : 'transports: [CometSocket.' + TRANSPORTS[cfg.name] + ']', 'backoffBase: 100', 'backoffCap: 1000', dev ? 'debug: function (m) { T.log.push(Date.now() + " " + m); if (T.log.length > 4000) T.log.shift(); }' : ''].filter(Boolean).join(', ');
  return `<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>cometsocket chaos</title>
<script src="${RT_PATH}/${dev ? 'cometsocket.js' : 'cometsocket.min.js'}"></script>
</head>
<body>
<script>
var T = (window.T = {
  N: ${n}, sent: 0, k: 0, sidOfK: [], c2sK: [0], del: {}, uniq: 0, seen: {}, returned: [],
  events: [], log: [], opens: 0, resumes: 0, losses: 0, reconnects: {}, transports: [], lastMove: 0,
  fulls: 0, drains: 0, missedDrains: 0, blocked: false, blockedSince: 0, closes: [], t0: 0, pump: null,
  outSince: 0, outages: []
});
// How long the socket was without a transport: from 'reconnecting' to the next 'resume' or 'open'.
T.back = function () { if (T.outSince) { T.outages.push(Date.now() - T.outSince); T.outSince = 0; } };
try { localStorage.clear(); } catch (e) {}
T.ev = function (s) { T.events.push(Date.now() + ' ' + s); if (T.events.length > 400) T.events.shift(); };
T.summary = function () {
  var s = T.sock;
  return { state: s && s.state, transport: s && s.transport, sent: T.sent, uniq: T.uniq, buffered: s && s.bufferedAmount, events: T.events.slice(-15) };
};
T.tick = function () {
  var sock = T.sock;
  var want = Math.min(T.N, Math.ceil(T.N * (Date.now() - T.t0) / ${pace}));
  if (T.blocked && sock.bufferedAmount === 0) {
    // 'drain' is due once the buffer emptied: count it missed after a second, and go on.
    if (!T.blockedSince) T.blockedSince = Date.now();
    else if (Date.now() - T.blockedSince > 1000) { T.missedDrains++; T.blocked = false; }
  }
  while (T.sent < want && !T.blocked && sock.state !== 'closed') {
    // The sabotage check (T.skip): a message counted as sent in its session but never sent.
    if (T.skip !== T.sent + 1 && !sock.send(String(T.sent + 1))) { T.blocked = true; T.blockedSince = 0; T.fulls++; break; }
    T.c2sK[++T.sent] = T.k;
  }
  if (T.sent >= T.N) { clearInterval(T.pump); T.pump = null; }
};
T.go = function () {
  var sock = (T.sock = CometSocket.connect('${RT_PATH}'${opts ? ', { ' + opts + ' }' : ''}));
  sock.on('open', function () {
    T.opens++;
    T.back();
    T.sidOfK[T.k] = sock.id;
    T.ev('open ' + sock.id + ' on ' + sock.transport);
    if (window.chaosOpen) window.chaosOpen(sock.id);
    if (!T.t0) { T.t0 = Date.now(); T.pump = setInterval(T.tick, 10); }
  });
  sock.on('resume', function () { T.resumes++; T.back(); T.ev('resume on ' + sock.transport); });
  sock.on('transport', function (name) { T.transports.push(name); T.lastMove = Date.now(); T.ev('transport ' + name); });
  sock.on('reconnecting', function (i) {
    T.reconnects[i.code] = (T.reconnects[i.code] || 0) + 1;
    T.lastMove = Date.now();
    if (!T.outSince) T.outSince = Date.now();
    T.ev('reconnecting ' + i.code + ' ' + i.reason + ' (attempt ' + i.attempt + ', ' + i.delay + ' ms)');
  });
  sock.on('session-lost', function (i) {
    T.losses++;
    for (var j = 0; j < i.unacked.length; j++) T.returned.push(Number(i.unacked[j]));
    T.ev('session-lost ' + i.code + ' ' + i.reason + ': ' + i.unacked.length + ' handed back');
    T.k++;
  });
  sock.on('message', function (d) {
    var m = Number(d);
    var list = T.del[sock.id] || (T.del[sock.id] = []);
    list.push(m);
    // The sabotage check (T.dup): one delivery recorded twice.
    if (T.dup === m) list.push(m);
    if (!T.seen[m]) { T.seen[m] = 1; T.uniq++; }
  });
  sock.on('drain', function () { T.drains++; T.blocked = false; });
  sock.on('close', function (i) { T.closes.push(i.code + ' ' + i.reason); T.ev('close ' + i.code + ' ' + i.reason); });
};
</script>
</body>
</html>
`;
}

/** What the page hands back at the end. */
interface PageState {
  sent: number;
  sidOfK: string[];
  c2sK: number[];
  del: Record<string, number[]>;
  returned: number[];
  events: string[];
  log: string[];
  opens: number;
  resumes: number;
  losses: number;
  reconnects: Record<string, number>;
  transports: string[];
  fulls: number;
  drains: number;
  missedDrains: number;
  closes: string[];
  outages: number[];
  state: string;
  transport: string | null;
}

const READ_PAGE = `(function () {
  var T = window.T, s = T.sock;
  return { sent: T.sent, sidOfK: T.sidOfK, c2sK: T.c2sK, del: T.del, returned: T.returned, events: T.events, log: T.log,
    opens: T.opens, resumes: T.resumes, losses: T.losses, reconnects: T.reconnects, transports: T.transports,
    fulls: T.fulls, drains: T.drains, missedDrains: T.missedDrains, closes: T.closes, outages: T.outages, state: s.state, transport: s.transport };
})()`;

interface Live {
  sent: number;
  uniq: number;
  buffered: number;
  state: string;
  lastMove: number;
}
const READ_LIVE = '({ sent: T.sent, uniq: T.uniq, buffered: T.sock ? T.sock.bufferedAmount : 0, state: T.sock ? T.sock.state : "none", lastMove: T.lastMove })';

// ---- one run -------------------------------------------------------------------------------------

/** Resolve true when `check()` holds (polled every `every` ms), false after `ms`. */
async function until(check: () => boolean | Promise<boolean>, ms: number, every = 20): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > end) return false;
    await sleep(every);
  }
}

interface HalfOpenSample {
  /** Fault start to the page leaving the silent transport ('reconnecting' or a 'transport' move), ms. */
  client: number;
  /** Fault start to the server's session dropping or replacing that transport, ms. */
  server: number;
}

interface Report {
  config: string;
  ms: number;
  plannedMs: number;
  c2s: DirectionStats;
  s2c: DirectionStats;
  faults: Record<FaultKind, number>;
  planned: number;
  faultLog: string[];
  page: PageState;
  pageErrors: string[];
  pageConsole: string[];
  serverErrors: string[];
  halfOpen: HalfOpenSample[];
  halfOpenMissed: string[];
  halfOpenSkipped: number;
  /** Server sessions the page never adopted (race losers, handshakes whose answer was cut). */
  orphans: number;
  /** Black-holed connections Chromium still held when the network healed for good. */
  lingering: number;
  /** The page's socket state once everything settled, before close(). */
  endState: string;
  endTransport: string | null;
  /** The close code the server saw for the page's session after close(1000). */
  closeCode: number | null;
  proxyConnections: number;
  trace: string[];
}

interface Sabotage {
  /** Server: message n counted as sent on its session but never sent (lost). */
  serverSkip?: number;
  /** Server: message n sent twice (a duplicate). */
  serverDup?: number;
  /** Page: message n counted as sent but never sent (lost). */
  pageSkip?: number;
  /** Page: the delivery of message n recorded twice (a duplicate). */
  pageDup?: number;
}

interface Resources {
  srv?: TestServer;
  proxy?: FaultProxy;
  tab?: TestPage;
  stop: Array<() => void>;
}

let browser: TestBrowser | null = null;
let res: Resources = { stop: [] };

async function release(): Promise<void> {
  const r = res;
  res = { stop: [] };
  for (const f of r.stop) f();
  const bounded = (p: Promise<unknown>): Promise<unknown> => Promise.race([p.catch(() => undefined), sleep(5000)]);
  if (r.tab) await bounded(r.tab.page.close());
  if (r.proxy) await bounded(r.proxy.close());
  if (r.srv) await bounded(r.srv.close());
}

async function runBrowserChaos(cfg: BrowserChaosConfig, index: number, o: { faults?: boolean; sabotage?: Sabotage; messages?: number } = {}): Promise<Report> {
  const started = Date.now();
  const withFaults = o.faults !== false;
  const { plan: fullPlan, rng, duration: fullDuration } = planOf(cfg, index);
  const plan = withFaults ? fullPlan : [];
  const duration = withFaults ? fullDuration : 0;
  const N = o.messages ?? P.messages;
  const sab = o.sabotage || {};
  const trace: string[] = [];
  const stamp = (): string => ((Date.now() - started) / 1000).toFixed(3) + 's ';

  // ---- the server (the page's origin too) and the proxy in front of it
  let pageOrigin = '';
  const srv = (res.srv = await startTestServer({
    allowedOrigins: (origin: string) => origin === pageOrigin,
    pingInterval: PING_INTERVAL,
    pingTimeout: PING_TIMEOUT,
    pollTimeout: POLL_TIMEOUT,
    sessionTimeout: SESSION_TIMEOUT,
  }));
  const proxy = (res.proxy = await FaultProxy.start((srv.http.address() as AddressInfo).port, {
    seed: P.seed + index,
    trace: DEBUG ? (m) => trace.push(stamp() + 'proxy: ' + m) : undefined,
  }));
  pageOrigin = proxy.url;

  // ---- the server's application: numbered messages on the page's current session, and the accounting
  interface ServerSession {
    conn: Connection;
    deliveries: number[];
  }
  const sessions = new Map<string, ServerSession>();
  const s2cSession: string[] = new Array<string>(N + 1);
  const s2cReturned = new Uint8Array(N + 1);
  let sentS = 0;
  let currentSid = '';
  let finalSid = '';
  let closeCode: number | null = null;
  srv.rt.on('connection', (conn) => {
    const s: ServerSession = { conn, deliveries: [] };
    sessions.set(conn.id, s);
    conn.on('message', (d) => {
      const n = Number(typeof d === 'string' ? d : NaN);
      s.deliveries.push(n);
    });
    conn.on('close', (code, reason) => {
      if (DEBUG) trace.push(stamp() + 'server session ' + conn.id.slice(0, 6) + ' closed ' + code + ' ' + reason);
      if (conn.id === finalSid) {
        closeCode = code;
        return;
      }
      // A session that ended otherwise hands back its unacknowledged messages. The server API has
      // no such event: read them from the session layer, as the Node chaos harness does (test-only).
      const session = (conn as unknown as { session?: { unacked(): Array<string | Uint8Array> } }).session;
      if (!session || typeof session.unacked !== 'function') {
        srv.errors.push(new Error('cannot read the unacknowledged messages of session ' + conn.id));
        return;
      }
      for (const d of session.unacked()) {
        const n = typeof d === 'string' ? Number(d) : NaN;
        if (n >= 1 && n <= N) s2cReturned[n] = 1;
      }
    });
  });
  let t0 = 0;
  const pace = Math.max(3000, duration);
  const serverPump = setInterval(() => {
    if (!t0) return;
    const want = Math.min(N, Math.ceil((N * (Date.now() - t0)) / pace));
    const s = sessions.get(currentSid);
    const conn = s && s.conn;
    // The application's own backpressure: the server closes a session whose buffer overflows.
    while (conn && conn.state === 'open' && sentS < want && conn.bufferedAmount < 64 * 1024) {
      const n = sentS + 1;
      if (n !== sab.serverSkip) {
        if (!conn.send(String(n))) break;
        if (n === sab.serverDup) conn.send(String(n));
      }
      s2cSession[++sentS] = conn.id;
    }
  }, 10);
  res.stop.push(() => clearInterval(serverPump));

  // ---- the page, loaded through the proxy before any fault
  const path = '/chaos-' + cfg.name + '.html';
  srv.page(path, chaosPage(cfg, N, pace, DEBUG));
  const tab = (res.tab = await openPage(browser!, proxy.url + path));
  const page = tab.page;
  await waitFor(page, 'document.readyState === "complete"', 'the page to load', 10000);
  await page.exposeFunction('chaosOpen', (sid: string) => {
    currentSid = sid;
    if (!t0) t0 = Date.now();
  });
  if (sab.pageSkip) await page.evaluate('T.skip = ' + sab.pageSkip);
  if (sab.pageDup) await page.evaluate('T.dup = ' + sab.pageDup);
  await page.evaluate('T.go()');
  await waitFor(page, 'T.opens > 0', 'the first open', 15000);
  await until(() => t0 > 0, 2000, 5);
  const live = (): Promise<Live> => page.evaluate(READ_LIVE) as Promise<Live>;

  // ---- the faults
  const halfOpen: HalfOpenSample[] = [];
  const halfOpenMissed: string[] = [];
  let halfOpenSkipped = 0;
  const scheduler = new FaultScheduler(proxy, plan, PLAN, rng);
  res.stop.push(() => scheduler.stop());
  await scheduler.run({
    // Measure detection on a session that is on the wire: wait (bounded) for one.
    beforeHalfOpen: async () => {
      await until(async () => {
        const s = sessions.get(currentSid);
        return !!s && !!s.conn.link && (await live()).state === 'open';
      }, 3000, 20);
    },
    halfOpen: async (pairs: Pair[], at: number) => {
      const s = sessions.get(currentSid);
      const conn = s && s.conn;
      const link0 = conn && conn.link;
      if (!conn || !link0 || !pairs.length) {
        halfOpenSkipped++;
        if (DEBUG) trace.push(stamp() + 'half-open not measured: ' + (conn ? (link0 ? 'on ' + conn.transport : 'no transport') : 'no session') + ', ' + pairs.length + ' connection(s)');
        return;
      }
      let serverAt = 0;
      let clientAt = 0;
      const ok = await until(async () => {
        if (!serverAt && conn.link !== link0) serverAt = Date.now();
        if (!clientAt) {
          const m = (await live()).lastMove;
          if (m >= at) clientAt = m;
        }
        return !!serverAt && !!clientAt;
      }, PLAN.halfOpenMax - 100, 20);
      if (ok) halfOpen.push({ client: clientAt - at, server: serverAt - at });
      else halfOpenMissed.push('half-open at +' + ((at - proxy.startedAt) / 1000).toFixed(3) + 's: client ' + (clientAt ? clientAt - at + ' ms' : 'never') + ', server ' + (serverAt ? serverAt - at + ' ms' : 'never'));
    },
    faultDone: (f) => {
      if (DEBUG) trace.push(stamp() + 'fault ' + f.kind + (f.duration ? ' ' + f.duration + ' ms' : '') + ': ' + f.detail);
    },
  });
  proxy.healAll();

  // ---- settle: every message sent (bounded: no progress for 10 s), then both ends idle
  let progress = '';
  let progressAt = Date.now();
  await until(async () => {
    const l = await live();
    const now = l.sent + '/' + sentS;
    if (now !== progress) (progress = now), (progressAt = Date.now());
    return (l.sent >= N && sentS >= N) || Date.now() - progressAt > 10_000;
  }, 40_000, 50);
  // Done when everything sent was acknowledged on both ends of the current session (earlier
  // sessions were closed: what they did not deliver was handed back), for a moment; bounded.
  let idleSince = 0;
  await until(async () => {
    const l = await live();
    const s = sessions.get(currentSid);
    const idle = l.state === 'open' && l.buffered === 0 && !!s && s.conn.state === 'open' && s.conn.bufferedAmount === 0;
    if (!idle) idleSince = 0;
    else if (!idleSince) idleSince = Date.now();
    return idle && Date.now() - idleSince >= 300;
  }, 20_000, 50);
  // The default negotiation moves back to WebSocket after a block: give it a moment (reported, not required).
  if (cfg.name === 'default') await until(async () => (await page.evaluate('T.sock.transport')) === 'websocket', 3000, 50);
  const end = (await page.evaluate('({ state: T.sock.state, transport: T.sock.transport })')) as { state: string; transport: string | null };
  clearInterval(serverPump);

  // ---- the network heals for good (black-holed connections Chromium still holds are reset, as
  // their peers would once the path is back), then close(1000) must reach the server.
  const lingering = proxy.resetHalfOpen();
  finalSid = currentSid;
  await page.evaluate('clearInterval(T.pump), T.sock.close(1000, "chaos done")');
  await until(() => closeCode !== null, 5000, 10);
  const pageState = (await page.evaluate(READ_PAGE)) as PageState;

  // ---- the accounting (test/chaos/harness.ts): per direction, per session
  const c2sReturned = new Uint8Array(N + 1);
  for (const n of pageState.returned) if (n >= 1 && n <= N) c2sReturned[n] = 1;
  const c2s = account(
    pageState.sent,
    (n) => pageState.sidOfK[pageState.c2sK[n]],
    new Map(Array.from(sessions.values(), (s) => [s.conn.id, s.deliveries] as [string, number[]])),
    c2sReturned,
  );
  const s2c = account(sentS, (n) => s2cSession[n], new Map(Object.keys(pageState.del).map((sid) => [sid, pageState.del[sid]] as [string, number[]])), s2cReturned);
  const adopted = new Set(pageState.sidOfK);
  const report: Report = {
    config: cfg.name,
    ms: Date.now() - started,
    plannedMs: duration,
    c2s,
    s2c,
    faults: scheduler.counts,
    planned: plan.length,
    faultLog: proxy.log.map((f) => '+' + (f.at / 1000).toFixed(3) + 's ' + f.kind + (f.duration ? ' (' + f.duration + ' ms)' : '') + ': ' + f.detail),
    page: pageState,
    pageErrors: tab.errors.slice(),
    pageConsole: tab.console.slice(),
    serverErrors: srv.errors.map((e) => String(e instanceof Error ? e.stack || e.message : e)),
    halfOpen,
    halfOpenMissed,
    halfOpenSkipped,
    orphans: Array.from(sessions.keys()).filter((id) => !adopted.has(id)).length,
    lingering,
    endState: end.state,
    endTransport: end.transport,
    closeCode,
    proxyConnections: proxy.accepted,
    trace,
  };
  await release();
  return report;
}

// ---- checks and printing -------------------------------------------------------------------------

/** What a report breaks (empty: nothing). */
function violations(r: Report, n: number): string[] {
  const v: string[] = [];
  for (const [name, d] of [['page → server', r.c2s], ['server → page', r.s2c]] as const) {
    if (d.lost || d.duplicated || d.reordered) v.push(name + ': lost ' + d.lost + ', duplicated ' + d.duplicated + ', reordered ' + d.reordered);
    if (d.delivered + d.returned !== d.sent) v.push(name + ': delivered ' + d.delivered + ' + returned ' + d.returned + ' != sent ' + d.sent);
    for (const m of d.problems) v.push(name + ': ' + m);
  }
  if (r.c2s.sent !== n || r.s2c.sent !== n) v.push('sent ' + r.c2s.sent + ' / ' + r.s2c.sent + ' of ' + n + ' messages');
  const injected = FAULT_KINDS.reduce((a, k) => a + r.faults[k], 0);
  if (injected !== r.planned) v.push(injected + ' faults injected, ' + r.planned + ' planned');
  if (r.pageErrors.length) v.push('uncaught errors in the page: ' + r.pageErrors.join(' | '));
  if (r.serverErrors.length) v.push('server errors: ' + r.serverErrors.join(' | '));
  const closes = r.page.closes.filter((c) => c !== '1000 chaos done');
  if (closes.length) v.push('the socket closed on its own: ' + closes.join('; '));
  if (r.endState !== 'open') v.push('socket ' + r.endState + ' at the end, not open');
  if (r.page.missedDrains) v.push(r.page.missedDrains + " 'drain' event(s) never came although the send buffer had emptied");
  if (r.closeCode !== 1000) v.push('close(1000) reached the server as ' + r.closeCode);
  for (const m of r.halfOpenMissed) v.push('half-open never noticed: ' + m);
  for (const h of r.halfOpen) {
    if (h.client > L + DETECT_SLACK) v.push('the page noticed a half-open connection after ' + h.client + ' ms (> ' + L + ' + ' + DETECT_SLACK + ')');
    if (h.server > L + DETECT_SLACK) v.push('the server dropped a half-open connection after ' + h.server + ' ms (> ' + L + ' + ' + DETECT_SLACK + ')');
  }
  return v;
}

function oneLine(r: Report): string {
  const p = r.page;
  const rec = Object.keys(p.reconnects).map((c) => c + '×' + p.reconnects[c]);
  const faults = FAULT_KINDS.filter((k) => r.faults[k]).map((k) => k + ' ' + r.faults[k]);
  const seen = Array.from(new Set(p.transports));
  const max = (xs: number[]): string => (xs.length ? String(Math.max(...xs)) : '-');
  return (
    '[browser-chaos] ' + r.config + ': ' +
    'page→server ' + r.c2s.delivered + '/' + r.c2s.sent + ' delivered (' + r.c2s.returned + ' handed back, lost ' + r.c2s.lost + ', dup ' + r.c2s.duplicated + ', reorder ' + r.c2s.reordered + '), ' +
    'server→page ' + r.s2c.delivered + '/' + r.s2c.sent + ' (' + r.s2c.returned + ' back, lost ' + r.s2c.lost + ', dup ' + r.s2c.duplicated + ', reorder ' + r.s2c.reordered + '); ' +
    FAULT_KINDS.reduce((a, k) => a + r.faults[k], 0) + ' faults (' + (faults.join(', ') || 'none') + '); ' +
    'reconnects ' + rec.reduce((a, x) => a + Number(x.split('×')[1]), 0) + (rec.length ? ' (' + rec.join(' ') + ')' : '') + ', resumes ' + p.resumes + ', session-lost ' + p.losses + ', opens ' + p.opens + ', longest outage ' + max(p.outages) + ' ms; ' +
    'transports ' + (seen.join('+') || 'none') + ' (' + p.transports.length + ' changes, end ' + r.endTransport + ', ' + r.endState + '); ' +
    'half-open noticed ' + r.halfOpen.length + '×, max page ' + max(r.halfOpen.map((h) => h.client)) + ' / server ' + max(r.halfOpen.map((h) => h.server)) + ' ms' + (r.halfOpenSkipped ? ' (' + r.halfOpenSkipped + ' not measured)' : '') + '; ' +
    'lingering half-open at end ' + r.lingering + ', orphan sessions ' + r.orphans + ', proxy connections ' + r.proxyConnections + '; ' +
    (r.ms / 1000).toFixed(1) + ' s (faults planned ' + (r.plannedMs / 1000).toFixed(1) + ' s)'
  );
}

function details(r: Report): string {
  return [
    'fault log:',
    ...r.faultLog.map((l) => '  ' + l),
    'page events (last ' + r.page.events.length + '):',
    ...r.page.events.slice(-60).map((l) => '  ' + l),
    ...(r.pageConsole.length ? ['page console:', ...r.pageConsole.slice(-20).map((l) => '  ' + l)] : []),
    ...(r.page.log.length ? ['socket debug log:', ...r.page.log.slice(-2000).map((l) => '  ' + l)] : []),
    ...(r.trace.length ? ['trace:', ...r.trace.slice(-5000).map((l) => '  ' + l)] : []),
  ].join('\n');
}

// ---- the tests -----------------------------------------------------------------------------------

beforeAll(async () => {
  await ensureBuilt();
  browser = await launchBrowser();
}, 120_000);

afterEach(release, 30_000);

afterAll(async () => {
  await release();
  if (browser) await browser.close().catch(() => undefined);
  browser = null;
}, 30_000);

const only = process.env.CHAOS_ONLY ? process.env.CHAOS_ONLY.split(',') : null;

describe.sequential('browser chaos: the script-tag build in Chromium through a fault proxy', () => {
  CONFIGS.forEach((cfg, i) => {
    const label = cfg.name === 'default' ? 'default negotiation (no transports option; WebSocket blocks too)' : 'transports: [CometSocket.' + TRANSPORTS[cfg.name] + ']';
    (only && only.indexOf(cfg.name) < 0 ? it.skip : it)(
      label + ': every message exactly once and in order, or handed back with its lost session; the socket ends open',
      async () => {
        const r = await runBrowserChaos(cfg, i);
        console.log(oneLine(r) + (DEBUG ? '\n' + details(r) : ''));
        const v = violations(r, P.messages);
        expect(v, cfg.name + ' (seed ' + P.seed + ')\n' + (v.length ? details(r) : '')).toEqual([]);
      },
      120_000,
    );
  });

  // The checks can fail: a run without faults whose server skips and duplicates a message and
  // whose page does the same must show exactly those four defects, and nothing else.
  (only && only.indexOf('sabotage') < 0 ? it.skip : it)(
    'the accounting catches a lost and a duplicated message in each direction (sabotaged run, no faults)',
    async () => {
      const r = await runBrowserChaos({ name: 'long-polling', weights: {} }, 99, { faults: false, messages: 200, sabotage: { serverSkip: 50, serverDup: 60, pageSkip: 70, pageDup: 80 } });
      console.log(oneLine(r).replace('] ', '] sabotage: '));
      const v = violations(r, 200);
      expect(v, details(r)).toEqual([
        'page → server: lost 1, duplicated 0, reordered 1',
        'page → server: delivered 199 + returned 0 != sent 200',
        'page → server: session ' + r.page.sidOfK[0] + ': delivered 71 where 70 was due',
        'page → server: lost 70 (sent in session ' + r.page.sidOfK[0] + ')',
        'server → page: lost 1, duplicated 2, reordered 1',
        'server → page: delivered 199 + returned 0 != sent 200',
        'server → page: session ' + r.page.sidOfK[0] + ': delivered 51 where 50 was due',
        'server → page: session ' + r.page.sidOfK[0] + ': 60 delivered again',
        'server → page: session ' + r.page.sidOfK[0] + ': 80 delivered again',
        'server → page: lost 50 (sent in session ' + r.page.sidOfK[0] + ')',
      ]);
    },
    60_000,
  );
});

/** Bugs this file found, each reduced to a deterministic reproduction, now regression tests. */
describe.sequential('browser chaos findings, reduced', () => {
  // Was (transports/http.ts, poster().stop()): when an HTTP transport was abandoned (its heartbeat
  // ran out, it failed, or the session moved), a POST still in flight was left to finish: on a
  // half-open connection it hung until requestTimeout (10 s by default), holding one of
  // Chromium's six connections per host. With half-opens noticed faster than requestTimeout they
  // piled up (1, 2, … 5 here: then five stuck POSTs and the poll took all six, the page's next
  // POST waited in Chromium's queue), and a resume waited seconds for a connection (3.2–4.2 s
  // instead of ~1 s). Now stop() aborts it (its frames are unacknowledged and written again on the
  // next transport); this cell failed in 4 of 4 runs before.
  (only && only.indexOf('stuck') < 0 ? it.skip : it)(
    'long-polling: a POST in flight on a half-open connection is given up with its transport, not left holding a connection for requestTimeout',
    async () => {
      const HB = 500;
      let pageOrigin = '';
      const srv = (res.srv = await startTestServer({ allowedOrigins: (o: string) => o === pageOrigin, pingInterval: HB, pingTimeout: HB, pollTimeout: 750, sessionTimeout: SESSION_TIMEOUT }));
      let lastPostAt = 0;
      const proxy = (res.proxy = await FaultProxy.start((srv.http.address() as AddressInfo).port, {
        trace: (m) => {
          if (/→ POST /.test(m)) lastPostAt = Date.now();
        },
      }));
      pageOrigin = proxy.url;
      // About 100 messages a second from the page: a POST is almost always in flight.
      srv.page('/stuck.html', chaosPage({ name: 'long-polling', weights: {} }, 100_000, 1_000_000, false));
      const tab = (res.tab = await openPage(browser!, proxy.url + '/stuck.html'));
      await waitFor(tab.page, 'document.readyState === "complete"', 'the page to load', 10000);
      await tab.page.evaluate('T.go()');
      const state = (): Promise<{ state: string; resumes: number }> => tab.page.evaluate('({ state: T.sock.state, resumes: T.resumes })') as Promise<{ state: string; resumes: number }>;
      const rounds: Array<{ postInFlight: boolean; resumedMs: number; held: number }> = [];
      // Seven half-opens, each once the previous one was resumed (about 1.2 s apart: all within
      // one requestTimeout), each while a POST is in flight.
      for (let r = 0; r < 7; r++) {
        expect(await until(async () => (await state()).state === 'open', 12000, 10), 'open before round ' + r + ': ' + JSON.stringify(rounds)).toBe(true);
        await sleep(100);
        const before = (await state()).resumes;
        // A short hold (well under the heartbeat) lets the next POST reach the proxy and stay in flight.
        proxy.startPartition('hold');
        const t = Date.now();
        const postInFlight = await until(() => lastPostAt > t, 200, 2);
        proxy.halfOpen();
        proxy.heal();
        const at = Date.now();
        let resumedAt = 0;
        await until(async () => {
          if ((await state()).resumes > before) resumedAt = Date.now();
          return resumedAt > 0;
        }, 12000, 10);
        rounds.push({ postInFlight, resumedMs: resumedAt ? resumedAt - at : -1, held: proxy.lingeringHalfOpen() });
      }
      const line = rounds.map((x, i) => '#' + i + (x.postInFlight ? '' : ' (no POST in flight)') + ': resumed after ' + x.resumedMs + ' ms, ' + x.held + ' dead connection(s) held').join('; ');
      console.log('[browser-chaos] stuck POSTs: ' + line);
      expect(tab.errors, 'uncaught errors in the page').toEqual([]);
      // Connections the page still holds on the dead paths: idle keep-alive ones at most (0–2 with
      // the fix), not one more stuck POST per half-open.
      expect(Math.max(...rounds.map((x) => x.held)), line).toBeLessThanOrEqual(3);
      // Every resume within interval + timeout (+ slack), not behind a connection-limit queue.
      expect(Math.max(...rounds.map((x) => x.resumedMs)), line).toBeLessThanOrEqual(2 * HB + 1500);
      expect(Math.min(...rounds.map((x) => x.resumedMs)), line).toBeGreaterThanOrEqual(0);
    },
    60_000,
  );
});
