/**
 * Issue acceptance in a real browser (headless Chromium): a plain HTML page with
 * `<script src="/rt/cometsocket.min.js"></script>` and `CometSocket.connect('/rt')` talks to the
 * reference server
 *  (a) over WebSocket,
 *  (b) over an HTTP fallback when the page has no WebSocket (sse in Chromium, the first streaming
 *      transport it supports; long polling when the page lists [webSocket, longPolling]),
 *  (c) over WebSocket and long polling each forced alone (every other transport: transports.test.ts),
 *  (d) and survives its WebSocket being cut mid-stream,
 * every message arriving exactly once and in order in both directions, and
 *  (e) with no uncaught error in the page.
 */
import { describe, expect, it } from 'vitest';
import { browserSuite, STREAM } from './harness';
import { RT_PATH, sleep, testPage, waitFor } from './helpers';

const s = browserSuite();

describe('script tag in Chromium', () => {
  it('serves the ES5 bundle at /rt/cometsocket.min.js, defining window.CometSocket', async () => {
    const res = await fetch(s.srv.origin + RT_PATH + '/cometsocket.min.js');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/javascript/);
    const t = await s.open('/global.html', '<!doctype html><script src="/rt/cometsocket.min.js"></script><p>global</p>');
    const g = await t.page.evaluate(`(function () {
      var C = window.CometSocket;
      return C && { connect: typeof C.connect, Socket: typeof C.Socket, ws: C.webSocket && C.webSocket.name, lp: C.longPolling && C.longPolling.name };
    })()`);
    expect(g).toEqual({ connect: 'function', Socket: 'function', ws: 'websocket', lp: 'long-polling' });
    expect(t.errors).toEqual([]);
  });

  it('debug: the production bundle says where the messages are, once; the development bundle (/rt/cometsocket.js) writes each decision', async () => {
    const page = (src: string): string => `<!doctype html><script src="${src}"></script><script>
      window.L = [];
      window.S = CometSocket.connect('/rt', { debug: function (m) { window.L.push(m); } });
    </script>`;
    const prod = await s.open('/debug-prod.html', page('/rt/cometsocket.min.js'));
    await waitFor(prod.page, 'window.S.state === "open"', 'the production socket to open', 5000);
    const dev = await s.open('/debug-dev.html', page('/rt/cometsocket.js'));
    await waitFor(dev.page, 'window.S.state === "open"', 'the development socket to open', 5000);
    const prodLog = (await prod.page.evaluate('window.L')) as string[];
    const devLog = (await dev.page.evaluate('window.L')) as string[];
    expect(prodLog).toEqual(['debug messages: load the development build, cometsocket.js']);
    expect(devLog.some((m) => /^[a-z-]+ carries session /.test(m)), 'development log: ' + devLog.join(' | ')).toBe(true);
    expect(devLog.some((m) => /development build/.test(m))).toBe(false);
    const [min, full] = await Promise.all(['/cometsocket.min.js', '/cometsocket.js'].map((f) => fetch(s.srv.origin + RT_PATH + f).then((r) => r.text())));
    expect(min.length, 'the production bundle is the smaller').toBeLessThan(full.length / 2);
    expect(prod.errors.concat(dev.errors)).toEqual([]);
    await prod.page.evaluate('window.S.close()');
    await dev.page.evaluate('window.S.close()');
  });

  it('(a) connect("/rt") uses WebSocket: 1000 messages each way, exactly once, in order', async () => {
    await s.exchange('/a.html', { transports: 'default', sendWhen: 'now' }, 'websocket');
  });

  it('(b) with window.WebSocket deleted it falls back over HTTP (sse, the first streaming transport Chromium has): 1000 each way', async () => {
    const r = await s.exchange('/b.html', { transports: 'default', deleteGlobals: ['WebSocket'], sendWhen: 'now' }, 'sse');
    expect(r.hadWebSocket, 'window.WebSocket when the page script ran').toBe(false);
    expect(s.srv.control.upgrades, 'WebSocket upgrades asked for').toBe(0);
  });

  it('(b) with window.WebSocket deleted, [webSocket, longPolling] falls back to long polling: 1000 each way', async () => {
    const r = await s.exchange('/b-lp.html', { transports: ['websocket', 'long-polling'], deleteGlobals: ['WebSocket'], sendWhen: 'now' }, 'long-polling');
    expect(r.hadWebSocket).toBe(false);
    expect(s.srv.control.upgrades, 'WebSocket upgrades asked for').toBe(0);
  });

  it('(b) with WebSocket and EventSource deleted it falls back to xhr-streaming: 1000 each way', async () => {
    const r = await s.exchange('/b-xhr.html', { transports: 'default', deleteGlobals: ['WebSocket', 'EventSource'], sendWhen: 'now' }, 'xhr-streaming', 6000);
    expect(r.hadEventSource).toBe(false);
  });

  it('(c) transports: [CometSocket.webSocket] alone: 1000 each way, exactly once, in order', async () => {
    await s.exchange('/c-ws.html', { transports: 'websocket', sendWhen: 'open' }, 'websocket');
  });

  it('(c) transports: [CometSocket.longPolling] alone: 1000 each way, exactly once, in order', async () => {
    await s.exchange('/c-lp.html', { transports: 'long-polling', sendWhen: 'open' }, 'long-polling');
    expect(s.srv.control.upgrades, 'WebSocket upgrades asked for').toBe(0);
  });

  it('(d) the WebSocket cut mid-stream by the server: resumed, 2000 each way, nothing lost, duplicated or reordered', async () => {
    let cut = -1;
    // parallelFallback off: the cut must hit a WebSocket, so the session starts on one.
    const { at, r } = await s.streamWithCut('/d.html', () => {
      cut = s.srv.killWebSockets();
    }, { extra: 'parallelFallback: false' });
    expect(cut, 'WebSockets cut').toBe(1);
    expect(at.unacked, 'the server had unacknowledged output when cut').toBeGreaterThan(0);
    expect(r.events.filter((e) => e === 'resume'), 'resume events (' + r.events.join(', ') + ')').toEqual(['resume']);
    expect(r.events.filter((e) => e.startsWith('reconnecting:1006')).length).toBe(1);
  }, 40000);

  it('(d) the WebSocket black-holed mid-stream, then cut: frames lost in flight both ways are replayed', async () => {
    let cut = -1;
    const { at, r } = await s.streamWithCut('/d-blackhole.html', async () => {
      cut = s.srv.blackholeWebSockets();
      await sleep(150);
      s.srv.killWebSockets();
    }, { extra: 'parallelFallback: false' });
    expect(cut, 'WebSockets black-holed').toBe(1);
    // Frames really were lost in flight, in both directions, so the replay was exercised.
    expect(s.srv.dropped.bytes, 'server frames dropped in flight').toBeGreaterThan(0);
    expect(s.srv.dropped.inBytes, 'page frames dropped in flight').toBeGreaterThan(0);
    expect(at.pageSent, 'page messages sent into the black hole').toBeGreaterThan(at.received);
    expect(r.events.filter((e) => e === 'resume'), 'resume events (' + r.events.join(', ') + ')').toEqual(['resume']);
  }, 40000);

  it('(d) the WebSocket cut five times during the stream: every cut resumed, nothing lost, duplicated or reordered', async () => {
    let cuts = 0;
    const n = 2000;
    const a = s.app({
      count: n,
      ...STREAM,
      onReceive(received) {
        if (received % 300 === 0 && received <= 1500) cuts += s.srv.killWebSockets();
      },
    });
    const t = await s.open('/d-five.html', testPage({ transports: 'default', extra: 'parallelFallback: false', count: n, sendWhen: 'open', ...STREAM }));
    const r = await s.exchangeDone(t, a, n, 20000);
    s.expectExactlyOnceInOrder(r, a, n, t);
    s.expectOneSession(r, a);
    expect(cuts, 'WebSockets cut').toBe(5);
    expect(r.events.filter((e) => e === 'resume').length, 'resume events (' + r.events.join(', ') + ')').toBe(5);
  }, 40000);

  it('(d) upgrade mid-stream: WebSocket dropped at first, sse, then a slow upgrade to WebSocket while the stream flows', async () => {
    // The first upgrade is dropped (a proxy), so the session opens on the fallback (sse); the
    // upgrade probe is held 300 ms, during which the fallback keeps delivering and acknowledging,
    // so the probe's handshake carries an acknowledgement older than what the server released
    // (before 2e98843, Session.rewind then made take() read past its buffer: a TypeError thrown
    // from the upgrade handler, which this test caught).
    s.srv.control.refuseUpgrades = 1;
    s.srv.control.delayUpgrades = 300;
    const n = 2000;
    const a = s.app({ count: n, chunk: 5, lead: 200 });
    const t = await s.open('/upgrade.html', testPage({ transports: 'default', count: n, sendWhen: 'open', chunk: 5, lead: 200 }));
    await waitFor(t.page, 'window.T.sock.transport === "websocket" || window.T.fatal()', 'the upgrade to WebSocket', 10000);
    const during = (await t.page.evaluate('window.T.got.length')) as number;
    const r = await s.exchangeDone(t, a, n, 15000);
    s.expectExactlyOnceInOrder(r, a, n, t);
    s.expectOneSession(r, a);
    expect(during, 'messages received before the upgrade completed').toBeLessThan(2 * n);
    expect(r.transports, 'transports the page used (' + r.events.join(', ') + ')').toEqual(['sse', 'websocket']);
    expect(a.transports).toEqual(['sse', 'websocket']);
    expect(r.events.filter((e) => e.startsWith('reconnecting')), 'a seamless upgrade needs no reconnect').toEqual([]);
  }, 40000);

  it('(e) an uncaught error in the page is seen by the collector (so the checks above can fail)', async () => {
    const t = await s.open('/e.html', '<!doctype html><script src="/rt/cometsocket.min.js"></script><script>setTimeout(function () { CometSocket.nope(); }, 0)</script>');
    await waitFor(t.page, 'document.readyState === "complete"', 'the page to load', 5000);
    await sleep(50);
    expect(t.errors.join('\n')).toMatch(/nope/);
  });
});
