/**
 * A small HTTP reverse proxy on 127.0.0.1 for the browser suite, standing between Chromium and
 * the reference server the way the networks of issue 3 do. The page itself is served through it,
 * so the proxy is the page's origin (the server's `allowedOrigins` must name `proxy.origin`).
 *
 * Modes (switchable at any time, `proxy.mode = …`):
 *  - `pass`            everything passes through: requests and responses piped as they come
 *                      (keep-alive to the browser and to the server), WebSocket upgrades tunnelled;
 *  - `dropUpgrades`    a firewall that eats upgrades: the TCP connection of a WebSocket upgrade
 *                      request is closed at once, without an answer; everything else passes;
 *  - `swallowUpgrades` the same firewall, silent: the upgrade's TCP connection is accepted and
 *                      never answered (it hangs until the browser gives up or the proxy closes);
 *  - `buffer`          a buffering proxy: every response is held whole and sent (status, headers
 *                      and body, with a Content-Length) only when the server's response ends, so
 *                      streams never flush while polls, which end, pass. A proxy that buffers
 *                      does not speak WebSocket either (an upgrade is a response that never
 *                      ends), so in this mode upgrades are dropped as in `dropUpgrades`: the socket
 *                      must fall all the way back to polling.
 *
 * `latency` (0 by default) puts the proxy one trip away from the browser, as on a real network:
 * requests reach the server, and every part of their responses the browser, that many ms late,
 * and a new connection pays its TCP handshake's round trip first.
 *
 * Every request (upgrades included, whether passed or not) is recorded in `requests`, in arrival
 * order, with its time; the bodies of the responses `tee` picks are kept as the browser got them.
 */
import { createServer, request as httpRequest, Agent, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type Server } from 'node:http';
import { connect as netConnect, type AddressInfo, type Socket as NetSocket } from 'node:net';
import type { Duplex } from 'node:stream';

export type ProxyMode = 'pass' | 'dropUpgrades' | 'swallowUpgrades' | 'buffer';

export interface ProxiedRequest {
  /** performance.now() at the proxy when the request's head arrived. */
  at: number;
  method: string;
  /** Path and query, as asked. */
  url: string;
  /** A WebSocket upgrade request. */
  upgrade: boolean;
  /** What the proxy did with it: 'passed', 'dropped', 'swallowed' (upgrades), 'buffered' (responses held whole). */
  fate: 'passed' | 'dropped' | 'swallowed' | 'buffered';
  /** Status the browser got (0 until it got one, or never). */
  status: number;
}

export interface Proxy {
  /** http://127.0.0.1:PORT, the page's origin. */
  readonly origin: string;
  mode: ProxyMode;
  /**
   * One-way delay between the browser and the proxy, ms (0: none): an HTTP request reaches the
   * server one trip late (three on a new connection: its TCP handshake's round trip first), every
   * part of its response reaches the browser one trip late; a dropped upgrade's reset reaches the
   * browser four trips after it asked (handshake, request, reset). Tunnelled WebSockets: none.
   */
  latency: number;
  /** Where requests go, http://127.0.0.1:PORT; set before the first request. */
  target: string;
  readonly requests: ProxiedRequest[];
  /** Bodies of the responses `tee` picked, as the browser got them, one entry per request. */
  readonly teed: Array<{ url: string; chunks: Buffer[] }>;
  /** Keep the response bodies of the requests this picks (for checks of the raw bytes). */
  tee: ((method: string, url: string) => boolean) | null;
  /** Upgrade connections held open without an answer right now (`swallowUpgrades`). */
  readonly swallowed: number;
  /** Errors in the proxy itself (never an expected network cut). */
  readonly errors: unknown[];
  /** Forget the recorded requests and bodies. */
  reset(): void;
  /** Close every connection on both sides and stop listening. */
  close(): Promise<void>;
}

/** Hop-by-hop headers (RFC 9110 §7.6.1): never forwarded. */
const HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'];

function endToEnd(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const named = (h.connection || '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  for (const k of Object.keys(h)) if (HOP.indexOf(k) < 0 && named.indexOf(k) < 0 && h[k] !== undefined) out[k] = h[k];
  return out;
}

/** Start a proxy on 127.0.0.1 (port 0). `target` may be set later, before the first request. */
export async function startProxy(mode: ProxyMode, target = ''): Promise<Proxy> {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const requests: ProxiedRequest[] = [];
  const teed: Array<{ url: string; chunks: Buffer[] }> = [];
  const errors: unknown[] = [];
  const browserSockets = new Set<NetSocket>();
  const tunnels = new Set<Duplex>();
  const held = new Set<Duplex>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  /** Browser connections that already carried a request (keep-alive: no handshake to pay). */
  const used = new WeakSet<object>();
  let closing = false;

  const upstream = (): { host: string; port: number } => {
    const u = new URL(p.target);
    return { host: u.hostname, port: Number(u.port) };
  };

  /** Run `fn` one trip later (`latency` ms; at once without latency). Same-delay timers keep their order. */
  const later = (fn: () => void, trips = 1): void => {
    if (!(p.latency > 0)) return fn();
    const t = setTimeout(() => {
      timers.delete(t);
      if (!closing) fn();
    }, p.latency * trips);
    timers.add(t);
  };

  const server: Server = createServer((req, res) => {
    const buffer = p.mode === 'buffer';
    const rec: ProxiedRequest = { at: performance.now(), method: req.method || 'GET', url: req.url || '/', upgrade: false, fate: buffer ? 'buffered' : 'passed', status: 0 };
    requests.push(rec);
    const tee = p.tee && p.tee(rec.method, rec.url) ? { url: rec.url, chunks: [] as Buffer[] } : null;
    if (tee) teed.push(tee);
    let up: ClientRequest | null = null;
    let gone = false;
    // The browser went away (a stream abandoned, a poll aborted): so does the request upstream,
    // so the server sees the disconnection it would see without a proxy.
    res.on('close', () => {
      if (res.writableFinished) return;
      gone = true;
      if (up) up.destroy();
    });
    req.on('error', () => {
      gone = true;
      if (up) up.destroy();
    });
    // Toward the browser: everything one trip late, in order.
    const toBrowser = (fn: () => void): void => later(() => void (!res.destroyed && fn()));
    // Toward the server: one trip, three on a new connection (its TCP handshake's round trip first).
    const fresh = !used.has(req.socket);
    used.add(req.socket);
    later(() => {
      if (gone) return;
      const { host, port } = upstream();
      const u = (up = httpRequest({ host, port, method: req.method, path: req.url, headers: endToEnd(req.headers), agent }, (ures) => {
        const headers = endToEnd(ures.headers);
        const status = ures.statusCode || 502;
        // The server cut its response short: so does the proxy (the browser must see the cut).
        ures.on('close', () => {
          if (!ures.complete) toBrowser(() => res.destroy());
        });
        if (buffer) {
          const chunks: Buffer[] = [];
          ures.on('data', (c: Buffer) => chunks.push(c));
          ures.on('end', () =>
            toBrowser(() => {
              const body = Buffer.concat(chunks);
              headers['content-length'] = body.length;
              rec.status = status;
              if (tee) tee.chunks.push(body);
              res.writeHead(status, ures.statusMessage, headers);
              res.end(body);
            }),
          );
          return;
        }
        toBrowser(() => {
          rec.status = status;
          res.writeHead(status, ures.statusMessage, headers);
          // Headers at once (an EventSource opens on them), then every chunk as it comes.
          res.flushHeaders();
        });
        ures.on('data', (c: Buffer) =>
          toBrowser(() => {
            if (tee) tee.chunks.push(c);
            res.write(c);
          }),
        );
        ures.on('end', () => toBrowser(() => res.end()));
      }));
      u.on('error', () =>
        toBrowser(() => {
          // The server went away (closed by the test, or a cut): 502 when nothing was sent yet.
          if (!res.headersSent) {
            rec.status = 502;
            res.writeHead(502, { 'Content-Type': 'text/plain', 'Content-Length': 0, Connection: 'close' });
            res.end();
          } else res.destroy();
        }),
      );
      req.pipe(u);
    }, fresh ? 3 : 1);
  });

  server.on('connection', (s: NetSocket) => {
    browserSockets.add(s);
    s.on('close', () => browserSockets.delete(s));
  });
  server.on('clientError', (_e, s: Duplex) => s.destroy());

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const mode = p.mode;
    const fate = mode === 'pass' ? 'passed' : mode === 'swallowUpgrades' ? 'swallowed' : 'dropped';
    const rec: ProxiedRequest = { at: performance.now(), method: req.method || 'GET', url: req.url || '/', upgrade: true, fate, status: 0 };
    requests.push(rec);
    socket.on('error', () => undefined);
    if (fate === 'dropped') {
      // With latency: the new connection's handshake (a round trip), the request's trip there and
      // the reset's trip back.
      later(() => socket.destroy(), 4);
      return;
    }
    if (fate === 'swallowed') {
      // Read and ignore whatever comes; never answer. Closed by the browser or by close().
      held.add(socket);
      socket.on('data', () => undefined);
      socket.on('close', () => held.delete(socket));
      return;
    }
    // A tunnel: the request head as it came, then bytes both ways.
    const { host, port } = upstream();
    const up = netConnect(port, host);
    tunnels.add(up);
    tunnels.add(socket);
    const done = (): void => {
      up.destroy();
      socket.destroy();
      tunnels.delete(up);
      tunnels.delete(socket);
    };
    up.on('error', done);
    up.on('close', done);
    socket.on('close', done);
    up.once('connect', () => {
      let text = req.method + ' ' + req.url + ' HTTP/' + req.httpVersion + '\r\n';
      for (let i = 0; i < req.rawHeaders.length; i += 2) text += req.rawHeaders[i] + ': ' + req.rawHeaders[i + 1] + '\r\n';
      up.write(text + '\r\n');
      if (head.length) up.write(head);
      up.once('data', (c: Buffer) => {
        const m = /^HTTP\/1\.\d (\d{3})/.exec(c.toString('latin1', 0, 16));
        rec.status = m ? Number(m[1]) : 0;
      });
      up.pipe(socket);
      socket.pipe(up);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  server.on('error', (e) => errors.push(e));

  const p: Proxy = {
    origin: 'http://127.0.0.1:' + (server.address() as AddressInfo).port,
    mode,
    latency: 0,
    target,
    requests,
    teed,
    tee: null,
    errors,
    get swallowed() {
      return held.size;
    },
    reset() {
      requests.length = 0;
      teed.length = 0;
    },
    close() {
      if (closing) return Promise.resolve();
      closing = true;
      return new Promise<void>((resolve) => {
        for (const t of Array.from(timers)) clearTimeout(t);
        timers.clear();
        for (const s of Array.from(held)) s.destroy();
        for (const s of Array.from(tunnels)) s.destroy();
        for (const s of Array.from(browserSockets)) s.destroy();
        agent.destroy();
        server.close(() => resolve());
      });
    },
  };
  return p;
}
