/**
 * `node --import tsx bench/browser/run.ts [--quick]` (`npm run bench:browser`): DESIGN.md's
 * negotiation bar, measured in one run of a real Chromium, cometsocket against Socket.IO:
 *
 *   "Socket.IO's first-message time (within 1.2×) on every network, the best transport the
 *    network allows soon after, and nothing lost anywhere."
 *
 * For every network of networks.ts (direct, default nginx, a firewall that drops WebSocket
 * upgrades, one that swallows them, a proxy that buffers whole responses, a link whose
 * connections are reset every 1.5 s) and both libraries with their defaults
 * (`CometSocket.connect('/rt')`, `io(location.origin)`), each library on its own server with the
 * same application (pages.ts, servers.ts):
 *  - first visits: TRIALS trials, each in a fresh browser context of one headless Chromium (empty
 *    localStorage, HTTP cache and connection pool: cometsocket remembers nothing); the two
 *    libraries alternate trial by trial (A B, B A, …). Measured in the page: the time from the
 *    page's first script (before the bundle's script tag) to the server's greeting, the transport
 *    that carried it, and the transport 3 s after the page's first script;
 *  - optionally (`--second-visit`) the same page loaded again in the same context (what
 *    cometsocket remembered is used; the bundle is revalidated from cache);
 *  - on the reset link: MESSAGES numbered messages each way at a steady pace (one every 16 ms),
 *    counted at the receiving end of each direction (lost, duplicated, reordered), in a fresh
 *    context, for each library.
 *
 * Printed: one table (medians, min–max, transport counts), the ratio cometsocket / Socket.IO of
 * the first-message time per network (median of the per-trial ratios, trial k of one library
 * against trial k of the other), flagged where it is above 1.2, and the exchange's accounting.
 * Progress goes to stderr.
 *
 * Options: --quick (3 trials, 250 messages), --trials=N, --messages=N,
 * --networks=direct,nginx,…, --second-visit, --verbose (every trial's timeline and events).
 *
 * Everything listens on 127.0.0.1 only; every wait is bounded; every browser context, server,
 * proxy and daemon is closed (the nginx daemon is stopped by its PID), also on failure, Ctrl-C and
 * the run's own time limit.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { ensureBuilt, launchBrowser, ROOT, sleep, type TestBrowser } from '../../test/browser/helpers';
import { median, within } from '../util';
import { BEST, haveNginx, NETWORKS, openNetwork, RESET_EVERY, type NetName, type Network } from './networks';
import { benchPage, FIRST_LIMIT, LATER_MS, LIBS, READ, READ_EXCHANGE, type Lib, type PageExchange, type PageState } from './pages';
import { startLibServer, type LibServer } from './servers';

// ---- options ---------------------------------------------------------------------------------------

const argv = process.argv.slice(2);
const flag = (name: string): boolean => argv.includes('--' + name);
function opt(name: string): string | undefined {
  const a = argv.find((x) => x.startsWith('--' + name + '='));
  return a === undefined ? undefined : a.slice(name.length + 3);
}
function intOpt(name: string, dflt: number): number {
  const v = opt(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error('--' + name + ' must be a positive integer, got ' + v);
  return n;
}

const QUICK = flag('quick');
const TRIALS = intOpt('trials', QUICK ? 3 : 5);
const MESSAGES = intOpt('messages', QUICK ? 250 : 500);
/** One message every PERIOD ms each way: 500 messages take 8 s. */
const PERIOD = 16;
/** After both ends sent their last message, the longest wait for the rest, ms (the link keeps resetting). */
const SETTLE = 4000;
const SECOND_VISIT = flag('second-visit');
const VERBOSE = flag('verbose');
const SELECTED: NetName[] = (() => {
  const v = opt('networks');
  if (v === undefined) return NETWORKS.slice();
  const names = v.split(',').filter(Boolean);
  for (const n of names) if (!(NETWORKS as readonly string[]).includes(n)) throw new Error('unknown network ' + n + ' (known: ' + NETWORKS.join(', ') + ')');
  return names as NetName[];
})();
/** The whole run is abandoned (everything closed) after this long, ms. */
const RUN_LIMIT = QUICK ? 240000 : 480000;
/** The bar: cometsocket's first message within this factor of Socket.IO's. */
const BAR = 1.2;

const progress = (line: string): void => void process.stderr.write('[bench:browser] ' + line + '\n');

// ---- everything open, closed at the end whatever happens -------------------------------------------

const open = new Set<{ what: string; close: () => Promise<void> }>();
/** Set on Ctrl-C or the run limit: no new trial starts. */
let aborting = false;

/** Keep `close` until `release()` (which runs it) or the end of the run. */
function track(what: string, close: () => Promise<void>): { release(): Promise<void> } {
  const h = { what, close };
  open.add(h);
  return {
    async release() {
      if (!open.delete(h)) return;
      await within(15000, 'closing ' + what, close()).catch((e: unknown) => progress('could not close ' + what + ': ' + (e as Error).message));
    },
  };
}

async function closeEverything(): Promise<void> {
  // A spare context still being made (see prepareSpare) is tracked once made: wait for it (bounded).
  if (spare) await within(15000, 'the spare context', spare).catch(() => undefined);
  spare = null;
  for (const h of Array.from(open).reverse()) {
    open.delete(h);
    await within(15000, 'closing ' + h.what, h.close()).catch((e: unknown) => progress('could not close ' + h.what + ': ' + (e as Error).message));
  }
}

// ---- one trial -------------------------------------------------------------------------------------

interface Trial {
  lib: Lib;
  net: NetName;
  /** A first message arrived within FIRST_LIMIT. */
  ok: boolean;
  /** ms from the page's first script to the first message. */
  first: number;
  /** ms from connect() / io() to the first message. */
  fromConnect: number;
  firstTransport: string;
  /** Transport LATER_MS after the page's first script. */
  later: string;
  state: PageState;
  /** Page loads that failed and were redone in a fresh context (the reset link may cut a page load). */
  reloads: number;
  second?: { ok: boolean; first: number; fromConnect: number; firstTransport: string };
}

interface Env {
  lib: Lib;
  srv: LibServer;
  net: Network;
}

let pageSeq = 0;

/** A fresh browser context with one blank tab, closed at release() or at the end of the run. */
interface Blank {
  ctx: BrowserContext;
  page: Page;
  handle: { release(): Promise<void> };
}

async function newBlank(b: Browser): Promise<Blank> {
  const ctx = await within(15000, 'a new browser context', b.newContext());
  const handle = track('browser context', () => ctx.close());
  try {
    const page = await within(15000, 'a new page', ctx.newPage());
    return { ctx, page, handle };
  } catch (e) {
    await handle.release();
    throw e;
  }
}

/**
 * The next trial's context, made while the current trial only waits for its 3 s sample (creating a
 * context is work for the browser: it is kept out of the timed part of every trial).
 */
let spare: Promise<Blank> | null = null;

function prepareSpare(b: Browser): void {
  if (spare) return;
  spare = newBlank(b);
  spare.catch(() => undefined);
}

/** Close the spare context, if one was made and not used. */
async function dropSpare(): Promise<void> {
  const s = spare;
  spare = null;
  if (s) await s.then((x) => x.handle.release()).catch(() => undefined);
}

async function takeBlank(b: Browser): Promise<Blank> {
  const s = spare;
  spare = null;
  if (s) {
    try {
      return await s;
    } catch {
      /* make another */
    }
  }
  return newBlank(b);
}

/**
 * A fresh context with the page at `path` loaded (through the network): its bundle ran. A page load
 * the network cut (an error, or the bundle missing) is redone in a new context, twice at most.
 */
async function loadFresh(b: Browser, e: Env, path: string): Promise<Blank & { reloads: number }> {
  for (let attempt = 0; ; attempt++) {
    const blank = await takeBlank(b);
    try {
      await blank.page.goto(e.net.origin + path, { waitUntil: 'domcontentloaded', timeout: 10000 });
      const loaded = (await within(5000, 'reading the page', blank.page.evaluate("typeof T === 'object' && T.errors.indexOf('bundle not loaded') < 0"))) as boolean;
      if (loaded || attempt >= 2) return { ...blank, reloads: attempt };
      progress(e.net.name + ' ' + e.lib + ': the bundle did not load; page loaded again in a fresh context');
    } catch (err) {
      if (attempt >= 2) {
        await blank.handle.release();
        throw err;
      }
      progress(e.net.name + ' ' + e.lib + ': page load failed (' + (err as Error).message.split('\n')[0] + '); again in a fresh context');
    }
    await blank.handle.release();
  }
}

async function waitFirstAndRead(page: Page): Promise<PageState> {
  await within(FIRST_LIMIT + 5000, 'the first message', page.evaluate('T.whenFirst'));
  return (await within(5000, 'reading the page', page.evaluate(READ))) as PageState;
}

async function runTrial(b: Browser, e: Env): Promise<Trial> {
  const path = '/bench-' + ++pageSeq + '.html';
  e.srv.page(path, benchPage({ lib: e.lib }));
  const { page, handle, reloads } = await loadFresh(b, e, path);
  try {
    await within(FIRST_LIMIT + 5000, 'the first message', page.evaluate('T.whenFirst'));
    if (!SECOND_VISIT) prepareSpare(b);
    await within(LATER_MS + 5000, 'the ' + LATER_MS + ' ms sample', page.evaluate('T.whenLater'));
    const s = (await within(5000, 'reading the page', page.evaluate(READ))) as PageState;
    const ok = s.first >= 0;
    const t: Trial = {
      lib: e.lib,
      net: e.net.name,
      ok,
      first: s.first,
      fromConnect: ok ? Math.round((s.first - s.tc) * 10) / 10 : -1,
      firstTransport: ok ? s.firstTransport || '?' : 'none',
      later: s.later || 'none',
      state: s,
      reloads,
    };
    if (SECOND_VISIT) {
      // The same page again in the same context: cometsocket starts with what it remembered.
      try {
        await page.goto(e.net.origin + path, { waitUntil: 'domcontentloaded', timeout: 10000 });
        const s2 = await waitFirstAndRead(page);
        t.second = { ok: s2.first >= 0, first: s2.first, fromConnect: s2.first >= 0 ? Math.round((s2.first - s2.tc) * 10) / 10 : -1, firstTransport: s2.first >= 0 ? s2.firstTransport || '?' : 'none' };
      } catch (err) {
        progress(e.net.name + ' ' + e.lib + ': second visit failed: ' + (err as Error).message.split('\n')[0]);
        t.second = { ok: false, first: -1, fromConnect: -1, firstTransport: 'none' };
      }
      prepareSpare(b);
    }
    return t;
  } finally {
    await handle.release();
  }
}

// ---- the reset link's exchange ---------------------------------------------------------------------

interface Count {
  /** Messages handed to the library (refused ones excluded). */
  sent: number;
  /** Distinct messages delivered. */
  delivered: number;
  lost: number;
  duplicated: number;
  /** Deliveries of a message numbered below one delivered before it. */
  reordered: number;
  /** send() refused at once (nothing kept, the sender knows). */
  refused: number;
}

/** Account for messages 0 … sent-1 (minus `refused`) against `received`, in arrival order. */
function account(sent: number, refused: readonly number[], received: readonly number[]): Count {
  const no = new Set(refused);
  const seen = new Set<number>();
  let duplicated = 0;
  let reordered = 0;
  let max = -1;
  for (const n of received) {
    if (seen.has(n)) {
      duplicated++;
      continue;
    }
    seen.add(n);
    if (n < max) reordered++;
    else max = n;
  }
  let delivered = 0;
  for (let i = 0; i < sent; i++) if (!no.has(i) && seen.has(i)) delivered++;
  const accepted = sent - no.size;
  return { sent: accepted, delivered, lost: accepted - delivered, duplicated, reordered, refused: no.size };
}

/** The messages 0 … sent-1 (minus `refused`) not in `received`, as ranges: ['s0', 's77–s112']. */
function missing(prefix: string, sent: number, refused: readonly number[], received: readonly number[]): string[] {
  const got = new Set(received);
  const no = new Set(refused);
  const out: string[] = [];
  let from = -1;
  for (let i = 0; i <= sent; i++) {
    const gone = i < sent && !no.has(i) && !got.has(i);
    if (gone && from < 0) from = i;
    if (!gone && from >= 0) {
      out.push(prefix + from + (i - 1 > from ? '–' + prefix + (i - 1) : ''));
      from = -1;
    }
  }
  return out;
}

interface ExchangeResult {
  lib: Lib;
  ok: boolean;
  note: string;
  /** Page → server, counted at the server. */
  up: Count;
  /** Server → page, counted in the page. */
  down: Count;
  /** ms from the first message to the last delivery being in (or to giving up). */
  ms: number;
  resets: number;
  ticks: number;
  /** Connections the server saw (cometsocket: sessions; Socket.IO: sockets). */
  connections: number;
  /** cometsocket: of those, first-visit race losers the client closed at once. */
  raceLosers: number;
  /** Server → page messages emitted while no connection was up (Socket.IO drops them silently). */
  whileDown: number;
  /** The server's connection log (diagnostics). */
  serverLog: string[];
  /** 'c12' / 's40': messages never delivered (diagnostics). */
  missing: string[];
  reconnects: number;
  handedBack: number;
  state: PageState | null;
}

async function runExchange(b: Browser, lib: Lib): Promise<ExchangeResult> {
  const srv = await startLibServer(lib);
  const srvHandle = track(lib + ' server', () => srv.close());
  try {
    const net = await openNetwork('reset', srv.origin);
    const netHandle = track('reset link', () => net.close());
    try {
      srv.pageOrigin = net.origin;
      srv.arm(MESSAGES, PERIOD);
      const e: Env = { lib, srv, net };
      const path = '/exchange-' + ++pageSeq + '.html';
      srv.page(path, benchPage({ lib, exchange: { n: MESSAGES, period: PERIOD } }));
      const { page, handle } = await loadFresh(b, e, path);
      try {
        const s0 = await waitFirstAndRead(page);
        if (s0.first < 0) throw new Error('no first message within ' + FIRST_LIMIT + ' ms; events: ' + s0.events.join(', '));
        const started = Date.now();
        const deadline = started + MESSAGES * PERIOD + SETTLE + 2000;
        let px: PageExchange = { rs: [], sent: 0, refused: [], pumpEnd: -1 };
        let complete = false;
        let lastEnd = 0;
        for (;;) {
          px = (await within(5000, 'reading the page', page.evaluate(READ_EXCHANGE))) as PageExchange;
          const x = srv.exchange;
          const down = account(x.sent, x.refused, px.rs);
          const up = account(px.sent, px.refused, x.received);
          const sentAll = x.sent >= MESSAGES && px.sent >= MESSAGES;
          complete = sentAll && down.delivered === down.sent && up.delivered === up.sent;
          if (sentAll && !lastEnd) lastEnd = Date.now();
          if (complete || Date.now() > deadline || (lastEnd && Date.now() - lastEnd > SETTLE)) break;
          await sleep(200);
        }
        const ms = Date.now() - started;
        // Late duplicates, if any, arrive within a few acknowledgement rounds.
        await sleep(500);
        px = (await within(5000, 'reading the page', page.evaluate(READ_EXCHANGE))) as PageExchange;
        const state = (await within(5000, 'reading the page', page.evaluate(READ))) as PageState;
        const x = srv.exchange;
        return {
          lib,
          ok: true,
          note: complete ? '' : 'gave up waiting ' + SETTLE + ' ms after the last send',
          up: account(px.sent, px.refused, x.received),
          down: account(x.sent, x.refused, px.rs),
          ms,
          resets: net.resets,
          ticks: net.ticks,
          connections: srv.connections,
          raceLosers: srv.raceLosers,
          whileDown: x.whileDown.length,
          serverLog: x.log,
          missing: missing('c', px.sent, px.refused, x.received).concat(missing('s', x.sent, x.refused, px.rs)),
          reconnects: state.reconnects,
          handedBack: state.handedBack,
          state,
        };
      } finally {
        await handle.release();
      }
    } finally {
      await netHandle.release();
    }
  } finally {
    await srvHandle.release();
  }
}

// ---- formatting ------------------------------------------------------------------------------------

const r0 = (x: number): string => String(Math.round(x));
const r2 = (x: number): string => x.toFixed(2);

function spread(xs: readonly number[], f: (x: number) => string = r0): string {
  if (!xs.length) return '—';
  return f(median(xs)) + ' (' + f(Math.min(...xs)) + '–' + f(Math.max(...xs)) + ')';
}

/** 'sse×4 long-polling×1' */
function tally(xs: readonly string[]): string {
  const m = new Map<string, number>();
  for (const x of xs) m.set(x, (m.get(x) || 0) + 1);
  return Array.from(m, ([k, v]) => k + '×' + v).join(' ');
}

function table(rows: string[][]): string {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] || '').length)));
  return rows.map((r) => r.map((c, i) => (c || '').padEnd(w[i])).join('  ').trimEnd()).join('\n');
}

// ---- the run ---------------------------------------------------------------------------------------

interface NetResult {
  net: NetName;
  trials: Record<Lib, Trial[]>;
  skipped?: string;
}

async function measureNetwork(b: Browser, net: NetName, trials: number, warmup = false): Promise<NetResult> {
  const envs = {} as Record<Lib, Env>;
  const handles: Array<{ release(): Promise<void> }> = [];
  try {
    for (const lib of LIBS) {
      const srv = await startLibServer(lib);
      handles.push(track(lib + ' server', () => srv.close()));
      const n = await openNetwork(net, srv.origin);
      handles.push(track(net + ' network (' + lib + ')', () => n.close()));
      srv.pageOrigin = n.origin;
      envs[lib] = { lib, srv, net: n };
    }
    const out: NetResult = { net, trials: { cometsocket: [], 'socket.io': [] } };
    for (let k = 0; k < trials; k++) {
      // Alternate who goes first: A B, B A, …
      const order = k % 2 === 0 ? LIBS : LIBS.slice().reverse();
      for (const lib of order) {
        if (aborting) throw new Error('aborted');
        let t: Trial;
        try {
          t = await runTrial(b, envs[lib]);
        } catch (err) {
          progress(net + ' ' + lib + ' trial ' + (k + 1) + ' failed: ' + (err as Error).message.split('\n')[0]);
          const empty: PageState = { tc: -1, first: -1, firstTransport: null, later: null, timeline: [], events: [], errors: [(err as Error).message.split('\n')[0]], greetings: 0, reconnects: 0, handedBack: 0 };
          t = { lib, net, ok: false, first: -1, fromConnect: -1, firstTransport: 'none', later: 'none', state: empty, reloads: 0 };
        }
        out.trials[lib].push(t);
        progress(
          (warmup ? 'warm-up ' : '') +
            net +
            ' ' +
            lib +
            ' #' +
            (k + 1) +
            ': ' +
            (t.ok ? r0(t.first) + ' ms on ' + t.firstTransport : 'no message') +
            ', at ' +
            LATER_MS / 1000 +
            ' s ' +
            t.later +
            (t.second ? '; second visit ' + (t.second.ok ? r0(t.second.first) + ' ms on ' + t.second.firstTransport : 'no message') : ''),
        );
        if (VERBOSE) progress('    timeline ' + t.state.timeline.join(', ') + ' | events ' + t.state.events.join(', ') + (t.state.errors.length ? ' | errors ' + t.state.errors.join(', ') : ''));
      }
    }
    return out;
  } finally {
    for (const h of handles.reverse()) await h.release();
  }
}

function printResults(results: NetResult[], exchanges: ExchangeResult[], meta: string[]): void {
  const out: string[] = [];
  out.push('');
  out.push('First visits (fresh browser context per trial), ' + TRIALS + ' trials per cell, the libraries alternating; times in ms from the page\'s first script (the bundle\'s load included),');
  out.push('median (min–max). ratio = cometsocket / Socket.IO first-message time, median of per-trial ratios (min–max); bar: ≤ ' + BAR + '×.');
  out.push('');
  const rows: string[][] = [['network', 'library', 'first message', 'from connect()', 'transport at 1st msg', 'at ' + LATER_MS / 1000 + ' s', 'best allowed', 'ratio (min–max)', 'bar']];
  const flagged: string[] = [];
  for (const r of results) {
    if (r.skipped) {
      rows.push([r.net, '(skipped: ' + r.skipped + ')', '', '', '', '', '', '', '']);
      continue;
    }
    const c = r.trials.cometsocket;
    const s = r.trials['socket.io'];
    const ratios: number[] = [];
    for (let k = 0; k < Math.min(c.length, s.length); k++) if (c[k].ok && s[k].ok && s[k].first > 0) ratios.push(c[k].first / s[k].first);
    const rm = ratios.length ? median(ratios) : NaN;
    const miss = !(rm <= BAR);
    if (miss) flagged.push(r.net);
    for (const lib of LIBS) {
      const ts = r.trials[lib];
      const good = ts.filter((t) => t.ok);
      const failed = ts.length - good.length;
      const reloads = ts.reduce((a, t) => a + t.reloads, 0);
      rows.push([
        lib === 'cometsocket' ? r.net : '',
        lib,
        spread(good.map((t) => t.first)) + (failed ? ' [' + failed + ' none]' : '') + (reloads ? ' [' + reloads + ' reloaded]' : ''),
        spread(good.map((t) => t.fromConnect)),
        tally(ts.map((t) => t.firstTransport)),
        tally(ts.map((t) => t.later)),
        lib === 'cometsocket' ? BEST[r.net] : '',
        lib === 'cometsocket' ? (ratios.length ? spread(ratios, r2) : 'n/a') : '',
        lib === 'cometsocket' ? (miss ? 'MISSES' : 'ok') : '',
      ]);
    }
  }
  out.push(table(rows));
  if (SECOND_VISIT) {
    out.push('');
    out.push('Second visits (the same page again in the same context: cometsocket starts from what it remembered), ms from the first script:');
    const rows2: string[][] = [['network', 'library', 'first message', 'from connect()', 'transport at 1st msg', 'ratio (min–max)']];
    for (const r of results) {
      if (r.skipped) continue;
      const ratios: number[] = [];
      const c = r.trials.cometsocket;
      const s = r.trials['socket.io'];
      for (let k = 0; k < Math.min(c.length, s.length); k++) {
        const a = c[k].second;
        const z = s[k].second;
        if (a && z && a.ok && z.ok && z.first > 0) ratios.push(a.first / z.first);
      }
      for (const lib of LIBS) {
        const sv = r.trials[lib].map((t) => t.second).filter((x): x is NonNullable<Trial['second']> => !!x);
        const good = sv.filter((x) => x.ok);
        rows2.push([
          lib === 'cometsocket' ? r.net : '',
          lib,
          spread(good.map((x) => x.first)) + (sv.length - good.length ? ' [' + (sv.length - good.length) + ' none]' : ''),
          spread(good.map((x) => x.fromConnect)),
          tally(sv.map((x) => x.firstTransport)),
          lib === 'cometsocket' ? (ratios.length ? spread(ratios, r2) : 'n/a') : '',
        ]);
      }
    }
    out.push(table(rows2));
  }
  out.push('');
  out.push(
    flagged.length
      ? 'Networks where cometsocket misses the ' + BAR + '× bar (median ratio above it): ' + flagged.join(', ')
      : 'cometsocket is within ' + BAR + '× of Socket.IO\'s first-message time on every network measured.',
  );
  if (exchanges.length) {
    out.push('');
    out.push(
      'Reset link (every connection reset every ' +
        RESET_EVERY / 1000 +
        ' s): ' +
        MESSAGES +
        ' numbered messages each way, one every ' +
        PERIOD +
        ' ms from the first message on, counted where they arrive (page → server at the server, server → page in the page):',
    );
    const rows3: string[][] = [
      ['library', 'page→server sent', 'lost', 'dup', 'reord', 'server→page sent', 'lost', '(sent while down)', 'dup', 'reord', 'reset ticks (conns)', 'server conns', 'reconnects', 'handed back', 'took ms', 'note'],
    ];
    for (const x of exchanges) {
      if (!x.ok) {
        rows3.push([x.lib, 'failed: ' + x.note]);
        continue;
      }
      rows3.push([
        x.lib,
        String(x.up.sent) + (x.up.refused ? ' (+' + x.up.refused + ' refused)' : ''),
        String(x.up.lost),
        String(x.up.duplicated),
        String(x.up.reordered),
        String(x.down.sent) + (x.down.refused ? ' (+' + x.down.refused + ' refused)' : ''),
        String(x.down.lost),
        '(' + x.whileDown + ')',
        String(x.down.duplicated),
        String(x.down.reordered),
        x.ticks + ' (' + x.resets + ')',
        x.connections + (x.raceLosers ? ' (' + x.raceLosers + ' race loser)' : ''),
        String(x.reconnects),
        x.lib === 'cometsocket' ? String(x.handedBack) : 'n/a',
        String(x.ms),
        x.note,
      ]);
    }
    out.push(table(rows3));
    const lossy = exchanges.filter((x) => x.ok && x.lib === 'cometsocket' && x.up.lost + x.up.duplicated + x.up.reordered + x.down.lost + x.down.duplicated + x.down.reordered > 0);
    for (const x of exchanges) if (x.ok && x.missing.length) out.push(x.lib + ' never delivered: ' + x.missing.join(', '));
    for (const x of lossy) out.push('cometsocket server log: ' + x.serverLog.join('; '));
    out.push(lossy.length ? 'cometsocket LOST, DUPLICATED OR REORDERED messages on the reset link (see above).' : 'cometsocket: nothing lost, duplicated or reordered on the reset link (same run as Socket.IO above).');
  }
  out.push('');
  out.push(...meta);
  process.stdout.write(out.join('\n') + '\n');
}

function pkgVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

async function main(): Promise<void> {
  const t0 = Date.now();
  progress('building (if stale) and starting Chromium…');
  await ensureBuilt();
  const tb: TestBrowser = await launchBrowser();
  track('Chromium', () => tb.close());
  const b = tb.context.browser();
  if (!b) throw new Error('launchBrowser() gave a context without a Browser: cannot make fresh contexts');
  const results: NetResult[] = [];
  // Warm-up, discarded: the first connections of a process run cold code on both ends.
  await measureNetwork(b, 'direct', 1, true);
  for (const net of SELECTED) {
    if (aborting) break;
    if (net === 'nginx' && !haveNginx()) {
      results.push({ net, trials: { cometsocket: [], 'socket.io': [] }, skipped: 'no /usr/sbin/nginx' });
      continue;
    }
    try {
      results.push(await measureNetwork(b, net, TRIALS));
    } catch (err) {
      progress(net + ': ' + (err as Error).message);
      results.push({ net, trials: { cometsocket: [], 'socket.io': [] }, skipped: (err as Error).message.split('\n')[0] });
    }
  }
  const exchanges: ExchangeResult[] = [];
  if (SELECTED.includes('reset')) {
    for (const lib of LIBS) {
      if (aborting) break;
      progress('reset link: ' + MESSAGES + ' messages each way with ' + lib + '…');
      try {
        const x = await runExchange(b, lib);
        exchanges.push(x);
        progress(
          'reset link ' + lib + ': page→server lost ' + x.up.lost + ' dup ' + x.up.duplicated + ' reord ' + x.up.reordered + '; server→page lost ' + x.down.lost + ' dup ' + x.down.duplicated + ' reord ' + x.down.reordered + ' (' + x.ticks + ' reset ticks)',
        );
        if (VERBOSE && x.state) progress('    timeline ' + x.state.timeline.join(', ') + ' | events ' + x.state.events.join(', ') + ' | server ' + x.serverLog.join(', '));
      } catch (err) {
        progress('reset link ' + lib + ' failed: ' + (err as Error).message.split('\n')[0]);
        const z: Count = { sent: 0, delivered: 0, lost: 0, duplicated: 0, reordered: 0, refused: 0 };
        exchanges.push({ lib, ok: false, note: (err as Error).message.split('\n')[0], up: z, down: z, ms: 0, resets: 0, ticks: 0, connections: 0, raceLosers: 0, whileDown: 0, serverLog: [], missing: [], reconnects: 0, handedBack: 0, state: null });
      }
    }
  }
  const version = b.version();
  await dropSpare();
  await closeEverything();
  printResults(results, exchanges, [
    'Chromium ' + version + ' (headless, /usr/bin/chromium), Node ' + process.version + ', socket.io ' + pkgVersion('socket.io') + ' / socket.io-client ' + pkgVersion('socket.io-client') + ' with their defaults; everything on 127.0.0.1 on this machine.',
    'Run: ' + ((Date.now() - t0) / 1000).toFixed(1) + ' s' + (QUICK ? ' (--quick)' : '') + '.',
  ]);
}

let finished = false;
const limit = setTimeout(() => {
  if (finished) return;
  progress('run limit of ' + RUN_LIMIT / 1000 + ' s reached: closing everything');
  aborting = true;
  void closeEverything().finally(() => process.exit(2));
}, RUN_LIMIT);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    progress(sig + ': closing everything');
    aborting = true;
    void closeEverything().finally(() => process.exit(130));
  });
}

main()
  .then(() => {
    finished = true;
    clearTimeout(limit);
  })
  .catch(async (err: unknown) => {
    finished = true;
    clearTimeout(limit);
    progress('failed: ' + ((err as Error).stack || String(err)));
    await closeEverything();
    process.exitCode = 1;
  });
