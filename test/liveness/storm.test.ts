/**
 * Reconnection storm. N clients (STORM_CLIENTS, default 300; STORM_CLIENTS=1000 for the full
 * measure) hold WebSocket sessions with the reference server on 127.0.0.1; the server goes away
 * abruptly (HTTP server closed, every socket reset) and a fresh server comes back on the same port
 * after a short outage (STORM_OUTAGE_MS, default 1500). We record when each client's first
 * reconnect attempt reaches the new server (its upgrade request, recognised by the old session id
 * it tries to resume), print the spread (histogram per 100 ms, min/median/p90/max) and assert
 * that full jitter spreads them: they do not all arrive within the same second. Server and clients
 * share this process (2 cores in CI): with 1000 clients the arrival times also reflect how fast
 * the process gets through ~2 handshakes per client, so the clients' own start times are printed
 * (and asserted) too.
 *
 * Then overload: a server at maxSessions answers 503 + Retry-After (HTTP) or close 4429 with `ra`
 * (WebSocket); clients must not come back before that delay.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import type { AddressInfo, Socket as NetSocket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, longPolling, webSocket, type Socket, type Transport } from '../../src/index';
import type { HttpRequest, WebSocketConstructor } from '../../src/env';
import { createServer, type RtServer } from '../../server/index';
import type { ServerOptions } from '../../server/options';
import { waitFor } from '../helpers/server';
import { cleanupAll, defer, sleep, WS } from '../helpers/raw';

afterEach(cleanupAll);

const N = Number(process.env.STORM_CLIENTS) || 300;
const OUTAGE = Number(process.env.STORM_OUTAGE_MS) || 1500;

interface Rt {
  rt: RtServer;
  http: HttpServer;
  port: number;
  url: string;
  /** Handshake arrivals (performance.now()), in order: the session id asked for ('' for a new session) and the transport. */
  arrivals: Array<{ at: number; sid: string; transport: string }>;
  /** Gone abruptly: stop listening, reset every socket (no close frame, no 1001). */
  kill(): void;
  close(): Promise<void>;
}

/** A reference server on 127.0.0.1:`port` that records every handshake's arrival. */
async function startRt(options: ServerOptions, port = 0): Promise<Rt> {
  const rt = createServer({ allowedOrigins: '*', ...options });
  const http = createHttpServer();
  const sockets = new Set<NetSocket>();
  const arrivals: Rt['arrivals'] = [];
  const record = (req: IncomingMessage): void => {
    const url = new URL(req.url || '/', 'http://x');
    if (!url.searchParams.has('v')) return; // not a handshake (a poll or a POST)
    arrivals.push({ at: performance.now(), sid: url.searchParams.get('sid') || '', transport: url.pathname.split('/').pop() || '' });
  };
  http.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  rt.attach(http);
  // In front of the server's own listeners (attach() takes over 'request').
  http.prependListener('upgrade', record);
  http.prependListener('request', record);
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(port, '127.0.0.1', () => resolve());
  });
  const p = (http.address() as AddressInfo).port;
  let closed: Promise<void> | null = null;
  const s: Rt = {
    rt,
    http,
    port: p,
    url: 'http://127.0.0.1:' + p + '/rt',
    arrivals,
    kill() {
      http.close();
      for (const so of sockets) {
        if (typeof so.resetAndDestroy === 'function') so.resetAndDestroy();
        else so.destroy();
      }
      sockets.clear();
    },
    close: () =>
      (closed ||= new Promise<void>((resolve) => {
        rt.close();
        s.kill();
        resolve();
      })),
  };
  defer(() => s.close());
  return s;
}

function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function histogram(times: number[], bin = 100): string {
  const max = Math.max(...times);
  const bins = new Array(Math.floor(max / bin) + 1).fill(0);
  for (const t of times) bins[Math.floor(t / bin)]++;
  const top = Math.max(...bins);
  const lines: string[] = [];
  for (let i = 0; i < bins.length; i++) {
    if (!bins[i]) {
      // A run of empty bins is one line.
      let j = i;
      while (j + 1 < bins.length && !bins[j + 1]) j++;
      lines.push(`  ${String(i * bin).padStart(6)}–${String((j + 1) * bin).padEnd(6)} ms    0`);
      i = j;
      continue;
    }
    lines.push(`  ${String(i * bin).padStart(6)}–${String((i + 1) * bin).padEnd(6)} ms ${String(bins[i]).padStart(4)} ${'#'.repeat(Math.max(1, Math.round((bins[i] / top) * 50)))}`);
  }
  return lines.join('\n');
}

/** Most arrivals within any window of `ms` (sliding). */
function busiestWindow(sorted: number[], ms: number): number {
  let best = 0;
  for (let i = 0, j = 0; j < sorted.length; j++) {
    while (sorted[j] - sorted[i] >= ms) i++;
    best = Math.max(best, j - i + 1);
  }
  return best;
}

interface Client {
  sock: Socket;
  opens: number;
  lost: number;
  resumes: number;
  reconnecting: Array<{ at: number; attempt: number; delay: number; code: number }>;
  /** performance.now() of each connection attempt (a WebSocket made, or a handshake request sent). */
  attempts: number[];
}

/** A WebSocket constructor that records when each connection attempt starts. */
function recordingWebSocket(attempts: number[]): WebSocketConstructor {
  const Base = WS as unknown as new (url: string) => object;
  return class extends Base {
    constructor(url: string) {
      attempts.push(performance.now());
      super(url);
    }
  } as unknown as WebSocketConstructor;
}

/** HTTP requests over fetch (as the client does under Node) that record each handshake GET. */
function recordingRequest(attempts: number[]): HttpRequest {
  return (method, url, body, timeoutMs, done) => {
    if (method === 'GET' && /[?&]v=1/.test(url)) attempts.push(performance.now());
    const ctl = new AbortController();
    let finished = false;
    const finish = (r: { status: number; body: string; retryAfter: string | null }): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      done(r);
    };
    const timer = setTimeout(() => {
      finish({ status: 0, body: '', retryAfter: null });
      ctl.abort();
    }, timeoutMs);
    fetch(url, { method, body, headers: body !== null ? { 'Content-Type': 'text/plain;charset=UTF-8' } : {}, signal: ctl.signal }).then(
      (res) =>
        res.text().then(
          (text) => finish({ status: res.status, body: text, retryAfter: res.headers.get('Retry-After') }),
          () => finish({ status: 0, body: '', retryAfter: null }),
        ),
      () => finish({ status: 0, body: '', retryAfter: null }),
    );
    return () => {
      finished = true;
      clearTimeout(timer);
      ctl.abort();
    };
  };
}

function client(url: string, transport: Transport = webSocket): Client {
  const attempts: number[] = [];
  const sock = connect(url, {
    transports: [transport],
    WebSocket: recordingWebSocket(attempts),
    upgrade: false,
    rememberFor: 0,
    env: { request: recordingRequest(attempts) },
  });
  const c: Client = { sock, opens: 0, lost: 0, resumes: 0, reconnecting: [], attempts };
  sock.on('open', () => c.opens++);
  sock.on('resume', () => c.resumes++);
  sock.on('session-lost', () => c.lost++);
  sock.on('reconnecting', (i) => c.reconnecting.push({ at: performance.now(), attempt: i.attempt, delay: i.delay, code: i.code }));
  defer(() => sock.state !== 'closed' && sock.close());
  return c;
}

describe('reconnection storm', () => {
  it(`${N} WebSocket clients, server gone ${OUTAGE} ms and back on the same port: reconnects spread by full jitter`, { timeout: 120_000 }, async () => {
    const a = await startRt({ sessionTimeout: 60000 });
    const clients: Client[] = [];
    const t0 = performance.now();
    for (let i = 0; i < N; i += 100) {
      for (let k = i; k < Math.min(N, i + 100); k++) clients.push(client(a.url));
      await waitFor(() => clients.every((c) => c.opens === 1), 30000, 'clients ' + i + '..' + (i + 100) + ' open');
    }
    await waitFor(() => a.rt.clientsCount === N, 5000, 'every session on the server');
    const sids = new Set(clients.map((c) => c.sock.id));
    expect(sids.size).toBe(N);
    console.log(`[storm] ${N} clients connected in ${(performance.now() - t0).toFixed(0)} ms`);

    // The server goes away abruptly...
    const port = a.port;
    const tDown = performance.now();
    a.kill();
    await a.close();
    await sleep(OUTAGE);
    // ...and a fresh one (no sessions) comes back on the same port.
    const b = await startRt({ sessionTimeout: 60000 }, port);
    const tUp = performance.now();
    const refused = clients.reduce((n, c) => n + c.reconnecting.filter((r) => r.at > tDown && r.at < tUp).length, 0);

    // Every client comes back: its resume reaches the server (4404), then a new session opens.
    await waitFor(() => clients.every((c) => c.opens === 2), 60000, 'every client on a new session');
    const tAll = performance.now();
    const first = new Map<string, number>();
    for (const x of b.arrivals) if (x.sid && sids.has(x.sid) && !first.has(x.sid)) first.set(x.sid, x.at);
    expect(first.size).toBe(N);
    const fromUp = Array.from(first.values()).map((t) => t - tUp).sort((x, y) => x - y);
    const fromDown = fromUp.map((t) => t + (tUp - tDown));
    const spread = fromUp[fromUp.length - 1] - fromUp[0];
    const inOneSecond = busiestWindow(fromUp, 1000);
    const attemptsOf = clients.map((c) => c.reconnecting.filter((r) => r.at > tDown).length).sort((x, y) => x - y);
    // The same seen from the clients: when the backoff scheduled the attempt that reached the new
    // server (the 'reconnecting' event's time + delay), and how late its timer actually ran (this
    // one process runs the server and every client: a busy event loop delays and bunches them).
    const scheduled: number[] = [];
    let lateness = 0;
    for (const c of clients) {
      const start = c.attempts.find((t) => t >= tUp)!;
      const ev = c.reconnecting.filter((r) => r.at <= start).pop()!;
      scheduled.push(ev.at + ev.delay - tUp);
      lateness = Math.max(lateness, start - (ev.at + ev.delay));
    }
    scheduled.sort((x, y) => x - y);
    console.log(
      [
        `[storm] ${N} clients; server down at 0, back at +${(tUp - tDown).toFixed(0)} ms on port ${port}; ${refused} attempts refused during the outage`,
        `[storm] first reconnect attempt reaching the new server, ms after it came back: min ${fromUp[0].toFixed(0)}, median ${quantile(fromUp, 0.5).toFixed(0)}, ` +
          `p90 ${quantile(fromUp, 0.9).toFixed(0)}, max ${fromUp[fromUp.length - 1].toFixed(0)} (spread ${spread.toFixed(0)} ms; ` +
          `from the outage start: median ${quantile(fromDown, 0.5).toFixed(0)}, max ${fromDown[fromDown.length - 1].toFixed(0)})`,
        `[storm] busiest 1 s window: ${inOneSecond} of ${N} (${((100 * inOneSecond) / N).toFixed(0)} %); busiest 100 ms: ${busiestWindow(fromUp, 100)}`,
        `[storm] the same attempts as the clients' backoff scheduled them: min ${scheduled[0].toFixed(0)}, median ${quantile(scheduled, 0.5).toFixed(0)}, ` +
          `p90 ${quantile(scheduled, 0.9).toFixed(0)}, max ${scheduled[scheduled.length - 1].toFixed(0)}; busiest 1 s window ${busiestWindow(scheduled, 1000)}, ` +
          `busiest 100 ms ${busiestWindow(scheduled, 100)}; timers ran up to ${lateness.toFixed(0)} ms late (event-loop load)`,
        `[storm] reconnect attempts per client: median ${quantile(attemptsOf, 0.5)}, max ${attemptsOf[attemptsOf.length - 1]}; all back on new sessions ${(tAll - tUp).toFixed(0)} ms after the server returned`,
        `[storm] histogram (per 100 ms after the server came back):`,
        histogram(fromUp),
      ].join('\n'),
    );
    // Full jitter: at the server, not everyone in the same second (loose: a loaded event loop
    // bunches arrivals); in the clients' schedule, not even most in one second or a wall in 100 ms.
    expect(spread).toBeGreaterThan(1000);
    expect(inOneSecond).toBeLessThan(0.8 * N);
    expect(busiestWindow(scheduled, 1000)).toBeLessThan(0.7 * N);
    expect(busiestWindow(scheduled, 100)).toBeLessThan(0.2 * N);
    // The sessions were lost with the old server: each client was told once and opened a new one.
    expect(clients.every((c) => c.lost === 1 && c.resumes === 0)).toBe(true);
    await waitFor(() => b.rt.clientsCount === N, 5000, 'every new session on the server');
  });
});

describe('overload: clients honour the server’s retry delay', () => {
  const CASES: Array<{ transport: Transport; how: string }> = [
    { transport: webSocket, how: 'close 4429 with ra' },
    { transport: longPolling, how: '503 + Retry-After' },
  ];
  for (const { transport, how } of CASES) {
    it(`${transport.name}: ${how} at maxSessions → no reconnect before the delay; a freed slot is taken`, { timeout: 30_000 }, async () => {
      const RETRY_S = 2;
      const K = 10;
      const srv = await startRt({ maxSessions: 1, retryAfter: RETRY_S });
      const filler = client(srv.url, transport);
      await waitFor(() => filler.opens === 1, 3000, 'the one session the server takes');
      const clients = Array.from({ length: K }, () => client(srv.url, transport));
      const tStart = performance.now();
      await sleep(2 * RETRY_S * 1000 + 500);
      for (const c of clients) {
        expect(c.opens).toBe(0);
        expect(c.reconnecting.length).toBeGreaterThanOrEqual(2);
        for (const r of c.reconnecting) {
          expect(r.code).toBe(4429);
          expect(r.delay).toBeGreaterThanOrEqual(RETRY_S * 1000);
        }
        // Attempts (measured where the client starts them) at least the delay apart.
        expect(c.attempts.length).toBeGreaterThanOrEqual(2);
        for (let i = 1; i < c.attempts.length; i++) expect(c.attempts[i] - c.attempts[i - 1]).toBeGreaterThanOrEqual(RETRY_S * 1000 - 2);
      }
      // What the server saw agrees: K clients' handshakes, none closer than the delay per client.
      const total = clients.reduce((n, c) => n + c.attempts.length, 0);
      const seen = srv.arrivals.filter((x) => x.at >= tStart && x.transport === transport.name).length;
      expect(seen).toBe(total);
      const gaps = clients.flatMap((c) => c.attempts.slice(1).map((t, i) => t - c.attempts[i]));
      console.log(
        `[overload] ${transport.name} (${how}, ${RETRY_S} s): ${K} clients made ${total} attempts in ${((performance.now() - tStart) / 1000).toFixed(1)} s; ` +
          `gaps between a client's attempts: min ${Math.min(...gaps).toFixed(0)} ms, max ${Math.max(...gaps).toFixed(0)} ms`,
      );
      // A slot frees: one waiting client takes it at its next attempt, the rest keep waiting.
      filler.sock.close();
      await waitFor(() => srv.rt.clientsCount === 0, 3000, 'the filler gone');
      await waitFor(() => clients.some((c) => c.opens === 1), RETRY_S * 1000 + 2000, 'a waiting client to take the slot');
      await sleep(200);
      expect(clients.filter((c) => c.opens === 1).length).toBe(1);
      expect(srv.rt.clientsCount).toBe(1);
    });
  }
});
