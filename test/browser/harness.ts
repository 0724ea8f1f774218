/**
 * The browser suite's per-file harness: one Chromium per test file, a fresh reference server per
 * test, every tab, app timer and server closed after each test; and the exchange assertions
 * (exactly once, in order, both directions) shared by the test files.
 *
 * Traffic: the server sends its own numbered messages ('s0', 's1', …) on each new session and
 * echoes every page message ('c0' → 'e:c0'); the page sends 'c0', 'c1', …
 */
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import {
  ensureBuilt,
  launchBrowser,
  expectExactlyOnceInOrder as expectExactlyOnceInOrderIn,
  expectOneSession as expectOneSessionIn,
  openPage,
  readPage,
  serveApp,
  sleep,
  startTestServer,
  testPage,
  waitFor,
  waitUntil,
  type App,
  type AppOptions,
  type PageConfig,
  type PageResult,
  type TestBrowser,
  type TestPage,
  type TestServer,
} from './helpers';
import type { ServerOptions } from '../../server/options';

/** Messages each way in a plain exchange. */
export const N = 1000;

/** A paced stream: 10 messages per tick, no side more than 200 of its own ahead of what it received. */
export const STREAM = { chunk: 10, lead: 200 };

export interface Suite {
  /** The current test's server. */
  readonly srv: TestServer;
  /** Serve `html` at `path` and open it in a new tab (closed after the test). */
  open(path: string, html: string): Promise<TestPage>;
  /** The test application on the current server (stopped after the test). */
  app(o: AppOptions): App;
  /** Wait until both sides have everything (bounded), let late duplicates arrive, then read the page. */
  exchangeDone(t: TestPage, a: App, n: number, timeout?: number): Promise<PageResult>;
  /** Every message exactly once and in order, in both directions; no uncaught error anywhere. */
  expectExactlyOnceInOrder(r: PageResult, a: App, n: number, t: TestPage): void;
  /** One session from start to end: opened once, never lost, nothing closed. */
  expectOneSession(r: PageResult, a: App): void;
  /** N messages each way, the page's sent in one go; everything on transport `expected`, no reconnect. */
  exchange(path: string, page: Omit<PageConfig, 'count'>, expected: string, timeout?: number): Promise<PageResult>;
  /**
   * 2000 messages each way as a paced stream; when the server has received half of the page's,
   * `cut()` runs (in the middle of a batch from the page, the server's own stream under way).
   */
  streamWithCut(
    path: string,
    cut: () => Promise<void> | void,
    page?: Partial<PageConfig>,
    timeout?: number,
  ): Promise<{ at: { received: number; sent: number; unacked: number; pageSent: number }; r: PageResult; t: TestPage; a: App }>;
}

/** Register the hooks of a browser test file and return its harness. */
export function browserSuite(serverOptions: ServerOptions = {}): Suite {
  let browser: TestBrowser | null = null;
  let srv: TestServer | null = null;
  let tabs: TestPage[] = [];
  let apps: App[] = [];

  beforeAll(async () => {
    await ensureBuilt();
    browser = await launchBrowser();
  }, 120000);

  afterAll(async () => {
    if (browser) await browser.close();
    browser = null;
  }, 20000);

  beforeEach(async () => {
    srv = await startTestServer(serverOptions);
  });

  afterEach(async () => {
    for (const a of apps) a.stop();
    apps = [];
    for (const t of tabs) await t.page.close().catch(() => undefined);
    tabs = [];
    if (srv) await srv.close();
    srv = null;
  }, 20000);

  const s: Suite = {
    get srv() {
      return srv!;
    },

    async open(path, html) {
      const t = await openPage(browser!, srv!.page(path, html));
      tabs.push(t);
      return t;
    },

    app(o) {
      const a = serveApp(srv!, o);
      apps.push(a);
      return a;
    },

    async exchangeDone(t, a, n, timeout = 15000) {
      // Stop early on an event a healthy exchange never has (a protocol error, a refusal, a lost session).
      await waitFor(t.page, `window.T && (window.T.got.length >= ${2 * n} || window.T.fatal())`, 2 * n + ' messages in the page', timeout);
      const fatal = await t.page.evaluate('window.T.fatal()');
      expect(fatal, 'unexpected socket event; page state: ' + JSON.stringify(await t.page.evaluate('window.T.summary()'))).toBeNull();
      await waitUntil(() => a.received.length >= n, timeout, n + ' messages at the server');
      // Anything duplicated would arrive shortly after: give it the time of a few ack rounds.
      await sleep(300);
      return readPage(t.page);
    },

    expectExactlyOnceInOrder: (r, a, n, t) => expectExactlyOnceInOrderIn(srv!, r, a, n, t),
    expectOneSession: (r, a) => expectOneSessionIn(r, a),

    async exchange(path, page, expected, timeout = 15000) {
      const a = s.app({ count: N });
      const t = await s.open(path, testPage({ count: N, ...page }));
      await s.exchangeDone(t, a, N, timeout);
      // A first visit may still be moving up from the fallback that raced alongside (background upgrade).
      await waitFor(t.page, 'window.T.sock.transport === ' + JSON.stringify(expected), 'the session on ' + expected, 5000);
      const r = await readPage(t.page);
      expect(r.hasGlobal, 'window.CometSocket from the script tag').toBe(true);
      s.expectExactlyOnceInOrder(r, a, N, t);
      s.expectOneSession(r, a);
      expect(r.events.filter((e) => e.startsWith('reconnecting')), 'reconnects').toEqual([]);
      expect(r.transport).toBe(expected);
      // A first visit may start on the fallback that raced alongside, then move up: the session
      // ends on `expected`, with at most one transport before it.
      expect(r.transports[r.transports.length - 1], 'transport the page ended on').toBe(expected);
      expect(r.transports.length, 'transports the page used: ' + r.transports.join(', ')).toBeLessThanOrEqual(2);
      expect(a.transports, 'transports the server saw').toContain(expected);
      expect(a.conns.filter((c) => c.state === 'open')[0].transport).toBe(expected);
      return r;
    },

    async streamWithCut(path, cut, page = {}, timeout = 15000) {
      const n = 2000;
      const at = { received: -1, sent: -1, unacked: -1, pageSent: -1 };
      let done: Promise<void> | null = null;
      const a = s.app({
        count: n,
        ...STREAM,
        onReceive(received, conn) {
          if (received !== n / 2) return;
          at.received = received;
          at.sent = a.sent;
          at.unacked = conn.bufferedAmount;
          done = Promise.resolve(cut());
        },
      });
      const t = await s.open(path, testPage({ transports: 'default', count: n, sendWhen: 'open', ...STREAM, ...page }));
      await waitFor(t.page, 'window.T.sock.state === "open" || window.T.fatal()', 'the socket to open', timeout);
      expect(await t.page.evaluate('window.T.fatal()'), 'unexpected socket event before the cut').toBeNull();
      await waitUntil(() => done !== null, timeout, 'the server to receive ' + n / 2 + ' messages');
      await done;
      at.pageSent = (await t.page.evaluate('window.T.sent')) as number;
      // The cut happened mid-stream in both directions.
      expect(at.sent, 'server messages sent before the cut').toBeGreaterThan(0);
      expect(at.sent).toBeLessThan(n);
      expect(at.pageSent, 'page messages sent before the cut').toBeLessThan(n);
      const r = await s.exchangeDone(t, a, n, timeout);
      s.expectExactlyOnceInOrder(r, a, n, t);
      s.expectOneSession(r, a);
      return { at, r, t, a };
    },
  };
  return s;
}

/**
 * Bugs this suite found that are not fixed yet. A test that runs into one is `it.fails` (with the
 * bug named in a comment) until the fix lands, at which point it starts failing as "expected to
 * fail": make it a plain `it` again.
 */
export const BUGS = {
} as const;

/**
 * `it.fails` for a test that runs into a known bug (`it` when there is none). Set
 * COMETSOCKET_KNOWN_BUGS=run to run them as plain tests and read how they fail.
 */
export function itUnless(bug: string | undefined): typeof it | typeof it.fails {
  return bug && process.env.COMETSOCKET_KNOWN_BUGS !== 'run' ? it.fails : it;
}
