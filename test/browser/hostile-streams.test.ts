/**
 * Hostile and non-conforming servers against the real client (script-tag build) in headless
 * Chromium: a raw node:http server on 127.0.0.1 that speaks the wire protocol (PROTOCOL.md) for
 * the HTTP streaming and polling transports, but misbehaves. Each cell is what the client must
 * withstand; five of them failed before the client fixes committed with this file (empty batches
 * as signs of life, empty long polls in a tight loop, the iframe origin check, a mislabelled
 * charset, a stream that is never recycled).
 */
import { readFileSync } from 'node:fs';
import * as zlib from 'node:zlib';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket as NetSocket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEV_BUNDLE, ensureBuilt, launchBrowser, openPage, sleep, waitFor, type TestBrowser, type TestPage } from './helpers';

type Tr = 'sse' | 'xhr-streaming' | 'iframe-streaming' | 'long-polling';
const GLOBAL: Record<Tr, string> = { sse: 'sse', 'xhr-streaming': 'xhrStreaming', 'iframe-streaming': 'iframeStreaming', 'long-polling': 'longPolling' };
const PAD = ' '.repeat(2048);

/** The open frame of session S (hb / hto in ms). */
const openFrame = (hb = 60000, hto = 60000, ack = 0, sid = 'S'): string =>
  JSON.stringify({ t: 'o', v: 1, sid, tok: 'K', hb, hto, ack, ...(ack ? { r: 1 } : {}), lim: { payload: 1 << 20, batch: 2 << 20, buffer: 4096 } });
const data = (s: number, d: string): string => JSON.stringify({ t: 'd', s, d });
const PING = '{"t":"p"}';

/** How each streaming transport frames its response (PROTOCOL.md, "Transports"). */
const fmt = {
  'xhr-streaming': { type: 'text/plain; charset=UTF-8', prelude: () => PAD + '\n', batch: (b: string) => b + '\n', end: '' },
  sse: { type: 'text/event-stream; charset=UTF-8', prelude: () => ':' + PAD + '\n\n', batch: (b: string) => 'data: ' + b.split('\n').join('\ndata: ') + '\n\n', end: 'event: end\ndata: \n\n' },
  'iframe-streaming': {
    type: 'text/html; charset=UTF-8',
    prelude: (q: URLSearchParams) =>
      '<!doctype html><html><head><meta charset="utf-8"></head><body><script>var o=' + JSON.stringify(q.get('po')) + ',i=' + JSON.stringify(q.get('i')) +
      ';function p(b){parent.postMessage({cometsocket:i,b:b},o)}</script>' + PAD + '\n',
    batch: (b: string) => '<script>p(' + JSON.stringify(b).replace(/</g, '\\u003c') + ')</script>\n',
    end: '<script>p(null)</script></body></html>',
  },
} as const;
type StreamTr = keyof typeof fmt;

interface Req { method: string; tr: string; q: URLSearchParams; at: number }
type Handler = (req: IncomingMessage, res: ServerResponse, q: URLSearchParams, tr: string, n: number) => void;

interface Hostile {
  origin: string;
  port: number;
  reqs: Req[];
  gets(tr?: string): Req[];
  posts: string[];
  handle: Handler;
  close(): Promise<void>;
}

const servers: Hostile[] = [];
const BUNDLE_JS = (): string => readFileSync(DEV_BUNDLE, 'utf8');

/** A raw HTTP server: the page at /p.html, the bundle at /cs.js, and `handle` for everything under /rt/. */
async function hostile(page: string, handle: Handler): Promise<Hostile> {
  const socks = new Set<NetSocket>();
  const h: Hostile = {
    origin: '',
    port: 0,
    reqs: [],
    posts: [],
    handle,
    gets: (tr) => h.reqs.filter((r) => r.method === 'GET' && (!tr || r.tr === tr)),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of socks) s.destroy();
        srv.close(() => resolve());
      }),
  };
  const bundle = BUNDLE_JS();
  const srv = createServer((req, res) => {
    const u = new URL(req.url || '/', 'http://x');
    if (u.pathname === '/cs.js') return void res.writeHead(200, { 'Content-Type': 'application/javascript' }).end(bundle);
    if (u.pathname === '/p.html') return void res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' }).end(page);
    const m = /^\/rt\/([\w-]+)/.exec(u.pathname);
    if (!m) return void res.writeHead(404).end();
    if (req.method === 'POST') {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        h.posts.push(body);
        h.reqs.push({ method: 'POST', tr: m[1], q: u.searchParams, at: Date.now() });
        res.writeHead(204, { 'Access-Control-Allow-Origin': '*' }).end();
      });
      return;
    }
    h.reqs.push({ method: req.method || '', tr: m[1], q: u.searchParams, at: Date.now() });
    h.handle(req, res, u.searchParams, m[1], h.gets(m[1]).length);
  });
  srv.on('connection', (s) => {
    socks.add(s);
    s.once('close', () => socks.delete(s));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  h.port = (srv.address() as AddressInfo).port;
  h.origin = 'http://127.0.0.1:' + h.port;
  servers.push(h);
  return h;
}

/** The test page: connect(url, { transports: [tr], … }) and record everything in window.T. */
function page(tr: Tr, url = "'/rt'", extra = ''): string {
  return `<!doctype html><html><head><meta charset="utf-8"><script src="/cs.js"></script></head><body><script>
var T = (window.T = { got: [], ev: [], xhr: 0 });
var xo = XMLHttpRequest.prototype.open;
XMLHttpRequest.prototype.open = function (m) { T.xhr++; if (m === 'GET') T.lastX = this; return xo.apply(this, arguments); };
var sock = (T.sock = CometSocket.connect(${url}, { transports: [CometSocket.${GLOBAL[tr]}], upgrade: false, rememberFor: 0, backoffBase: 300, backoffCap: 2000${extra ? ', ' + extra : ''} }));
['open', 'resume', 'transport'].forEach(function (e) { sock.on(e, function () { T.ev.push(e); }); });
sock.on('reconnecting', function (i) { T.ev.push('reconnecting:' + i.code + ' ' + i.reason); });
sock.on('session-lost', function (i) { T.ev.push('session-lost:' + i.code); });
sock.on('close', function (i) { T.ev.push('close:' + i.code + ' ' + i.reason); });
sock.on('message', function (d) { T.got.push(d); });
</script></body></html>`;
}

let browser: TestBrowser;
const tabs: TestPage[] = [];
beforeAll(async () => {
  await ensureBuilt();
  browser = await launchBrowser();
}, 120000);
afterAll(async () => {
  if (browser) await browser.close();
}, 20000);
afterEach(async () => {
  for (const t of tabs.splice(0)) await t.page.close().catch(() => undefined);
  for (const s of servers.splice(0)) await s.close();
}, 20000);

async function visit(h: Hostile): Promise<TestPage> {
  const t = await openPage(browser, h.origin + '/p.html');
  tabs.push(t);
  return t;
}
const T = <X = unknown>(t: TestPage, expr: string): Promise<X> => t.page.evaluate(expr) as Promise<X>;

/** A stream handler: the handshake carries `first` batches, continuing GETs `later(n)`; `end` ends each response. */
function streamer(tr: StreamTr, first: string[], o: { endFirst?: boolean; later?: (q: URLSearchParams, n: number) => string[]; endLater?: boolean; headers?: Record<string, string> } = {}): Handler {
  return (_req, res, q, _name, n) => {
    const f = fmt[tr];
    res.writeHead(200, { 'Content-Type': f.type, 'Cache-Control': 'no-store', ...(o.headers || {}) });
    const handshake = q.has('v');
    const batches = handshake ? first : o.later ? o.later(q, n) : [];
    res.write(f.prelude(q) + batches.map(f.batch).join(''));
    if (handshake ? o.endFirst : o.endLater) res.end(f.end);
  };
}

const PAYLOADS = Array.from({ length: 120 }, (_, k) => k + ' h\u00e9llo \u4e16\u754c \u{1F680} "q" \\ </script><!-- \u2028'.slice(0, 8 + (k % 30)));

/** Write `text` as UTF-8 in pieces of 1..7 bytes (mid-line, mid-character), a few ms apart. */
function dribble(res: ServerResponse, text: string, done?: () => void): void {
  const buf = Buffer.from(text, 'utf8');
  let at = 0;
  const step = (): void => {
    if (res.destroyed) return;
    for (let k = 0; k < 40 && at < buf.length; k++) {
      const n = 1 + ((at * 7) % 7);
      res.write(buf.subarray(at, (at += n)));
    }
    if (at < buf.length) setTimeout(step, 1);
    else if (done) done();
  };
  step();
}

const STREAMS = ['xhr-streaming', 'sse', 'iframe-streaming'] as const;

describe('streams that the client must withstand', () => {
  for (const tr of STREAMS) {
    it(`${tr}: bytes dribbled mid-line and mid-UTF-8, BOM, CRLF, SSE comments/retry/id/typed events, a second open frame and replays: exactly once, in order`, async () => {
      const h = await hostile(page(tr), (_r, res, q) => {
        const f = fmt[tr];
        res.writeHead(200, { 'Content-Type': f.type });
        if (!q.has('v')) return;
        const d = (from: number, to: number): string[] => PAYLOADS.slice(from, to).map((x, k) => data(from + k + 1, x));
        const frames = [openFrame(), openFrame(60000, 60000, 0, 'OTHER')].concat(d(0, 60), d(0, 60), d(60, PAYLOADS.length));
        let text: string;
        if (tr === 'xhr-streaming') text = '\ufeff' + f.prelude(q).replace('\n', '\r\n') + frames.map((x) => x + '\r\n').join('');
        else if (tr === 'sse') text = '\ufeff:' + PAD + '\r\n\r\nretry: 5\r\n\r\n' + frames.map((x, k) => (k % 3 ? '' : ': c\r\nevent: other\r\ndata: junk\r\n\r\n') + 'id: ' + k + '\r\ndata: ' + x + '\r\ndata: ' + PING + '\r\n\r\n').join('');
        else text = f.prelude(q) + frames.map(f.batch).join('');
        dribble(res, text);
      });
      const t = await visit(h);
      await waitFor(t.page, `T.got.length >= ${PAYLOADS.length} || T.ev.length > 2`, 'every payload', 15000, 'JSON.stringify(T.ev)');
      await sleep(300);
      expect(await T(t, 'T.got')).toEqual(PAYLOADS);
      expect(await T(t, 'T.ev')).toEqual(['transport', 'open']);
      expect(t.errors).toEqual([]);
    });

    it(`${tr}: the open frame, then silence on a live connection: the heartbeat (hb + hto) ends it and resumes the session`, async () => {
      const h = await hostile(page(tr), streamer(tr, [openFrame(400, 400), data(1, 'a')]));
      const t = await visit(h);
      await waitFor(t.page, 'T.ev.indexOf("resume") >= 0', 'a resume after the heartbeat', 5000, 'JSON.stringify(T.ev)');
      const ev = await T<string[]>(t, 'T.ev');
      expect(ev.slice(0, 4)).toEqual(['transport', 'open', ev[2], 'resume']);
      expect(ev[2]).toMatch(/^reconnecting:4408 /);
      expect(h.gets()[1].q.toString()).toMatch(/^v=1&sid=S&tok=K&ack=1(&|$)/);
      expect(t.errors).toEqual([]);
    });

    it(`${tr}: gzip Content-Encoding flushed per batch still streams`, async () => {
      const h = await hostile(page(tr), (_r, res, q) => {
        const f = fmt[tr];
        res.writeHead(200, { 'Content-Type': f.type, 'Content-Encoding': 'gzip' });
        const z = zlib.createGzip();
        z.pipe(res);
        z.write(f.prelude(q) + [openFrame(), data(1, 'z\u00e9')].map(f.batch).join(''));
        z.flush();
      });
      const t = await visit(h);
      await waitFor(t.page, 'T.got.length > 0 || T.ev.length > 2', 'the message', 5000, 'JSON.stringify(T.ev)');
      expect(await T(t, 'T.got')).toEqual(['z\u00e9']);
    });

    for (const mode of ['captive portal (200 text/html)', '301 to itself', ...(tr === 'xhr-streaming' ? ['no prelude'] : [])]) {
      it(`${tr}: ${mode} never opens, reconnects with backoff (no tight loop), throws nothing in the page`, async () => {
        const h = await hostile(page(tr), (req, res) => {
          if (mode.startsWith('301')) return void res.writeHead(301, { Location: req.url }).end();
          if (mode.startsWith('captive')) return void res.writeHead(200, { 'Content-Type': 'text/html' }).end('<!doctype html>\n<title>portal</title>\n<p>Log in</p>\n');
          res.writeHead(200, { 'Content-Type': fmt[tr].type }).write(openFrame() + '\n' + data(1, 'a') + '\n');
        });
        const t = await visit(h);
        await sleep(3000);
        const ev = await T<string[]>(t, 'T.ev');
        expect(ev.every((e) => e.startsWith('reconnecting:')), ev.join(' | ')).toBe(true);
        expect(ev.length).toBeGreaterThan(0);
        expect(ev.length, 'attempts in 3 s').toBeLessThan(10);
        expect(t.errors).toEqual([]);
      });
    }
  }
});

describe('iframe-streaming: who may post into the page', () => {
  it('a nested frame of the stream document, a foreign-origin sibling frame and the page itself, all with the right stream id, are ignored', async () => {
    let id = '';
    const h = await hostile(page('iframe-streaming'), (req, res, q) => {
      const inject = (who: string): string => `{cometsocket:${JSON.stringify(q.get('id'))},b:${JSON.stringify(data(1, 'INJECTED-' + who))}}`;
      if (req.url!.startsWith('/rt/child')) return void res.writeHead(200, { 'Content-Type': 'text/html' }).end(`<script>top.postMessage(${inject('nested')},'*');parent.parent.postMessage(${inject('nested2')},'*')</script>`);
      const f = fmt['iframe-streaming'];
      res.writeHead(200, { 'Content-Type': f.type });
      id = q.get('i')!;
      res.write(f.prelude(q) + f.batch(openFrame()) + `<iframe src="/rt/child?id=${id}"></iframe>\n`);
      setTimeout(() => res.write(f.batch(data(1, 'ok'))), 1500);
    });
    const foreign = await hostile('', (_r, res, q) =>
      res.writeHead(200, { 'Content-Type': 'text/html' }).end(`<script>parent.postMessage({cometsocket:${JSON.stringify(q.get('id'))},b:${JSON.stringify(data(1, 'INJECTED-sibling'))}},'*')</script>`),
    );
    const t = await visit(h);
    await waitFor(t.page, 'T.sock.state === "open"', 'the socket to open', 5000);
    await t.page.evaluate(`(function () {
      var f = document.createElement('iframe');
      f.src = ${JSON.stringify(foreign.origin.replace('127.0.0.1', 'localhost') + '/rt/x?id=' + id)};
      document.body.appendChild(f);
      window.postMessage({ cometsocket: ${JSON.stringify(id)}, b: ${JSON.stringify(data(1, 'INJECTED-self'))} }, '*');
    })()`);
    await waitFor(t.page, 'T.got.length > 0', 'the real message', 5000);
    await sleep(300);
    expect(foreign.gets().length, 'the foreign frame loaded').toBe(1);
    expect(await T(t, 'T.got')).toEqual(['ok']);
    expect(await T(t, 'T.ev')).toEqual(['transport', 'open']);
  });

  it('20 recycles, each document ending with 300 batches and p(null) in one chunk: nothing lost to the load event, no reconnect', async () => {
    const h = await hostile(page('iframe-streaming'), (_r, res, q, _n, k) => {
      const f = fmt['iframe-streaming'];
      res.writeHead(200, { 'Content-Type': f.type });
      if (k > 20) return void res.write(f.prelude(q));
      const base = Number(q.get('ack') || 0);
      const frames = (q.has('sid') ? [] : [openFrame()]).concat(Array.from({ length: 300 }, (_, j) => data(base + j + 1, 'm' + (base + j + 1))));
      res.end(f.prelude(q) + frames.map(f.batch).join('') + f.end);
    });
    const t = await visit(h);
    await waitFor(t.page, 'T.got.length >= 6000 || T.ev.length > 2', '6000 messages', 15000, 'JSON.stringify(T.ev)');
    expect(await T(t, 'T.got.length')).toBe(6000);
    expect(await T(t, 'T.got[5999]')).toBe('m6000');
    expect(await T(t, 'T.ev')).toEqual(['transport', 'open']);
  });
});

describe('defects this audit found, fixed (each cell failed before its fix)', () => {
  it('[fixed] long-polling: polls answered at once with an empty 200 keep the heartbeat satisfied: no frame for hb + hto, yet no 4408, and ~400 polls a second forever', async () => {
    const h = await hostile(page('long-polling'), (_r, res, q) => void res.writeHead(200, { 'Content-Type': 'text/plain' }).end(q.has('v') ? openFrame(500, 500) : ''));
    const t = await visit(h);
    // PROTOCOL.md "Heartbeat": any *frame* is a sign of life; nothing for hb + hto (1 s) = dead.
    const ok = await waitFor(t.page, 'T.ev.some(function (e) { return /^reconnecting:4408/.test(e); })', 'a heartbeat timeout', 3000, 'JSON.stringify(T.ev)').then(() => true, () => false);
    expect(ok, `events ${JSON.stringify(await T(t, 'T.ev'))}; ${h.gets().length} polls in 3 s`).toBe(true);
  });

  it('[fixed] iframe-streaming: an endpoint URL not spelled like its serialized origin (http://127.1:PORT/rt, or an explicit :80/:443) drops every message and never opens', async () => {
    const h = await hostile('', streamer('iframe-streaming', [openFrame(), data(1, 'x')]));
    const p = await hostile(page('iframe-streaming', `'http://127.1:${h.port}/rt'`), () => undefined);
    const t = await openPage(browser, p.origin + '/p.html');
    tabs.push(t);
    await waitFor(t.page, 'T.got.length > 0', 'the message', 4000, 'JSON.stringify(T.ev)');
  });

  for (const tr of ['xhr-streaming', 'long-polling'] as const) {
    it(`[fixed] ${tr}: a Content-Type charset other than UTF-8 silently corrupts non-ASCII payloads (frames are UTF-8 by protocol)`, async () => {
      const text = 'h\u00e9llo \u4e16\u754c';
      const h = await hostile(page(tr), (_r, res, q) => {
        res.writeHead(200, { 'Content-Type': 'text/plain; charset=ISO-8859-1' });
        if (tr === 'long-polling') return void (q.has('v') ? res.end(openFrame() + '\n' + data(1, text)) : setTimeout(() => res.end(PING), 500));
        if (q.has('v')) res.write(PAD + '\n' + openFrame() + '\n' + data(1, text) + '\n');
      });
      const t = await visit(h);
      await waitFor(t.page, 'T.got.length > 0', 'the message', 5000, 'JSON.stringify(T.ev)');
      expect(await T(t, 'T.got[0]')).toBe(text);
    });
  }

  for (const tr of ['xhr-streaming', 'iframe-streaming'] as const) {
    it(`[fixed, hardening] ${tr}: a stream the server never recycles grows the page without bound (16 MB received, all of it kept)`, async () => {
      const N = 16000;
      const h = await hostile(page(tr), (_r, res, q) => {
        const f = fmt[tr];
        res.writeHead(200, { 'Content-Type': f.type });
        // Never recycled; a continuing GET (the client recycled it) goes on after its ack.
        res.write(f.prelude(q) + (q.has('v') ? f.batch(openFrame()) : ''));
        let s = q.has('v') ? 1 : Number(q.get('ack')) + 1;
        const pump = (): void => {
          while (s <= N) {
            let chunk = '';
            for (let k = 0; k < 64 && s <= N; k++) chunk += f.batch(data(s++, 'x'.repeat(1000)));
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
        };
        pump();
      });
      const t = await visit(h);
      await waitFor(t.page, 'T.got.length >= ' + N, N + ' messages', 20000, 'T.got.length');
      const held = await T<number>(t, tr === 'xhr-streaming' ? 'T.lastX.responseText.length' : 'document.querySelector("iframe").contentDocument.scripts.length * 1000');
      expect(await T(t, 'T.ev')).toEqual(['transport', 'open']);
      // The client recycles a stream past 4 MiB of text (transports/stream.ts).
      expect(held, 'bytes the page still holds for one stream').toBeLessThan((4 << 20) + 64 * 1000);
      expect(h.gets().length, 'streams: the client recycled at least once').toBeGreaterThan(1);
    }, 40000);
  }
});
