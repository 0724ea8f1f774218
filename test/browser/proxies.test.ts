/**
 * Issue 3 in a real browser (headless Chromium, the script-tag build): the page and the endpoint
 * behind an HTTP reverse proxy (./proxy.ts) that gets in the way as real networks do; the proxy
 * is the page's origin, so it sees every request the page makes.
 *
 *  - `dropUpgrades` (a firewall that closes WebSocket upgrades at once): the default negotiation
 *    gets its first message on sse, without a WebSocket timeout; and within 1.5× the time long
 *    polling alone takes through the same proxy (medians of a few runs, each in a fresh browser).
 *    On loopback that ratio is noise around 1.5 (printed); it is asserted with the proxy 25 ms
 *    away, where round trips decide it, and fails: a known bug (BUGS.sequentialFallback);
 *  - `swallowUpgrades` (the upgrade hangs): the head start applies, and no more: first message
 *    within long polling's time + headStart + 100 ms, on sse;
 *  - `buffer` (responses held whole until they end; upgrades dropped, see proxy.ts): the socket
 *    ends on long polling, 1,000 messages each way exactly once and in order; its background
 *    upgrade probes (probe=1, no session) must not interrupt it;
 *  - memory: a second page load in the same browser starts with what worked the first time (its
 *    first request to the server is that transport) and gets its first message sooner;
 *  - iframe-streaming forced, through the proxy: hostile payloads arrive intact and in order, none
 *    runs as script or brings a tag into the forever-frame; and a frame document is recycled after
 *    streamLimit bytes (it is not: BUGS.streamLimitCountsChars).
 *
 * A control first: through the proxy in `pass` mode the default negotiation opens on WebSocket.
 *
 * Times are measured inside the page, from `connect()` to the first 'message' event, after the
 * page has loaded and idled (so page load and browser start-up are not in them); they are printed
 * ('[proxies] …'). PROXIES_RUNS=n changes the number of runs per timing comparison.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ensureBuilt,
  launchBrowser,
  numbered,
  openPage,
  serveApp,
  sleep,
  startTestServer,
  TRANSPORTS,
  waitFor,
  waitUntil,
  type App,
  type AppOptions,
  type TestBrowser,
  type TestPage,
  type TestServer,
  type TransportName,
} from './helpers';
import { startProxy, type Proxy, type ProxyMode } from './proxy';
import type { ServerOptions } from '../../server/options';

/** The client's defaults that the assertions rely on (README, "Options"). */
const HEAD_START = 250;
const PROBE_TIMEOUT = 1500;
const CONNECT_TIMEOUT = 10000;
/** Runs of each configuration per timing comparison (medians are compared). */
const RUNS = Number(process.env.PROXIES_RUNS) || 3;
/** One-way delay of the proxy in the latency variant, ms. */
const LATENCY = 25;
/** The page idles this long after its load event before connecting: start-up noise settles. */
const IDLE = 250;

/**
 * Bugs these tests found that are not fixed yet, by test. A test that runs into one is `it.fails`
 * until the fix lands (then it fails as "expected to fail": make it a plain `it`). Set
 * COMETSOCKET_KNOWN_BUGS=run to run them as plain tests and read how they fail.
 */
const BUGS: Record<string, string | undefined> = {
  upgradeBreaksSession: undefined, // fixed: an upgrade first probes the path (probe=1, no session); a buffered probe fails alone
  streamLimitCountsChars: undefined, // fixed: streamLimit counts the bytes written
  sequentialFallback: undefined, // fixed: a first visit starts the first fallback alongside WebSocket
};

function itUnless(bug: string | undefined): typeof it | typeof it.fails {
  return bug && process.env.COMETSOCKET_KNOWN_BUGS !== 'run' ? it.fails : it;
}

const note = (bug: string | undefined): string => (bug ? ' [known bug: ' + bug + ']' : '');

// ---- one proxy and one server per test; browsers per measurement ---------------------------------

interface Env {
  proxy: Proxy;
  srv: TestServer;
}

let live: { proxies: Proxy[]; servers: TestServer[]; browsers: TestBrowser[]; apps: App[] } = { proxies: [], servers: [], browsers: [], apps: [] };

beforeAll(async () => {
  await ensureBuilt();
}, 120000);

afterEach(async () => {
  const l = live;
  live = { proxies: [], servers: [], browsers: [], apps: [] };
  for (const a of l.apps) a.stop();
  for (const b of l.browsers) await b.close().catch(() => undefined);
  for (const s of l.servers) await s.close();
  for (const p of l.proxies) await p.close();
}, 20000);

/** A proxy in `mode` in front of a fresh reference server that allows the proxy's origin only. */
async function behind(mode: ProxyMode, options: ServerOptions = {}): Promise<Env> {
  const proxy = await startProxy(mode);
  live.proxies.push(proxy);
  const srv = await startTestServer({ ...options, allowedOrigins: [proxy.origin] });
  live.servers.push(srv);
  proxy.target = srv.origin;
  return { proxy, srv };
}

function app(e: Env, o: AppOptions): App {
  const a = serveApp(e.srv, o);
  live.apps.push(a);
  return a;
}

/** A fresh Chromium (fresh profile: empty localStorage, no pooled connections), closed after the test at the latest. */
async function browser(): Promise<TestBrowser> {
  const b = await launchBrowser();
  live.browsers.push(b);
  return b;
}

async function closeBrowser(b: TestBrowser): Promise<void> {
  live.browsers.splice(live.browsers.indexOf(b), 1);
  await b.close();
}

// ---- the page ----------------------------------------------------------------------------------

interface PageOptions {
  /** Every transport (`connect('/rt')`), or the list given. */
  transports: 'default' | readonly TransportName[];
  /** Keep what earlier loads remembered (localStorage); otherwise the page clears it first. */
  keepMemory?: boolean;
  /** Messages the page sends after 'open' ('c0', 'c1', …), 10 per tick. */
  count?: number;
}

/**
 * A page that loads the development bundle (the one with debug messages) by script tag and
 * connects to '/rt' when told (`T.go()`),
 * recording in `window.T` what the socket does and when (ms since connect()), its debug log
 * included, and what the endpoint's memory held before it connected.
 */
function proxyPage(o: PageOptions): string {
  const list = o.transports === 'default' ? '' : 'transports: [' + o.transports.map((n) => 'CometSocket.' + TRANSPORTS[n]).join(', ') + '], ';
  return `<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>cometsocket behind a proxy</title>
<script src="/rt/cometsocket.js"></script>
</head>
<body>
<script>
var T = (window.T = { got: [], at: [], own: 0, sent: 0, refused: 0, events: [], transports: [], log: [], first: -1, firstTransport: null, opened: -1, t0: -1, closeInfo: null });
// What negotiation remembered for this endpoint (the key is the socket's: 'cometsocket:' + endpoint URL).
T.key = 'cometsocket:' + location.protocol + '//' + location.host + '/rt';
try { T.remembered = localStorage.getItem(T.key); } catch (e) { T.remembered = 'unreadable'; }
${o.keepMemory ? '' : 'try { localStorage.clear(); } catch (e) {}'}
T.ms = function () { return Math.round((performance.now() - T.t0) * 10) / 10; };
T.fatal = function () {
  for (var i = 0; i < T.events.length; i++) if (/^(reconnecting:(1002|4\\d\\d\\d)|session-lost|close)/.test(T.events[i].replace(/^[\\d.]+ /, ''))) return T.events[i];
  return null;
};
T.summary = function () {
  var s = T.sock;
  return { state: s && s.state, transport: s && s.transport, got: T.got.length, own: T.own, sent: T.sent, events: T.events.slice(-20), log: T.log.slice(-20) };
};
T.go = function () {
  T.t0 = performance.now();
  var firstDone;
  T.whenFirst = new Promise(function (resolve) { firstDone = resolve; setTimeout(resolve, ${CONNECT_TIMEOUT + 2000}); });
  var sock = (T.sock = CometSocket.connect('/rt', { ${list}debug: function (m) { T.log.push(T.ms() + ' ' + m); } }));
  sock.on('message', function (d) {
    if (T.first < 0) { T.first = T.ms(); T.firstTransport = sock.transport; firstDone(); }
    T.got.push(d);
    T.at.push(T.ms());
    if (typeof d === 'string' && d.charAt(0) === 's') T.own++;
  });
  sock.on('open', function () { if (T.opened < 0) T.opened = T.ms(); T.events.push(T.ms() + ' open'); });
  sock.on('transport', function (n) { T.transports.push(n); T.events.push(T.ms() + ' transport:' + n); });
  sock.on('resume', function () { T.events.push(T.ms() + ' resume'); });
  sock.on('reconnecting', function (i) { T.events.push(T.ms() + ' reconnecting:' + i.code + ' ' + i.reason); });
  sock.on('session-lost', function (i) { T.events.push(T.ms() + ' session-lost:' + i.code + ' ' + i.reason); });
  sock.on('close', function (i) { T.closeInfo = i; T.events.push(T.ms() + ' close:' + i.code + ' ' + i.reason); });
  ${
    o.count
      ? `sock.once('open', function () {
    var tick = function () {
      for (var k = 0; T.sent < ${o.count} && k < 10; k++) {
        if (!sock.send('c' + T.sent)) { T.refused++; break; }
        T.sent++;
      }
      if (T.sent < ${o.count}) setTimeout(tick, 4);
    };
    tick();
  });`
      : ''
  }
};
</script>
</body>
</html>
`;
}

interface Load {
  tab: TestPage;
  /** ms from connect() to the first message. */
  first: number;
  /** The transport that carried it. */
  transport: string | null;
  /** What the page had remembered for the endpoint before connecting. */
  remembered: string | null;
  /** The socket's debug log, 'ms message'. */
  log: string[];
  /** Requests under /rt/ the proxy saw after connect() (not the bundle): 'GET /rt/sse?v=1&w=1', 'UPGRADE(dropped) /rt/websocket?v=1&w=1'. */
  requests: string[];
}

/**
 * Load `path` (served through the proxy) in `b`, let it idle, connect, and wait (bounded) for the
 * first message; the tab stays open.
 */
async function load(e: Env, b: TestBrowser, path: string, o: PageOptions): Promise<Load> {
  e.srv.page(path, proxyPage(o));
  const tab = await openPage(b, e.proxy.origin + path);
  await waitFor(tab.page, 'document.readyState === "complete"', 'the page to load', 10000);
  await sleep(IDLE);
  const mark = e.proxy.requests.length;
  // One evaluate that resolves on the first message (or the page's own bound): no polling while timing.
  await tab.page.evaluate('T.go(), T.whenFirst');
  const r = (await tab.page.evaluate('({ first: T.first, transport: T.firstTransport, remembered: T.remembered, log: T.log, fatal: T.fatal(), summary: T.summary() })')) as {
    first: number;
    transport: string | null;
    remembered: string | null;
    log: string[];
    fatal: string | null;
    summary: unknown;
  };
  if (r.first < 0) throw new Error('no message within ' + (CONNECT_TIMEOUT + 2000) + ' ms behind ' + e.proxy.mode + '; page: ' + JSON.stringify(r.summary));
  expect(r.fatal, 'unexpected socket event; page: ' + JSON.stringify(r.summary)).toBeNull();
  const requests = e.proxy.requests
    .slice(mark)
    .filter((q) => q.url.startsWith('/rt/') && !q.url.startsWith('/rt/cometsocket.'))
    .map((q) => (q.upgrade ? 'UPGRADE(' + q.fate + ')' : q.method) + ' ' + q.url);
  return { tab, first: r.first, transport: r.transport, remembered: r.remembered, log: r.log, requests };
}

/** One load in a fresh browser, closed afterwards. */
async function freshLoad(e: Env, path: string, o: PageOptions): Promise<Load> {
  const b = await browser();
  try {
    const l = await load(e, b, path, o);
    expect(l.remembered, 'a fresh browser remembers nothing').toBeNull();
    expect(l.tab.errors, 'uncaught errors in the page').toEqual([]);
    return l;
  } finally {
    await closeBrowser(b);
  }
}

/** When the socket's debug log first matched `re` (ms since connect()), or NaN. */
function logTime(l: Load, re: RegExp): number {
  const m = l.log.find((x) => re.test(x));
  return m ? parseFloat(m) : NaN;
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(1)).join(', ');

/**
 * Long polling alone, then the default negotiation, `runs` times each (interleaved so drift hits
 * both alike), each load in a fresh browser through the same proxy.
 */
async function baselineVsDefault(e: Env, tag: string, runs: number): Promise<{ lp: Load[]; def: Load[] }> {
  const lp: Load[] = [];
  const def: Load[] = [];
  for (let i = 0; i < runs; i++) {
    lp.push(await freshLoad(e, '/' + tag + '-lp-' + i + '.html', { transports: ['long-polling'] }));
    def.push(await freshLoad(e, '/' + tag + '-default-' + i + '.html', { transports: 'default' }));
  }
  return { lp, def };
}

/**
 * The first `n` new-session handshakes (`?v=1`, `&w=1` when they race) the proxy saw, sorted. POSTs, continuing GETs and
 * later upgrade probes (`probe=1`) are left out: they are session traffic, and Chromium may open a
 * WebSocket's TCP connection only after another transport already carries the session.
 */
function firstHandshakes(l: Load, n: number): string[] {
  return l.requests.filter((q) => /\?v=1(&w=1)?$/.test(q)).slice(0, n).sort();
}

// ---- the tests ---------------------------------------------------------------------------------

describe.sequential('behind proxies (Chromium, script tag)', () => {
  /**
   * Behind `dropUpgrades` (the proxy `latency` ms away): long polling alone vs the default
   * negotiation, `runs` fresh browsers each. The default gets its first message on sse, without
   * waiting for a timeout or even the head start; with `ratio`, its median must be within that
   * many times long polling's median.
   */
  async function dropUpgradesVsLongPolling(tag: string, latency: number, runs: number, ratio: number | null): Promise<void> {
    const e = await behind('dropUpgrades');
    e.proxy.latency = latency;
    app(e, { count: 1 });
    const { lp, def } = await baselineVsDefault(e, tag, runs);
    const mLp = median(lp.map((l) => l.first));
    const mDef = median(def.map((l) => l.first));
    // Where the default's time goes: until the dropped WebSocket is reported closed, then sse.
    const wsFailed = def.map((l) => logTime(l, /websocket closed/));
    console.log(
      `[proxies] dropUpgrades${latency ? ', proxy ' + latency + ' ms away' : ', loopback'}: first message, long polling alone ${fmt(lp.map((l) => l.first))} ms (median ${mLp.toFixed(1)}); ` +
        `default ${fmt(def.map((l) => l.first))} ms (median ${mDef.toFixed(1)}, ${(mDef / mLp).toFixed(2)}x long polling's, which does not race; ` +
        `the dropped WebSocket reported closed after ${fmt(wsFailed)} ms); default's first message over ${def.map((l) => l.transport).join(', ')}`,
    );
    for (const l of lp) expect(l.transport).toBe('long-polling');
    for (const l of def) {
      // The firewall was in the way: the upgrade was asked for and dropped; sse, started alongside
      // it (a first visit), carried the session. Their order at the proxy may vary.
      expect(firstHandshakes(l, 2), 'first handshakes of the default negotiation; requests: ' + l.requests.join(' | ') + '; log: ' + l.log.join(' | ')).toEqual(['GET /rt/sse?v=1&w=1', 'UPGRADE(dropped) /rt/websocket?v=1&w=1']);
      expect(l.transport, 'transport of the first message; log: ' + l.log.join(' | ')).toBe('sse');
      // Not after a WebSocket timeout, nor after the head start: sse started at once.
      expect(logTime(l, /try sse/), 'sse started at once; log: ' + l.log.join(' | ')).toBeLessThan(HEAD_START);
      expect(l.first, 'first message; log: ' + l.log.join(' | ')).toBeLessThan(HEAD_START + 4 * latency);
    }
    if (ratio !== null) {
      // Plus the round trips that keep a racing session (PROTOCOL.md "Handshake", w=1): the pong
      // goes on a connection of its own (the stream holds the first): a TCP handshake and a POST,
      // then the greeting comes down the stream; long polling alone does not race.
      const keep = 3 * 2 * latency;
      expect(mDef, `median first message, default (${fmt(def.map((l) => l.first))}) vs ${ratio}x long polling alone (${fmt(lp.map((l) => l.first))}) + ${keep} ms`).toBeLessThanOrEqual(ratio * mLp + keep);
    }
    expect(e.srv.errors).toEqual([]);
  }

  it('pass (control): through the proxy as such, the default negotiation ends on WebSocket, 200 messages each way exactly once, in order', async () => {
    const n = 200;
    const e = await behind('pass');
    const a = app(e, { count: n });
    const b = await browser();
    const l = await load(e, b, '/pass.html', { transports: 'default', count: n });
    await waitFor(l.tab.page, `window.T.got.length >= ${2 * n} || window.T.fatal()`, 2 * n + ' messages in the page', 10000);
    await waitUntil(() => a.received.length >= n, 10000, n + ' messages at the server');
    await sleep(300);
    const got = (await l.tab.page.evaluate('T.got')) as string[];
    const upgrade = e.proxy.requests.find((q) => q.upgrade);
    console.log(`[proxies] pass: first message after ${l.first.toFixed(1)} ms on ${l.transport}; the upgrade ${upgrade && upgrade.fate} (HTTP ${upgrade && upgrade.status})`);
    // WebSocket and sse start together (first visit), so their order at the proxy may vary.
    expect(firstHandshakes(l, 2)).toEqual(['GET /rt/sse?v=1&w=1', 'UPGRADE(passed) /rt/websocket?v=1&w=1']);
    expect(upgrade && upgrade.status, 'the tunnelled upgrade\'s answer').toBe(101);
    // A first visit starts sse alongside WebSocket: either may carry the first message; the
    // session ends on WebSocket (at once, or by the background upgrade) and the loser is closed.
    await waitFor(l.tab.page, "T.sock.transport === 'websocket'", 'the session on websocket', 5000);
    await waitUntil(() => a.conns.filter((c) => c.state === 'open').length === 1, 3000, 'one open session');
    expect(a.received).toEqual(numbered('c', n));
    expect(got.filter((d) => d.charAt(0) === 's')).toEqual(numbered('s', n));
    expect(got.filter((d) => d.slice(0, 2) === 'e:')).toEqual(numbered('e:c', n));
    expect(got.length).toBe(2 * n);
    expect(a.conns.filter((c) => c.state === 'open').length, 'open sessions').toBe(1);
    expect(l.tab.errors).toEqual([]);
    expect(e.srv.errors).toEqual([]);
    expect(e.proxy.errors).toEqual([]);
  }, 20000);

  // On loopback both times are a few ms of browser overhead and the dropped upgrade costs about
  // as much as a poll, so the ratio of medians swings around 1.5 with the machine's load (measured
  // 0.8x to 2.1x): printed here, asserted in the next test, where the network's round trips decide.
  it('dropUpgrades, loopback: the default negotiation gets its first message on sse, no WebSocket timeout, no head start spent', async () => {
    await dropUpgradesVsLongPolling('drop', 0, RUNS, null);
  }, 40000);

  itUnless(BUGS.sequentialFallback)(
    `dropUpgrades, proxy ${LATENCY} ms away: the default negotiation gets its first message within 1.5x long polling alone, plus the 3 round trips that keep a racing session` + note(BUGS.sequentialFallback),
    async () => {
      await dropUpgradesVsLongPolling('drop-latency', LATENCY, RUNS, 1.5);
    },
    40000,
  );

  it('swallowUpgrades: a first visit spends no head start on the hung upgrade: first message within long polling + headStart + 100 ms, on sse', async () => {
    const e = await behind('swallowUpgrades');
    app(e, { count: 1 });
    const { lp, def } = await baselineVsDefault(e, 'swallow', RUNS);
    const mLp = median(lp.map((l) => l.first));
    const mDef = median(def.map((l) => l.first));
    console.log(
      `[proxies] swallowUpgrades: first message, long polling alone ${fmt(lp.map((l) => l.first))} ms (median ${mLp.toFixed(1)}); ` +
        `default ${fmt(def.map((l) => l.first))} ms (median ${mDef.toFixed(1)}; bound ${(mLp + HEAD_START + 100).toFixed(1)}); default's first message over ${def.map((l) => l.transport).join(', ')}`,
    );
    for (const l of def) {
      expect(l.requests, 'log: ' + l.log.join(' | ')).toEqual(expect.arrayContaining(['GET /rt/sse?v=1&w=1', 'UPGRADE(swallowed) /rt/websocket?v=1&w=1']));
      expect(firstHandshakes(l, 2), 'the upgrade was among the first handshakes').toContain('UPGRADE(swallowed) /rt/websocket?v=1&w=1');
      expect(l.transport, 'log: ' + l.log.join(' | ')).toBe('sse');
      // A first visit: sse starts alongside the hung upgrade, no head start spent.
      expect(logTime(l, /try sse/), 'sse started at once; log: ' + l.log.join(' | ')).toBeLessThan(100);
      // Far from a WebSocket timeout (connectTimeout: 10 s); the tight bound is on the median below.
      expect(l.first, 'first message; log: ' + l.log.join(' | ')).toBeLessThan(1000);
    }
    expect(mDef).toBeLessThan(mLp + HEAD_START + 100);
    expect(e.srv.errors).toEqual([]);
  }, 40000);

  it('buffer: streams are buffered and given up after probeTimeout; the socket ends on long polling, 1000 messages each way exactly once, in order', async () => {
    const n = 1000;
    const e = await behind('buffer');
    const a = app(e, { count: n });
    const b = await browser();
    const l = await load(e, b, '/buffer.html', { transports: 'default', count: n });
    const page = l.tab.page;
    await waitFor(page, `window.T.got.length >= ${2 * n} || window.T.fatal()`, 2 * n + ' messages in the page', 20000);
    await waitUntil(() => a.received.length >= n, 10000, n + ' messages at the server');
    // The race's sse stream is given up by its probe timer (the proxy holds its response).
    await waitFor(page, 'window.T.log.some(function (m) { return /sse closed: 1006 sse: no frame within/.test(m); })', 'the sse probe to time out', PROBE_TIMEOUT + 3000, 'JSON.stringify(window.T.log)');
    // Let late duplicates arrive (a few ack rounds), and the socket settle (the upgrade probes may move it: see the next test).
    await sleep(300);
    await waitFor(page, 'window.T.sock.state === "open" && window.T.sock.transport === "long-polling"', 'the socket to be open on long polling', 8000);
    const r = (await page.evaluate('({ got: T.got, events: T.events, log: T.log, transport: T.sock.transport, transports: T.transports, sent: T.sent, refused: T.refused, state: T.sock.state, id: T.sock.id })')) as {
      got: string[];
      events: string[];
      log: string[];
      transport: string;
      transports: string[];
      sent: number;
      refused: number;
      state: string;
      id: string;
    };
    const events = r.events.map((x) => x.replace(/^[\d.]+ /, ''));
    console.log(`[proxies] buffer: first message after ${l.first.toFixed(1)} ms on ${l.transport}; ${r.got.length} messages in the page, ${a.received.length} at the server; ended on ${r.transport}; events: ${events.join(', ')}`);
    const why = 'log: ' + r.log.join(' | ');
    // The negotiation: WebSocket dropped, sse buffered (no frame within probeTimeout), long polling carries the session.
    expect(firstHandshakes(l, 3), why).toEqual(['GET /rt/long-polling?v=1&w=1', 'GET /rt/sse?v=1&w=1', 'UPGRADE(dropped) /rt/websocket?v=1&w=1']);
    expect(l.transport, why).toBe('long-polling');
    // The WebSocket's failure starts long polling at once, the silent sse still racing (was: after
    // sse's whole head start, which made every first visit behind this proxy 4.6x slower than
    // Socket.IO's to its first message; bench/browser).
    expect(logTime(l, /try long-polling/), 'long polling started when the WebSocket failed; ' + why).toBeLessThan(HEAD_START);
    expect(l.first, 'first message').toBeLessThan(HEAD_START + 500);
    expect(r.transport).toBe('long-polling');
    expect(r.transports, 'transport events').toEqual(['long-polling']);
    expect(r.state).toBe('open');
    // Exactly once, in order, both ways; one session as the page sees it.
    expect(e.srv.errors, 'exceptions in the server').toEqual([]);
    expect(a.received).toEqual(numbered('c', n));
    expect(r.sent).toBe(n);
    expect(r.refused).toBe(0);
    expect(r.got.length, 'messages the page received').toBe(2 * n);
    expect(r.got.filter((d) => d.charAt(0) === 's')).toEqual(numbered('s', n));
    expect(r.got.filter((d) => d.slice(0, 2) === 'e:')).toEqual(numbered('e:c', n));
    expect(events.filter((x) => x === 'open')).toEqual(['open']);
    expect(events.filter((x) => /^(session-lost|close)/.test(x))).toEqual([]);
    // Sessions at the server: the page's, and the one the race's sse handshake opened (its open
    // frame held by the proxy, so the page could never close it: it expires on the server).
    expect(a.conns.filter((c) => c.id === r.id).length, "the page's session at the server").toBe(1);
    expect(a.conns.length).toBeLessThanOrEqual(2);
    // The proxy never answered the sse stream (held whole, and it never ended).
    expect(e.proxy.requests.filter((q) => q.url === '/rt/sse?v=1&w=1').map((q) => q.status)).toEqual([0]);
    expect(l.tab.errors, 'uncaught errors in the page').toEqual([]);
  }, 40000);

  itUnless(BUGS.upgradeBreaksSession)(
    'buffer: the background upgrade probes (websocket, then sse) never interrupt the long-polling session' + note(BUGS.upgradeBreaksSession),
    async () => {
      const e = await behind('buffer');
      // A message every 50 ms from the server: the page must keep receiving while the probes run.
      let ticks = 0;
      const timer = setInterval(() => {
        for (const c of e.srv.rt.connections()) c.send('t' + ticks);
        ticks++;
      }, 50);
      try {
        const b = await browser();
        const l = await load(e, b, '/buffer-upgrade.html', { transports: 'default' });
        const page = l.tab.page;
        expect(l.transport).toBe('long-polling');
        // The first upgrade cycle: websocket after [0, 1000) ms, then sse after [0, 2000) ms more.
        await waitFor(page, 'window.T.log.some(function (m) { return /upgrade: probe sse/.test(m); })', 'the upgrade probe of sse', 5000, 'JSON.stringify(window.T.log)');
        // The probe is buffered: it times out after probeTimeout; give the session that long and a second more.
        await sleep(PROBE_TIMEOUT + 1000);
        const r = (await page.evaluate('({ events: T.events, log: T.log, transport: T.sock.transport, state: T.sock.state, at: T.at })')) as { events: string[]; log: string[]; transport: string; state: string; at: number[] };
        const why = 'events: ' + r.events.join(', ') + '; log: ' + r.log.join(' | ');
        // The longest the page went without a message (the server sends one every 50 ms).
        let gap = 0;
        for (let i = 1; i < r.at.length; i++) gap = Math.max(gap, r.at[i] - r.at[i - 1]);
        console.log(`[proxies] buffer, upgrade probes: longest silence ${gap.toFixed(0)} ms (server sends every 50 ms); events: ${r.events.join(', ')}`);
        expect(r.events.filter((x) => /reconnecting|resume/.test(x)), why).toEqual([]);
        expect(r.transport, why).toBe('long-polling');
        expect(r.state).toBe('open');
        expect(gap, 'longest silence in the page; ' + why).toBeLessThan(500);
      } finally {
        clearInterval(timer);
      }
    },
    20000,
  );

  for (const mode of ['dropUpgrades', 'swallowUpgrades', 'buffer'] as const) {
    const expected = mode === 'buffer' ? 'long-polling' : 'sse';
    // dropUpgrades saves only the WebSocket's failure (a few ms on loopback): medians of RUNS pairs.
    const pairs = mode === 'dropUpgrades' ? RUNS : 1;
    it(`memory, ${mode}: the second load in the same browser starts with ${expected}, what worked the first time`, async () => {
      const e = await behind(mode);
      app(e, { count: 1 });
      const firsts: Load[] = [];
      const seconds: Load[] = [];
      for (let i = 0; i < pairs; i++) {
        const b = await browser();
        const one = await load(e, b, `/memory-${mode}-${i}-1.html`, { transports: 'default' });
        expect(one.remembered, 'a fresh browser remembers nothing').toBeNull();
        await one.tab.page.close();
        const two = await load(e, b, `/memory-${mode}-${i}-2.html`, { transports: 'default', keepMemory: true });
        await closeBrowser(b);
        firsts.push(one);
        seconds.push(two);
        const why = 'first load: ' + one.log.join(' | ') + '\nsecond load: ' + two.log.join(' | ');
        expect(one.transport, why).toBe(expected);
        expect(one.tab.errors.concat(two.tab.errors)).toEqual([]);
        expect(JSON.parse(two.remembered || 'null'), 'what the second load found remembered').toMatchObject({ t: expected });
        expect(two.requests[0], "the second load's first request to the server; " + why).toBe('GET /rt/' + expected + '?v=1&w=1');
        expect(two.log.some((m) => m.indexOf('starting with ' + expected + ': it worked here last time') >= 0), why).toBe(true);
        expect(two.transport, why).toBe(expected);
      }
      console.log(`[proxies] memory, ${mode}: first load ${fmt(firsts.map((x) => x.first))} ms on ${firsts.map((x) => x.transport).join(', ')}; second load ${fmt(seconds.map((x) => x.first))} ms on ${seconds.map((x) => x.transport).join(', ')} (first request ${seconds[0].requests[0]})`);
      // The first visit already starts sse alongside WebSocket (parallel fallback), and behind the
      // buffering proxy the WebSocket's failure starts long polling at once (the buffer cell checks
      // it), so both loads take about the same few ms and a comparison would be a coin toss on a
      // shared machine: the first request (above) is the claim, and the figures are printed.
      expect(e.srv.errors).toEqual([]);
    }, 30000);
  }

  /** The iframe-streaming documents the proxy passed, as the browser got them. */
  const frameDocs = (e: Env): string[] => e.proxy.teed.map((t) => Buffer.concat(t.chunks).toString('utf8'));
  /** The tags a forever-frame document may contain: its own, nothing a payload brought. */
  const FRAME_TAGS = ['<!doctype html>', '<html>', '<head>', '<meta charset="utf-8">', '</head>', '<body>', '<script>', '</script>', '</body>', '</html>'];
  /** How the server ends a recycled iframe document (PROTOCOL.md, "Transports"). */
  const FRAME_END = '<script>p(null)</script></body></html>';

  /**
   * The server sends `payloads` one per 10 ms tick (each its own batch, its own <script>) on the
   * forced iframe-streaming transport, through a passing proxy that keeps the documents.
   */
  async function iframeExchange(tag: string, payloads: string[]): Promise<{ e: Env; l: Load; got: string[]; docs: string[] }> {
    const e = await behind('pass');
    e.proxy.tee = (method, url) => method === 'GET' && url.startsWith('/rt/iframe-streaming');
    e.srv.rt.on('connection', (conn) => {
      let i = 0;
      const next = (): void => {
        if (i >= payloads.length || conn.state !== 'open') return;
        conn.send(payloads[i++]);
        setTimeout(next, 10);
      };
      next();
    });
    const b = await browser();
    const l = await load(e, b, '/' + tag + '.html', { transports: ['iframe-streaming'] });
    await waitFor(l.tab.page, `window.T.got.length >= ${payloads.length} || window.T.fatal()`, payloads.length + ' payloads', 10000);
    await sleep(300);
    const got = (await l.tab.page.evaluate('T.got')) as string[];
    return { e, l, got, docs: frameDocs(e) };
  }

  it('escaping, iframe-streaming forced: hostile payloads arrive intact and in order, none runs as script, no page error', async () => {
    const hostile = [
      '</script><script>window.PWNED=1</script>',
      '<!--',
      '-->',
      '\u2028',
      '\u2029',
      '<![CDATA[',
      '</SCRIPT >',
      '<'.repeat(100 * 1024),
      // The same aimed at the page from inside the forever-frame, and out of the JSON string literal.
      '</script><script>parent.PWNED=2</script>',
      '</ScRiPt\t><script>top.PWNED=3</script><!--',
      '");parent.PWNED=4;("',
      "');parent.PWNED=5;('",
      '\\");parent.PWNED=6;//',
      'a\u2028b\u2029c</script>\n<script>parent.PWNED=7</script>',
      '<script>parent.PWNED=8</script>',
    ];
    const { e, l, got, docs } = await iframeExchange('escaping', hostile);
    const r = (await l.tab.page.evaluate(`({
      transport: T.sock.transport,
      pwned: [window.PWNED, window.top.PWNED].concat(Array.prototype.map.call(document.querySelectorAll('iframe'), function (f) {
        try { return f.contentWindow.PWNED; } catch (x) { return 'unreadable'; }
      })),
      frames: document.querySelectorAll('iframe').length,
      events: T.events
    })`)) as { transport: string; pwned: unknown[]; frames: number; events: string[] };
    const tags = Array.from(new Set(docs.join('').match(/<[^>]*>?/g) || []));
    console.log(`[proxies] escaping: ${got.length} payloads over ${r.transport}, ${docs.length} iframe document(s) of ${docs.map((x) => x.length).join(' + ')} bytes; tags in them: ${tags.join(' ')}; PWNED (page, top, live frames): ${JSON.stringify(r.pwned)}`);
    expect(r.transport).toBe('iframe-streaming');
    expect(got.length).toBe(hostile.length);
    for (let i = 0; i < hostile.length; i++) expect(got[i], 'payload ' + i).toBe(hostile[i]);
    // Nothing ran: not in the page, not in the live forever-frame (same origin here: readable).
    expect(r.frames, 'live forever-frames').toBe(1);
    expect(r.pwned.length).toBe(3);
    for (const v of r.pwned) expect(v).toBeUndefined();
    expect(l.tab.errors, 'uncaught errors in the page').toEqual([]);
    expect(r.events.filter((x) => /reconnecting|close|session-lost/.test(x))).toEqual([]);
    // The raw documents: only the frame's own tags, no comment or CDATA opener, no raw U+2028/9.
    expect(docs.length).toBeGreaterThanOrEqual(1);
    expect(tags.filter((t) => FRAME_TAGS.indexOf(t) < 0), 'tags a payload brought into the forever-frame').toEqual([]);
    for (const doc of docs) {
      expect(doc.indexOf('<!--')).toBe(-1);
      expect(doc.indexOf('-->')).toBe(-1);
      expect(doc.indexOf('<![CDATA[')).toBe(-1);
      expect(doc.indexOf('\u2028')).toBe(-1);
      expect(doc.indexOf('\u2029')).toBe(-1);
    }
    expect(e.srv.errors).toEqual([]);
  }, 30000);

  // Known bug (BUGS.streamLimitCountsChars): the server counts the unescaped batch, so the 600 KB document is not recycled.
  itUnless(BUGS.streamLimitCountsChars)('iframe-streaming: a document that has carried streamLimit (256 KiB) bytes is ended and reopened (the 100 KB "<" payload is 600 KB escaped)' + note(BUGS.streamLimitCountsChars), async () => {
    const big = '<'.repeat(100 * 1024);
    const { got, docs } = await iframeExchange('stream-limit', [big, 'after']);
    console.log(`[proxies] stream limit: iframe documents of ${docs.map((x) => Buffer.byteLength(x)).join(' + ')} bytes (streamLimit 262144)`);
    expect(got).toEqual([big, 'after']);
    // PROTOCOL.md: "after streamLimit bytes (256 KiB by default) the server ends the response".
    expect(Buffer.byteLength(docs[0])).toBeGreaterThan(262144);
    expect(docs[0].slice(-FRAME_END.length), 'the end of the first document (' + Buffer.byteLength(docs[0]) + ' bytes)').toBe(FRAME_END);
    expect(docs.length, 'iframe documents').toBe(2);
  }, 20000);
});
