/**
 * Every transport in a real browser (headless Chromium), each forced alone from the script-tag
 * build: 1000 messages each way exactly once and in order, its TCP connections cut mid-stream,
 * binary and non-ASCII payloads, close(), and the page's load event.
 */
import { describe, expect } from 'vitest';
import { browserSuite, itUnless } from './harness';
import { testPage, TRANSPORTS, waitFor, waitUntil, type TransportName } from './helpers';

// A short heartbeat: Chromium neither fires an iframe's load event nor finishes its document when
// the forever-frame's connection is reset, so a cut iframe stream is noticed by the heartbeat
// (interval + timeout) alone; with the defaults that takes up to 45 s.
const s = browserSuite({ pingInterval: 2000, pingTimeout: 1500, pollTimeout: 3000 });

/** The bug a transport's tests run into, if any (see BUGS in harness.ts); none is open now. */
function bugOf(_name: TransportName, _test: 'exchange' | 'cut' | 'load'): string | undefined {
  return undefined;
}

/** `it`, or `it.fails` for a test that runs into a known bug (its name then says which). */
function test(name: TransportName, kind: 'exchange' | 'cut' | 'load') {
  const bug = bugOf(name, kind);
  return { run: itUnless(bug), note: bug ? ' [known bug: ' + bug + ']' : '', bug };
}

const ALL = Object.keys(TRANSPORTS) as TransportName[];

describe('every transport alone', () => {
  for (const name of ALL) {
    const { run, note, bug } = test(name, 'exchange');
    run(`(c) transports: [CometSocket.${TRANSPORTS[name]}]: 1000 each way, exactly once, in order${note}`, async () => {
      await s.exchange('/c-' + name + '.html', { transports: name, sendWhen: 'open' }, name, bug ? 6000 : 15000);
      if (name !== 'websocket') expect(s.srv.control.upgrades, 'WebSocket upgrades asked for').toBe(0);
    });
  }
});

describe('HTTP transports cut mid-stream', () => {
  // short-polling is left out: at one poll a second, 2000 paced messages take too long.
  for (const name of ['sse', 'xhr-streaming', 'iframe-streaming', 'long-polling'] as const) {
    const { run, note, bug } = test(name, 'cut');
    run(`${name}: its TCP connections destroyed by the server mid-stream, nothing lost, duplicated or reordered${note}`, async () => {
      let cut = -1;
      const { r } = await s.streamWithCut(
        '/cut-' + name + '.html',
        () => {
          cut = s.srv.killHttp(name);
        },
        { transports: name },
        bug ? 6000 : 15000,
      );
      expect(cut, name + ' connections cut').toBeGreaterThan(0);
      expect(r.transport).toBe(name);
      // Chromium may retry a GET whose reused connection dropped, so no 'resume' is asserted.
    }, 40000);
  }
});

describe('payloads, close() and the load event', () => {
  for (const name of ALL) {
    const { run, note } = test(name, 'exchange');
    run(`binary and non-ASCII text round-trip over ${name}, then close() ends the session with 1000${note}`, async () => {
      const closed: string[] = [];
      s.srv.rt.on('connection', (conn) => {
        conn.on('message', (d) => conn.send(d));
        conn.on('close', (code, reason) => closed.push(code + ' ' + reason));
      });
      const t = await s.open('/binary-' + name + '.html', testPage({ transports: name, count: 0, sendWhen: 'manual' }));
      await waitFor(t.page, 'window.T.sock.state === "open" || window.T.fatal()', 'the socket to open', 10000);
      expect(await t.page.evaluate('window.T.fatal()'), 'unexpected socket event').toBeNull();
      const texts = ['h\u00e9llo \u4e16\u754c \u{1F680}', '', 'line1\nline2 "quoted" \\ back \u2028 </script><!--', 'x'.repeat(100000)];
      const all = Array.from({ length: 256 }, (_, i) => i);
      // Sent in this order: texts[0], all 256 byte values, texts[1], a typed array view, texts[2], texts[3].
      const echoed = await t.page.evaluate(`new Promise(function (resolve) {
        var texts = ${JSON.stringify(texts)};
        var bytes = new Uint8Array(256);
        for (var i = 0; i < 256; i++) bytes[i] = i;
        var view = new Uint8Array([9, 0, 255, 10, 13, 9]).subarray(1, 5);
        var sent = [texts[0], bytes.buffer, texts[1], view, texts[2], texts[3]];
        var got = [];
        window.T.sock.on('message', function (d) {
          got.push(typeof d === 'string' ? { s: d } : { b: Array.prototype.slice.call(new Uint8Array(d)) });
          if (got.length === sent.length) resolve(got);
        });
        for (var j = 0; j < sent.length; j++) window.T.sock.send(sent[j]);
      })`);
      expect(echoed).toEqual([{ s: texts[0] }, { b: all }, { s: texts[1] }, { b: [0, 255, 10, 13] }, { s: texts[2] }, { s: texts[3] }]);
      expect(await t.page.evaluate('window.T.sock.transport')).toBe(name);
      await t.page.evaluate('window.T.sock.close()');
      await waitUntil(() => closed.length > 0, 5000, 'the server to see the close');
      expect(closed).toEqual(['1000 ']);
      expect(await t.page.evaluate('window.T.sock.state')).toBe('closed');
      expect(s.srv.errors).toEqual([]);
      expect(t.errors).toEqual([]);
    });
  }

  for (const name of ALL) {
    const bug = bugOf(name, 'load') || bugOf(name, 'exchange');
    itUnless(bug)(`the page's load event fires while connected over ${name}${bug ? ' [known bug: ' + bug + ']' : ''}`, async () => {
      const t = await s.open('/load-' + name + '.html', testPage({ transports: name, count: 0, sendWhen: 'manual' }));
      await waitFor(t.page, 'window.T.sock.state === "open" || window.T.fatal()', 'the socket to open', bug ? 5000 : 10000);
      expect(await t.page.evaluate('window.T.sock.state')).toBe('open');
      await waitFor(t.page, 'document.readyState === "complete"', 'the load event', 5000, 'document.readyState');
      expect(t.errors).toEqual([]);
    });
  }
});
