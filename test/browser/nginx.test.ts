/**
 * The script-tag bundle in headless Chromium behind a REAL nginx (the Debian package,
 * /usr/sbin/nginx; `scripts/test-all.sh` installs it): every page is loaded through nginx, so its
 * origin is nginx's, as for a user behind a reverse proxy; nginx proxies everything (the pages,
 * the bundle, /rt/…) to the test server.
 *
 * Two configurations, each its own nginx (a fresh prefix directory, started and stopped here):
 *  - "default nginx": `location / { proxy_pass … }` and nothing else. nginx then talks HTTP/1.0
 *    to the upstream, drops Upgrade/Connection (no WebSocket can pass), rewrites Host to the
 *    upstream's address and buffers responses unless told not to (the server sends
 *    `X-Accel-Buffering: no` on streams). With `allowedOrigins: '*'` (the demo of `npm start`)
 *    every HTTP transport must carry a session; with the server's default Origin check the page
 *    must get a clear refusal (close 4403), not a hang (README, "Behind a reverse proxy");
 *  - "README block": the nginx block of README.md ("Behind a reverse proxy") on /rt/, with a plain
 *    proxy_pass for the pages: with the default Origin check the socket ends on WebSocket.
 *
 * Traffic: the server sends 's0' … 's199' on each new session and echoes every page message as
 * 'e:' + message; the page sends 'c0' … 'c199' once open. Timings are printed ('[nginx] …').
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ensureBuilt,
  expectExactlyOnceInOrder,
  expectOneSession,
  launchBrowser,
  openPage,
  readPage,
  serveApp,
  sleep,
  startTestServer,
  testPage,
  waitFor,
  waitUntil,
  type App,
  type PageResult,
  type TestBrowser,
  type TestPage,
  type TestServer,
  type TransportName,
} from './helpers';
import type { ServerOptions } from '../../server/options';
import { defaultBlock, readmeBlock, readmeWithoutHost, startNginx, type Nginx } from './nginx';

/** Messages each way. */
const N = 200;

// ---- one nginx, one server and one browser per describe block --------------------------------------

interface Env {
  readonly srv: TestServer;
  readonly nginx: Nginx;
  readonly browser: TestBrowser;
  /** The test application on the server, for this test only. */
  app(): App;
  /** Serve `html` at `path` and open it THROUGH nginx in a new tab (closed after the test). */
  open(path: string, html: string): Promise<TestPage>;
}

/** Register the hooks of a describe block: the server with `options`, an nginx with `block` in front of it, a browser. */
function behindNginx(options: ServerOptions, block: (upstream: number) => { http: string; locations: string }): Env {
  let srv: TestServer | null = null;
  let nginx: Nginx | null = null;
  let browser: TestBrowser | null = null;
  let apps: App[] = [];
  let tabs: TestPage[] = [];

  beforeAll(async () => {
    await ensureBuilt();
    srv = await startTestServer(options);
    nginx = await startNginx(block(Number(new URL(srv.origin).port)));
    browser = await launchBrowser();
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
    if (nginx) await nginx.close();
    if (srv) await srv.close();
    browser = nginx = srv = null;
  }, 20000);

  return {
    get srv() {
      return srv!;
    },
    get nginx() {
      return nginx!;
    },
    get browser() {
      return browser!;
    },
    app() {
      const a = serveApp(srv!, { count: N });
      apps.push(a);
      return a;
    },
    async open(path, html) {
      srv!.page(path, html);
      const t = await openPage(browser!, nginx!.origin + path);
      tabs.push(t);
      return t;
    },
  };
}

/** The access log lines ("combined" format) whose request line starts with `request`: 'GET /rt/sse?v=1', '/rt/sse' (any method). */
const logged = (e: Env, request: string): string[] =>
  e.nginx.accessLog().filter((l) => {
    const m = /"([A-Z]+) (\S+)/.exec(l);
    return m !== null && (request.charAt(0) === '/' ? m[2] : m[1] + ' ' + m[2]).startsWith(request);
  });

/**
 * N messages each way through nginx on the page at `path`: wait (bounded) until both sides have
 * everything, let late duplicates arrive, then check exactly once and in order both ways, one
 * session, no session-lost or close, no page error; the socket ends on `expected`.
 */
async function exchange(e: Env, path: string, transports: 'default' | TransportName, expected: string): Promise<{ r: PageResult; a: App; ms: number }> {
  const t0 = Date.now();
  const a = e.app();
  const t = await e.open(path, testPage({ transports, count: N, sendWhen: 'open' }));
  const fatal = 'window.T.fatal && /^(session-lost|close)/.test(window.T.fatal() || "")';
  await waitFor(t.page, `window.T && (window.T.got.length >= ${2 * N} || ${fatal})`, 2 * N + ' messages in the page through nginx', 15000);
  await waitUntil(() => a.received.length >= N, 10000, N + ' messages at the server');
  // A first visit may open on the fallback that raced alongside WebSocket, then move up (bounded).
  await waitFor(t.page, 'window.T.sock.transport === ' + JSON.stringify(expected), 'the socket on ' + expected, 10000);
  const ms = Date.now() - t0;
  // Anything duplicated would arrive shortly after: give it the time of a few ack rounds.
  await sleep(300);
  const r = await readPage(t.page);
  const why = 'events: ' + r.events.join(', ') + '; console: ' + t.console.join(' | ') + '\n' + e.nginx.diagnostics();

  expect(r.hasGlobal, 'window.CometSocket from the script tag, through nginx').toBe(true);
  expectExactlyOnceInOrder(e.srv, r, a, N, t, why);
  expectOneSession(r, a, why);
  const live = a.conns.filter((c) => c.state === 'open');
  // The session ends on `expected`, at the page and at the server.
  expect(r.transport, why).toBe(expected);
  expect(r.transports[r.transports.length - 1], 'transport the page ended on: ' + r.transports.join(', ')).toBe(expected);
  expect(live[0].transport, 'transport of the session at the server').toBe(expected);
  // The page, and the bundle, came through nginx.
  expect(logged(e, 'GET ' + path).length, 'the page in nginx access log').toBe(1);
  expect(logged(e, 'GET /rt/cometsocket.min.js').length, 'the bundle in nginx access log').toBeGreaterThan(0);
  return { r, a, ms };
}

const report = (cell: string, o: { r: PageResult; ms: number }): void => {
  console.log(`[nginx] ${cell}: ${o.ms} ms; transports ${o.r.transports.join(' → ')}; events: ${o.r.events.join(', ')}`);
};

// ---- the cells -------------------------------------------------------------------------------------

describe.sequential("default nginx (proxy_pass only) × server allowedOrigins '*'", () => {
  const e = behindNginx({ allowedOrigins: '*' }, defaultBlock);

  it(`nginx default × default negotiation → ends on sse (WebSocket cannot pass), ${N} each way exactly once in order`, async () => {
    const o = await exchange(e, '/default-negotiation.html', 'default', 'sse');
    report('default × default negotiation', o);
    // WebSocket was tried and could not pass: nginx forwarded a plain GET without Upgrade.
    expect(e.srv.control.upgrades, 'WebSocket upgrades that reached the server').toBe(0);
    expect(logged(e, 'GET /rt/websocket').length, 'the WebSocket attempt in nginx access log').toBeGreaterThan(0);
    expect(logged(e, 'GET /rt/websocket').filter((l) => / 101 /.test(l)), 'WebSocket upgrades nginx passed').toEqual([]);
  }, 30000);

  for (const name of ['sse', 'xhr-streaming', 'iframe-streaming', 'long-polling'] as const) {
    it(`nginx default × ${name} forced → ${N} each way exactly once in order, on ${name}, no reconnect`, async () => {
      const o = await exchange(e, '/forced-' + name + '.html', name, name);
      report('default × ' + name, o);
      expect(o.r.transports, 'transports the page used').toEqual([name]);
      expect(o.r.events.filter((x) => x.startsWith('reconnecting')), 'reconnects').toEqual([]);
      // Its requests went through nginx (a request is logged when it ends: the POSTs, not a stream still open).
      expect(logged(e, '/rt/' + name + '?').length, name + ' requests in nginx access log').toBeGreaterThan(0);
    }, 30000);
  }
});

describe.sequential('default nginx (proxy_pass only) × server default Origin check', () => {
  // allowedOrigins: undefined (not left out: startTestServer would name its own origin).
  const e = behindNginx({ allowedOrigins: undefined }, defaultBlock);

  it('nginx default × default Origin check × long-polling forced → close 4403 within 10 s (nginx rewrote Host: the Origin looks foreign), not a hang', async () => {
    const t0 = Date.now();
    const a = e.app();
    const t = await e.open('/refused-long-polling.html', testPage({ transports: 'long-polling', count: N, sendWhen: 'open' }));
    await waitFor(t.page, 'window.T && window.T.closeInfo', "the socket's close event", 10000);
    const ms = Date.now() - t0;
    const r = (await t.page.evaluate('({ closeInfo: T.closeInfo, events: T.events, state: T.sock.state, got: T.got.length })')) as {
      closeInfo: { code: number; reason: string };
      events: string[];
      state: string;
      got: number;
    };
    console.log(`[nginx] default × default Origin check × long-polling: close ${r.closeInfo.code} ${r.closeInfo.reason} after ${ms} ms; events: ${r.events.join(', ')}; server received ${a.received.length}`);
    const why = 'events: ' + r.events.join(', ') + '\n' + e.nginx.diagnostics();
    // Chromium sends no Origin on a same-origin GET, so the handshake GET passes the check and
    // the socket may open (and get the server's first messages); the first POST (data or acks)
    // carries Origin and is refused: close 4403, fatal, no retry.
    expect(r.closeInfo.code, why).toBe(4403);
    expect(r.state).toBe('closed');
    expect(r.events.filter((x) => x.startsWith('close')), 'close events').toHaveLength(1);
    // The refusal came from the server, through nginx: a 403 in its access log.
    expect(logged(e, '/rt/long-polling').some((l) => / 403 /.test(l)), 'a 403 in nginx access log: ' + logged(e, '/rt/long-polling').join(' | ')).toBe(true);
    expect(a.received, 'messages the server accepted from a foreign-looking origin').toEqual([]);
    expect(t.errors, 'uncaught errors in the page').toEqual([]);
  }, 20000);
});

describe.sequential("the README's nginx block × server default Origin check", () => {
  const e = behindNginx({ allowedOrigins: undefined }, readmeBlock);

  it(`nginx README × default negotiation → ends on websocket, ${N} each way exactly once in order`, async () => {
    const o = await exchange(e, '/readme-negotiation.html', 'default', 'websocket');
    report('README × default negotiation', o);
    expect(e.srv.control.upgrades, 'WebSocket upgrades that reached the server').toBeGreaterThan(0);
    expect(o.r.transports.length, 'transports the page used: ' + o.r.transports.join(', ')).toBeLessThanOrEqual(2);
  }, 30000);

  it(`nginx README × websocket forced → ${N} each way exactly once in order, on websocket, no reconnect`, async () => {
    const o = await exchange(e, '/readme-websocket.html', 'websocket', 'websocket');
    report('README × websocket', o);
    expect(o.r.transports, 'transports the page used').toEqual(['websocket']);
    expect(o.r.events.filter((x) => x.startsWith('reconnecting')), 'reconnects').toEqual([]);
  }, 30000);
});

describe.sequential("the README's block without its Host line × server default Origin check", () => {
  const e = behindNginx({ allowedOrigins: undefined }, readmeWithoutHost);

  // The upgrade passes nginx but its Origin looks foreign. A browser cannot read the status of a
  // refused upgrade (it sees 1006 and would retry forever): the server completes the upgrade and
  // sends the close frame 4403 (PROTOCOL.md, websocket handshake).
  it('nginx README without Host × websocket forced × default Origin check → close 4403 at once, no retry', async () => {
    const t0 = Date.now();
    const a = e.app();
    const t = await e.open('/refused-websocket.html', testPage({ transports: 'websocket', count: N, sendWhen: 'open' }));
    await waitFor(t.page, 'window.T && window.T.closeInfo', "the socket's close event", 10000);
    const ms = Date.now() - t0;
    const r = (await t.page.evaluate('({ closeInfo: T.closeInfo, events: T.events, state: T.sock.state })')) as { closeInfo: { code: number; reason: string }; events: string[]; state: string };
    console.log(`[nginx] README without Host × websocket: close ${r.closeInfo.code} ${r.closeInfo.reason} after ${ms} ms; events: ${r.events.join(', ')}`);
    expect(r.closeInfo.code, 'events: ' + r.events.join(', ') + '\n' + e.nginx.diagnostics()).toBe(4403);
    expect(r.events.filter((x) => x.startsWith('reconnecting')), 'reconnects').toEqual([]);
    expect(r.state).toBe('closed');
    expect(a.conns, 'sessions the server opened').toEqual([]);
    expect(t.errors, 'uncaught errors in the page').toEqual([]);
  }, 20000);
});
