/**
 * A tab that sleeps for over a minute, in a real Chromium, on the built bundle.
 *
 * Headless Chromium keeps every page visible and ignores CDP's lifecycle freezing, so the frozen
 * tab is made the way a frozen tab behaves for the page: its JavaScript is paused (the CDP
 * debugger) for 62 real seconds — no timer fires, no event is handled, the network keeps going
 * underneath — and it then "becomes visible" (visibilitychange). Within a second of that, the
 * socket must have resumed its session (when the server still holds it) or reported it lost
 * (when the server expired it), with nothing lost either way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CDPSession } from 'playwright-core';
import { ensureBuilt, launchBrowser, openPage, sleep, startTestServer, waitFor, type TestBrowser, type TestPage, type TestServer } from './helpers';

const SLEEP_MS = 62_000;

const PAGE = `<!doctype html><meta charset="utf-8"><script src="/rt/cometsocket.min.js"></script><script>
  window.ev = [];
  window.got = [];
  var s = window.sock = CometSocket.connect('/rt', { transports: [CometSocket.webSocket, CometSocket.longPolling], upgrade: false });
  ['open', 'resume'].forEach(function (n) { s.on(n, function () { ev.push([n, Date.now()]); }); });
  s.on('session-lost', function (l) { ev.push(['session-lost', Date.now(), l.unacked]); });
  s.on('reconnecting', function (r) { ev.push(['reconnecting', Date.now(), r.code]); });
  s.on('message', function (m) { got.push(m); });
  window.setVisible = function (v) {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: function () { return v ? 'visible' : 'hidden'; } });
    Object.defineProperty(document, 'hidden', { configurable: true, get: function () { return !v; } });
    document.dispatchEvent(new Event('visibilitychange'));
    return Date.now();
  };
</script>`;

interface Case {
  srv: TestServer;
  tab: TestPage;
  cdp: CDPSession;
  serverGot: string[];
}

let browser: TestBrowser | null = null;
const cases: Case[] = [];

beforeAll(async () => {
  await ensureBuilt();
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  for (const c of cases) await c.srv.close().catch(() => {});
  if (browser) await browser.close();
});

async function start(sessionTimeout: number): Promise<Case> {
  // A short heartbeat, so the server notices the silent tab well within the sleep.
  const srv = await startTestServer({ pingInterval: 4000, pingTimeout: 4000, pollTimeout: 6000, sessionTimeout });
  const serverGot: string[] = [];
  srv.rt.on('connection', (conn) => {
    conn.on('message', (d) => serverGot.push(String(d)));
    conn.send('hello');
    // Sent while the tab sleeps: must arrive once the tab is back (if the session lives).
    setTimeout(() => conn.state === 'open' && conn.send('while-asleep'), 15_000).unref();
  });
  const tab = await openPage(browser!, srv.page('/sleep.html', PAGE));
  await waitFor(tab.page, 'window.got.length === 1', 'hello', 10_000, 'JSON.stringify(window.ev)');
  await tab.page.evaluate("window.sock.send('before-sleep')");
  const cdp = await browser!.context.newCDPSession(tab.page);
  await cdp.send('Debugger.enable');
  const c = { srv, tab, cdp, serverGot };
  cases.push(c);
  return c;
}

describe('a tab asleep for 62 s (JavaScript paused), then visible again', () => {
  it('resumes its session within a second when the server still holds it, or reports it lost within a second when the server expired it; nothing lost', async () => {
    // Both tabs sleep at the same time, so the file costs one sleep.
    const kept = await start(180_000);
    const expired = await start(20_000);
    await Promise.all([kept, expired].map((c) => c.cdp.send('Debugger.pause')));
    // The pause takes effect at the next JavaScript the page runs; make it run.
    void kept.tab.page.evaluate('1').catch(() => {});
    void expired.tab.page.evaluate('1').catch(() => {});
    await sleep(SLEEP_MS);
    await Promise.all([kept, expired].map((c) => c.cdp.send('Debugger.resume')));

    const results = [];
    for (const c of [kept, expired]) {
      const visibleAt = (await c.tab.page.evaluate('window.setVisible(true)')) as number;
      await waitFor(c.tab.page, "window.ev.some(function (e) { return e[0] === 'resume' || e[0] === 'session-lost'; })", 'resume or session-lost', 10_000, 'JSON.stringify(window.ev)');
      const ev = (await c.tab.page.evaluate('window.ev')) as Array<[string, number, unknown]>;
      const first = ev.find((e) => e[0] === 'resume' || e[0] === 'session-lost')!;
      results.push({ visibleAt, first, ev });
    }
    const [k, x] = results;
    console.log('kept session: ' + k.first[0] + ' ' + (k.first[1] - k.visibleAt) + ' ms after visible; expired session: ' + x.first[0] + ' ' + (x.first[1] - x.visibleAt) + ' ms after visible');

    // The server kept it: resumed, within a second of becoming visible, and nothing lost.
    expect(k.first[0]).toBe('resume');
    expect(k.first[1] - k.visibleAt).toBeLessThan(1000);
    await waitFor(kept.tab.page, 'window.got.length === 2', "the message sent while asleep", 10_000, 'JSON.stringify(window.got)');
    expect(await kept.tab.page.evaluate('window.got')).toEqual(['hello', 'while-asleep']);
    expect(kept.serverGot).toEqual(['before-sleep']);

    // The server expired it: reported lost within a second of becoming visible, then a new session.
    expect(x.first[0]).toBe('session-lost');
    expect(x.first[1] - x.visibleAt).toBeLessThan(1000);
    // 'before-sleep' was acknowledged before the sleep, so nothing is handed back.
    expect(x.first[2]).toEqual([]);
    expect(expired.serverGot).toEqual(['before-sleep']);
    await waitFor(expired.tab.page, "window.ev.filter(function (e) { return e[0] === 'open'; }).length === 2", 'a new session', 10_000, 'JSON.stringify(window.ev)');

    for (const c of [kept, expired]) expect(c.tab.errors).toEqual([]);
  }, 150_000);
});
