// @vitest-environment jsdom
/**
 * Matrix, fault rows: connect() under jsdom against the reference server on 127.0.0.1, with
 * faults injected by msw (HTTP responses, WebSocket links) or by the socket's `env` (WebSocket
 * constructors that hang or fail, recorded requests). A last block replays the timing-sensitive
 * cells on fake timers with a scripted network, where the bounds are exact.
 *
 * The page origin is jsdom's default (http://localhost:3000), so every request is cross-origin.
 * Two environment shims (test/helpers/jsdom-shims.ts) make jsdom + msw behave like a browser:
 * jsdom's WebSocket fires `open` again, and msw's pass-through XHRs lose the marker header that
 * would otherwise turn them into preflighted requests.
 *
 * Test names read "<transports> × <fault> → <expected outcome>".
 */
import { bypass, delay, http, HttpResponse, passthrough, ws } from 'msw';
import { setupServer } from 'msw/node';
import NodeWebSocket from 'ws';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { longPollingServer } from '../../server/index';
import type { Connection } from '../../server/index';
import { defaultEnv, type Env, type WebSocketConstructor, type WebSocketLike } from '../../src/env';
import { connect, longPolling, webSocket, type Socket, type SocketOptions } from '../../src/index';
import { dropMswXhrMarkerHeader, patchJsdomWebSocketOpen } from '../helpers/jsdom-shims';
import {
  bothWays,
  erroringWebSocket,
  hangFirst,
  hangingWebSocket,
  isHandshake,
  labels,
  recordingRequest,
  ScriptedPolling,
  sleep,
  watchClient,
  watchServer,
  type ClientLog,
} from '../helpers/matrix';
import { startServer, waitFor, type TestServer } from '../helpers/server';

const mock = setupServer();
let unpatch: Array<() => void> = [];
let srv: TestServer | null = null;
let socks: Socket[] = [];

beforeAll(() => {
  unpatch = [patchJsdomWebSocketOpen(), dropMswXhrMarkerHeader(XMLHttpRequest)];
  mock.listen({ onUnhandledRequest: 'bypass' });
});
afterAll(() => {
  mock.close();
  for (const u of unpatch) u();
});
beforeEach(() => {
  // The socket remembers per endpoint which transport worked (localStorage): start every cell clean.
  localStorage.clear();
});
afterEach(async () => {
  for (const s of socks) if (s.state !== 'closed') s.close();
  socks = [];
  mock.resetHandlers();
  vi.useRealTimers();
  if (srv) await srv.close();
  srv = null;
});

/** The jsdom WebSocket (msw-wrapped while msw listens), read now as the socket would. */
const JsdomWebSocket = (): WebSocketConstructor => globalThis.WebSocket as unknown as WebSocketConstructor;

/**
 * The brief's default pair, WebSocket then long polling. `connect()`'s own default list now also
 * holds streaming and short-polling transports; these cells pin the pair so that a fallback means
 * long polling (real-server.test.ts covers the full default list).
 */
const WS_LP = [webSocket, longPolling] as const;

function open(url: string, options: SocketOptions = {}): { sock: Socket; cl: ClientLog; t0: number } {
  const t0 = performance.now();
  // parallelFallback off: these cells pin the head-start sequence (streams.test.ts covers the
  // first-visit parallel start).
  const sock = connect(url, { transports: WS_LP, parallelFallback: false, ...options });
  socks.push(sock);
  return { sock, cl: watchClient(sock, t0), t0 };
}

const lpUrl = (s: TestServer): string => s.url + '/long-polling';
const wsUrl = (s: TestServer): string => s.url.replace(/^http/, 'ws') + '/websocket';
const isOpenRequest = (request: Request): boolean => new URL(request.url).searchParams.has('v');

/** Server sends `n` messages on each new session; returns the server log. */
function serverSends(s: TestServer, n: number, prefix = 's'): ReturnType<typeof watchServer> {
  return watchServer(s, (c) => {
    for (let i = 0; i < n; i++) c.send(prefix + i);
  });
}

function sendAll(sock: Socket, n: number, prefix = 'c'): void {
  for (let i = 0; i < n; i++) expect(sock.send(prefix + i)).toBe(true);
}

/*
 * it.fails cells below document bugs. Each checks its preconditions with `if (!…) return`: a
 * broken precondition makes the test *pass*, which it.fails reports as a failure, so such a cell
 * can only "fail as expected" for the reason it describes.
 */

// ---- (a) WebSocket missing ------------------------------------------------------------------------

describe('(a) WebSocket missing', () => {
  it('websocket+long-polling × no WebSocket in env → long-polling, 300 each way exactly once in order, no upgrade attempt', async () => {
    srv = await startServer();
    const sl = serverSends(srv, 300);
    const rec = recordingRequest(defaultEnv().request!);
    const { sock, cl } = open(srv.url, { env: { WebSocket: undefined, request: rec.request } });
    sendAll(sock, 300);
    await bothWays(sl, cl, 300);
    expect(sl.received).toEqual(labels('c', 300));
    expect(cl.received).toEqual(labels('s', 300));
    expect(sock.transport).toBe('long-polling');
    expect(cl.transports).toEqual(['long-polling']);
    expect(rec.calls.every((c) => c.url.indexOf('/long-polling') > 0)).toBe(true);
    expect(cl.reconnecting).toEqual([]);
  });

  // Regression guard (src/socket.ts, constructor → negotiate → finish): with no supported transport the
  // 'close' event (4101) is emitted synchronously inside the constructor, before connect()
  // returns, so no listener can ever receive it; only `state === 'closed'` tells.
  it('websocket only × no WebSocket in env → close event 4101 (no supported transport), not retried', () => {
    const { sock, cl } = open('http://127.0.0.1:9/rt', { transports: [webSocket], env: { WebSocket: undefined } });
    if (sock.state !== 'closed') return; // precondition: it did close, with nobody told
    expect(cl.closes).toEqual([{ code: 4101, reason: 'no supported transport', wasClean: false }]);
  });
});

// ---- (b) WebSocket refused / erroring at once ------------------------------------------------------

describe('(b) WebSocket refused or erroring at once', () => {
  it('websocket+long-polling × websocket upgrade refused by the server (404) → long-polling starts at once, well before headStart', async () => {
    // A real refusal: this server has no WebSocket transport, so the upgrade gets "404 Not Found".
    srv = await startServer({ transports: [longPollingServer()] });
    const sl = serverSends(srv, 1);
    const rec = recordingRequest(defaultEnv().request!);
    const { sock, cl, t0 } = open(srv.url, { headStart: 1000, upgrade: false, env: { request: rec.request } });
    await waitFor(() => cl.received.length === 1, 3000, 'first message');
    const first = rec.calls.find((c) => isHandshake(c.url))!;
    expect(first.at - t0).toBeLessThan(250); // headStart is 1000: it did not wait for it
    expect(cl.firstMessageAt).toBeLessThan(900); // well before headStart, with room for a loaded machine
    expect(sock.transport).toBe('long-polling');
    expect(cl.transports).toEqual(['long-polling']);
    sock.send('hi');
    await waitFor(() => sl.received.length === 1, 3000, 'message to the server');
    expect(sl.received).toEqual(['hi']);
  });

  it('websocket+long-polling × websocket constructor erroring at once (env.WebSocket fake) → long-polling starts at once, well before headStart', async () => {
    srv = await startServer();
    const sl = serverSends(srv, 1);
    const fake = erroringWebSocket();
    const rec = recordingRequest(defaultEnv().request!);
    const { sock, cl, t0 } = open(srv.url, { headStart: 1000, upgrade: false, env: { WebSocket: fake.ctor, request: rec.request } });
    await waitFor(() => cl.received.length === 1, 3000, 'first message');
    expect(fake.made).toHaveLength(1);
    expect(rec.calls[0].at - t0).toBeLessThan(250);
    expect(cl.firstMessageAt).toBeLessThan(900); // well before headStart, with room for a loaded machine
    expect(sock.transport).toBe('long-polling');
    expect(sl.conns).toHaveLength(1);
  });

  it('websocket+long-polling × websocket closed by msw before opening (1006) → long-polling starts at once, well before headStart', async () => {
    srv = await startServer();
    const sl = serverSends(srv, 1);
    mock.use(ws.link(wsUrl(srv)).addEventListener('connection', ({ client }) => client.close(1006, 'refused')));
    const rec = recordingRequest(defaultEnv().request!);
    const { sock, cl, t0 } = open(srv.url, { headStart: 1000, upgrade: false, env: { request: rec.request } });
    await waitFor(() => cl.received.length === 1, 3000, 'first message');
    expect(rec.calls[0].at - t0).toBeLessThan(250);
    expect(sock.transport).toBe('long-polling');
    expect(sl.conns).toHaveLength(1);
  });
});

// ---- (c) WebSocket accepted but never opened -----------------------------------------------------

describe('(c) WebSocket hangs', () => {
  it('websocket+long-polling × websocket never opens (env.WebSocket fake) → long-polling starts after headStart and wins, first message within headStart + 200 ms', async () => {
    srv = await startServer();
    const sl = serverSends(srv, 100);
    const fake = hangingWebSocket();
    const rec = recordingRequest(defaultEnv().request!);
    const { sock, cl, t0 } = open(srv.url, { upgrade: false, connectTimeout: 1000, env: { WebSocket: fake.ctor, request: rec.request } });
    sendAll(sock, 100);
    await waitFor(() => cl.received.length >= 1, 3000, 'first message');
    const lp = rec.calls.find((c) => isHandshake(c.url))!;
    expect(lp.at - t0).toBeGreaterThanOrEqual(245);
    expect(lp.at - t0).toBeLessThan(250 + 100);
    expect(cl.firstMessageAt).toBeLessThan(250 + 200);
    await bothWays(sl, cl, 100);
    expect(sl.received).toEqual(labels('c', 100));
    expect(cl.received).toEqual(labels('s', 100));
    expect(cl.transports).toEqual(['long-polling']);
    // The hanging attempt lost the race for a new session: it is kept, even past close(), until
    // it opens (then its session is closed) or connectTimeout (here 1 s), then dropped.
    expect(fake.made).toHaveLength(1);
    sock.close();
    const hung = fake.made[0].socket as unknown as { closed: boolean };
    expect(hung.closed).toBe(false);
    await waitFor(() => hung.closed, 2500, 'the hanging attempt dropped at connectTimeout');
  });

  it('websocket+long-polling × websocket accepted by msw but the open frame never comes → long-polling after headStart wins, first message within headStart + 200 ms', async () => {
    srv = await startServer();
    const sl = serverSends(srv, 100);
    const accepted: string[] = [];
    mock.use(ws.link(wsUrl(srv)).addEventListener('connection', ({ client }) => void accepted.push(client.url.href)));
    const { sock, cl } = open(srv.url, { upgrade: false });
    sendAll(sock, 100);
    await waitFor(() => cl.received.length >= 1, 3000, 'first message');
    expect(cl.firstMessageAt).toBeGreaterThanOrEqual(245);
    expect(cl.firstMessageAt).toBeLessThan(250 + 200);
    await bothWays(sl, cl, 100);
    expect(accepted).toHaveLength(1);
    expect(sl.received).toEqual(labels('c', 100));
    expect(cl.received).toEqual(labels('s', 100));
    expect(cl.transports).toEqual(['long-polling']);
    expect(sl.conns).toHaveLength(1);
  });
});

// ---- (d) WebSocket opened, then closed right away -----------------------------------------------

describe('(d) WebSocket opened then closed right after opening', () => {
  it('websocket+long-polling × every websocket closed (1006) right after its open event, before the open frame → long-polling, nothing lost', async () => {
    srv = await startServer();
    const sl = serverSends(srv, 300);
    let attempts = 0;
    mock.use(
      ws.link(wsUrl(srv)).addEventListener('connection', ({ client }) => {
        attempts++;
        setTimeout(() => client.close(1006, 'dropped'), 0); // after msw dispatched 'open'
      }),
    );
    const { sock, cl } = open(srv.url, { headStart: 1000 });
    sendAll(sock, 300);
    await bothWays(sl, cl, 300);
    expect(attempts).toBeGreaterThanOrEqual(1);
    expect(cl.firstMessageAt).toBeLessThan(500); // the drop started long polling, not headStart
    expect(sl.received).toEqual(labels('c', 300));
    expect(cl.received).toEqual(labels('s', 300));
    expect(sock.transport).toBe('long-polling');
    expect(cl.transports).toEqual(['long-polling']);
    expect(sl.conns).toHaveLength(1);
  });

  /**
   * The first WebSocket reaches the real server (msw passes it through), carries the session's
   * open frame, and is dropped (1006) right after it; the socket reconnects and resumes.
   */
  function dropFirstAfterOpenFrame(s: TestServer, code: number): { drops: number } {
    const state = { drops: 0 };
    mock.use(
      ws.link(wsUrl(s)).addEventListener('connection', ({ client, server }) => {
        server.connect();
        if (state.drops > 0) return;
        state.drops++;
        server.addEventListener('message', (e) => {
          const text = String(e.data);
          if (text.indexOf('"t":"o"') >= 0) {
            e.preventDefault();
            client.send(text); // deliver the open frame (and whatever came with it)...
            setTimeout(() => client.close(code, ''), 0); // ...then drop the connection
          }
        });
      }),
    );
    return state;
  }

  it('websocket only × websocket dropped (1006) right after the session opened → reconnects, resumes on websocket, 500 each way exactly once in order', async () => {
    srv = await startServer();
    const sl = serverSends(srv, 500);
    const state = dropFirstAfterOpenFrame(srv, 1006);
    const { sock, cl } = open(srv.url, { transports: [webSocket], backoffBase: 50, env: { WebSocket: JsdomWebSocket() } });
    sendAll(sock, 500);
    await bothWays(sl, cl, 500);
    expect(state.drops).toBe(1);
    expect(cl.reconnecting.map((r) => r.code)).toEqual([1006]);
    await waitFor(() => cl.resumes >= 1 || cl.closes.length > 0, 3000, 'resume');
    expect(cl.resumes).toBe(1);
    expect(cl.opens).toBe(1);
    expect(sl.conns).toHaveLength(1);
    expect(sl.received).toEqual(labels('c', 500));
    expect(cl.received).toEqual(labels('s', 500));
    expect(sock.transport).toBe('websocket');
  });

  it('websocket+long-polling × websocket dropped (1006) right after the session opened → reconnects (resume), nothing lost', async () => {
    srv = await startServer();
    const sl = serverSends(srv, 500);
    const state = dropFirstAfterOpenFrame(srv, 1006);
    // headStart 5000: under CPU load the long-polling candidate must not join the first race.
    const { sock, cl } = open(srv.url, { backoffBase: 50, headStart: 5000 });
    sendAll(sock, 500);
    await bothWays(sl, cl, 500);
    expect(state.drops).toBe(1);
    expect(cl.reconnecting).toHaveLength(1);
    await waitFor(() => cl.resumes >= 1 || cl.closes.length > 0, 3000, 'resume');
    expect(cl.resumes).toBe(1);
    expect(sl.conns).toHaveLength(1);
    expect(sl.received).toEqual(labels('c', 500));
    expect(cl.received).toEqual(labels('s', 500));
  });

  // Regression (fixed in 859c912, transports/websocket/client.ts): a transport-level close 1000
  // without a close frame (e.g. a server that replaced this WebSocket) used to end the socket.
  it('websocket only × websocket closed with 1000 (no close frame) right after the session opened → reconnects, nothing lost', async () => {
    srv = await startServer();
    const sl = serverSends(srv, 50);
    dropFirstAfterOpenFrame(srv, 1000);
    const { sock, cl } = open(srv.url, { transports: [webSocket], backoffBase: 50, env: { WebSocket: JsdomWebSocket() } });
    sendAll(sock, 50);
    await waitFor(() => (sl.received.length >= 50 && cl.received.length >= 50 && cl.resumes >= 1) || cl.closes.length > 0, 5000, 'delivery and resume, or close');
    expect(cl.closes).toEqual([]);
    expect(cl.reconnecting).toHaveLength(1);
    await waitFor(() => cl.resumes >= 1 || cl.closes.length > 0, 3000, 'resume');
    expect(cl.resumes).toBe(1);
    expect(sl.received).toEqual(labels('c', 50));
    expect(cl.received).toEqual(labels('s', 50));
  });
});

// ---- (e) long-polling GET answered 500 / 404 / 429 -----------------------------------------------

describe('(e) long-polling GET faults', () => {
  const half = () => 0.5; // backoff windows are then exactly half-used: delay = window / 2

  it('long-polling only × handshake GET answered 500 twice → transient: retried with backoff (1006; delays 50, 100 ms), then delivers', async () => {
    srv = await startServer();
    const sl = serverSends(srv, 100);
    let failures = 0;
    const gets: number[] = [];
    mock.use(
      http.get(lpUrl(srv), ({ request }) => {
        if (isOpenRequest(request)) gets.push(performance.now());
        if (isOpenRequest(request) && failures < 2) {
          failures++;
          return new HttpResponse('boom', { status: 500 });
        }
        return passthrough();
      }),
    );
    const { sock, cl } = open(srv.url, { transports: [longPolling], backoffBase: 100, env: { random: half } });
    sendAll(sock, 100);
    await bothWays(sl, cl, 100);
    expect(cl.reconnecting.map((r) => [r.attempt, r.code, r.delay])).toEqual([
      [1, 1006, 50],
      [2, 1006, 100],
    ]);
    expect(gets).toHaveLength(3);
    expect(gets[1] - gets[0]).toBeGreaterThanOrEqual(45);
    expect(gets[2] - gets[1]).toBeGreaterThanOrEqual(95);
    expect(cl.opens).toBe(1);
    expect(sl.received).toEqual(labels('c', 100));
    expect(cl.received).toEqual(labels('s', 100));
  });

  it('long-polling only × poll GET answered 500 mid-session → transient: reconnects, resumes the same session, nothing lost', async () => {
    srv = await startServer();
    const sl = watchServer(srv);
    let failed = 0;
    let armed = false;
    mock.use(
      http.get(lpUrl(srv), ({ request }) => {
        if (armed && !isOpenRequest(request) && failed === 0) {
          failed++;
          return new HttpResponse(null, { status: 500 });
        }
        return passthrough();
      }),
    );
    const { sock, cl } = open(srv.url, { transports: [longPolling], backoffBase: 50, env: { random: half } });
    const conn = await sl.first;
    sendAll(sock, 200);
    for (let i = 0; i < 200; i++) conn.send('s' + i);
    armed = true; // the next poll fails
    for (let i = 200; i < 400; i++) conn.send('s' + i);
    sendAll(sock, 200, 'd');
    await waitFor(() => sl.received.length >= 400 && cl.received.length >= 400, 5000, '400 each way');
    await sleep(100);
    expect(failed).toBe(1);
    expect(cl.reconnecting.map((r) => r.code)).toEqual([1006]);
    await waitFor(() => cl.resumes >= 1 || cl.closes.length > 0, 3000, 'resume');
    expect(cl.resumes).toBe(1);
    expect(sl.conns).toHaveLength(1);
    expect(sl.received).toEqual([...labels('c', 200), ...labels('d', 200)]);
    expect(cl.received).toEqual(labels('s', 400));
  });

  it('long-polling only × handshake GET answered 404 (new session) → retried (4404), then opens', async () => {
    srv = await startServer();
    let failures = 0;
    mock.use(
      http.get(lpUrl(srv), ({ request }) => {
        if (isOpenRequest(request) && failures < 2) {
          failures++;
          return new HttpResponse('{"t":"c","c":4404,"r":"unknown session"}', { status: 404 });
        }
        return passthrough();
      }),
    );
    const { sock, cl } = open(srv.url, { transports: [longPolling], backoffBase: 20, env: { random: half } });
    await waitFor(() => sock.state === 'open', 3000, 'open');
    expect(cl.reconnecting.map((r) => r.code)).toEqual([4404, 4404]);
    expect(cl.sessionLost).toEqual([]);
    expect(cl.opens).toBe(1);
  });

  it('long-polling only × server forgot the session (every request naming it answered 404) → session-lost with the unacknowledged messages, then a new session', async () => {
    srv = await startServer();
    const sl = watchServer(srv);
    const { sock, cl } = open(srv.url, { transports: [longPolling], backoffBase: 20, env: { random: half } });
    await sl.first;
    sendAll(sock, 10, 'a');
    await waitFor(() => sl.received.length === 10 && sock.bufferedAmount === 0, 3000, 'a* acknowledged');
    const oldSid = sock.id;
    mock.use(
      http.all(lpUrl(srv), ({ request }) => {
        if (new URL(request.url).searchParams.get('sid') === oldSid) {
          return new HttpResponse('{"t":"c","c":4404,"r":"unknown session"}', { status: 404 });
        }
        return passthrough();
      }),
    );
    // The held poll of the old session is still at the server: make the server answer it (with
    // a message), so the next poll, the one that meets the 404, goes out.
    sl.conns[0].send('old');
    sendAll(sock, 5, 'b');
    await waitFor(() => cl.sessionLost.length > 0 && cl.opens === 2, 5000, 'session-lost and a new session');
    expect(cl.sessionLost[0].code).toBe(4404);
    expect(cl.sessionLost[0].unacked).toEqual(labels('b', 5));
    expect(sock.id).not.toBe(oldSid);
    expect(sl.conns).toHaveLength(2);
    // The application re-sends what was handed back; the new session gets it.
    const fresh = sl.conns[1];
    const got: string[] = [];
    fresh.on('message', (d) => got.push(String(d)));
    for (const m of cl.sessionLost[0].unacked) sock.send(m);
    await waitFor(() => got.length === 5, 3000, 're-sent messages');
    expect(got).toEqual(labels('b', 5));
  });

  it('long-polling only × handshake GET answered 429 with Retry-After: 1 → reconnecting delay honours it (1000 ms, not the 50 ms backoff)', async () => {
    srv = await startServer();
    const gets: number[] = [];
    let failures = 0;
    mock.use(
      http.get(lpUrl(srv), ({ request }) => {
        if (!isOpenRequest(request)) return passthrough();
        gets.push(performance.now());
        if (failures++ === 0) return new HttpResponse('{"t":"c","c":4429,"r":"slow down"}', { status: 429, headers: { 'Retry-After': '1' } });
        return passthrough();
      }),
    );
    const { sock, cl } = open(srv.url, { transports: [longPolling], backoffBase: 100, env: { random: half } });
    await waitFor(() => sock.state === 'open', 3000, 'open');
    expect(cl.reconnecting.map((r) => [r.code, r.delay])).toEqual([[4429, 1000]]);
    expect(gets).toHaveLength(2);
    expect(gets[1] - gets[0]).toBeGreaterThanOrEqual(990);
    expect(gets[1] - gets[0]).toBeLessThan(1400);
  });

  it('long-polling only × poll GET answered 429 with Retry-After: 0.5 mid-session → waits 500 ms, resumes, nothing lost', async () => {
    srv = await startServer();
    const sl = watchServer(srv);
    let armed = false;
    let failed = 0;
    mock.use(
      http.get(lpUrl(srv), ({ request }) => {
        if (armed && !isOpenRequest(request) && failed === 0) {
          failed++;
          return new HttpResponse(null, { status: 429, headers: { 'Retry-After': '0.5' } });
        }
        return passthrough();
      }),
    );
    const { sock, cl } = open(srv.url, { transports: [longPolling], backoffBase: 20, env: { random: half } });
    const conn = await sl.first;
    armed = true;
    conn.send('wake'); // answers the held poll; the next one meets the 429
    sendAll(sock, 100);
    for (let i = 0; i < 100; i++) conn.send('s' + i);
    await waitFor(() => sl.received.length >= 100 && cl.received.length >= 101, 5000, '100 each way');
    await sleep(100);
    expect(cl.reconnecting.map((r) => [r.code, r.delay])).toEqual([[4429, 500]]);
    await waitFor(() => cl.resumes >= 1 || cl.closes.length > 0, 3000, 'resume');
    expect(cl.resumes).toBe(1);
    expect(sl.received).toEqual(labels('c', 100));
    expect(cl.received).toEqual(['wake', ...labels('s', 100)]);
  });
});

// ---- (f) POST failing -----------------------------------------------------------------------------

describe('(f) long-polling POST faults', () => {
  it('long-polling only × POST answered 500 three times (never reached the server) → after the fault clears, 1000 messages arrive exactly once in order', async () => {
    srv = await startServer();
    const sl = watchServer(srv);
    let failures = 0;
    mock.use(
      http.post(lpUrl(srv), () => {
        if (failures < 3) {
          failures++;
          return new HttpResponse(null, { status: 500 });
        }
        return passthrough();
      }),
    );
    const { sock, cl } = open(srv.url, { transports: [longPolling], backoffBase: 40, env: { random: () => 0.5 } });
    sendAll(sock, 1000);
    await waitFor(() => sl.received.length >= 1000, 10000, '1000 messages at the server');
    await sleep(150);
    expect(failures).toBe(3);
    expect(cl.reconnecting.map((r) => r.code)).toEqual([1006, 1006, 1006]);
    expect(sl.received).toEqual(labels('c', 1000));
    expect(sl.conns).toHaveLength(1);
    await waitFor(() => sock.bufferedAmount === 0, 3000, 'everything acknowledged');
  });

  it('long-polling only × POST delivered to the server but answered 500 (response lost) → re-sent, no duplicate at the server, in order', async () => {
    srv = await startServer();
    const sl = watchServer(srv);
    let failures = 0;
    mock.use(
      http.post(lpUrl(srv), async ({ request }) => {
        if (failures < 2) {
          failures++;
          await fetch(bypass(request)); // the server takes the batch...
          return new HttpResponse(null, { status: 500 }); // ...the client never learns it
        }
        return passthrough();
      }),
    );
    const { sock, cl } = open(srv.url, { transports: [longPolling], backoffBase: 40, env: { random: () => 0.5 } });
    await sl.first;
    for (let k = 0; k < 5; k++) {
      sendAll(sock, 100, 'c' + k + '-');
      await sleep(20);
    }
    await waitFor(() => sl.received.length >= 500, 10000, '500 messages at the server');
    await sleep(200);
    expect(failures).toBe(2);
    expect(cl.reconnecting).toHaveLength(2);
    const expected = [0, 1, 2, 3, 4].flatMap((k) => labels('c' + k + '-', 100));
    expect(sl.received).toEqual(expected);
  });
});

// ---- (g) slow server ------------------------------------------------------------------------------

/** Every server → client WebSocket message of connections accepted by `which` is delivered `ms` late. */
function slowWebSocket(s: TestServer, ms: number, which: (n: number) => boolean = () => true, connectAfter = 0): { connections: number } {
  const state = { connections: 0 };
  mock.use(
    ws.link(wsUrl(s)).addEventListener('connection', async ({ client, server }) => {
      const n = ++state.connections;
      if (connectAfter) await delay(connectAfter);
      server.connect();
      if (!which(n)) return;
      server.addEventListener('message', (e) => {
        e.preventDefault();
        const data = e.data;
        setTimeout(() => client.send(data), ms);
      });
    }),
  );
  return state;
}

describe('(g) slow server', () => {
  it('long-polling only × every request delayed 300 ms → 500 each way exactly once in order', async () => {
    srv = await startServer();
    const sl = serverSends(srv, 500);
    mock.use(
      http.all(lpUrl(srv), async () => {
        await delay(300);
        return passthrough();
      }),
    );
    const { sock, cl } = open(srv.url, { transports: [longPolling] });
    sendAll(sock, 500);
    await bothWays(sl, cl, 500, 15000);
    expect(cl.firstMessageAt).toBeGreaterThanOrEqual(295); // the handshake answer carries them
    expect(sl.received).toEqual(labels('c', 500));
    expect(cl.received).toEqual(labels('s', 500));
    expect(cl.reconnecting).toEqual([]);
  });

  it('websocket only × handshake and every server message delayed 300 ms → 500 each way exactly once in order', async () => {
    srv = await startServer();
    const sl = serverSends(srv, 500);
    slowWebSocket(srv, 300, () => true, 300);
    const { sock, cl } = open(srv.url, { transports: [webSocket], env: { WebSocket: JsdomWebSocket() } });
    sendAll(sock, 500);
    await bothWays(sl, cl, 500, 15000);
    expect(cl.firstMessageAt).toBeGreaterThanOrEqual(595);
    expect(sl.received).toEqual(labels('c', 500));
    expect(cl.received).toEqual(labels('s', 500));
    expect(cl.reconnecting).toEqual([]);
  });

  it('websocket+long-polling × websocket handshake and messages delayed 300 ms, polls delayed 300 ms → still delivers 500 each way exactly once in order', async () => {
    srv = await startServer();
    const sl = serverSends(srv, 500);
    slowWebSocket(srv, 300, () => true, 300);
    mock.use(
      http.all(lpUrl(srv), async () => {
        await delay(300);
        return passthrough();
      }),
    );
    const { sock, cl } = open(srv.url);
    sendAll(sock, 500);
    // Both candidates reach the server here, so there are two sessions: follow the client's.
    const mine = (): string[] => sl.bySession.get(sock.id) || [];
    await waitFor(() => mine().length >= 500 && cl.received.length >= 500, 15000, '500 each way');
    await sleep(150);
    expect(mine()).toEqual(labels('c', 500));
    expect(cl.received).toEqual(labels('s', 500));
    expect(cl.opens).toBe(1);
    expect(cl.closes).toEqual([]);
  });

  // A race loser that opened a new session is kept until its open frame arrives, then tells the
  // server to drop that session ("lost the race"). The application never sees it: racing
  // handshakes carry w=1 and the server announces a session only once its client keeps it (was:
  // 'connection' for both, and what the application sent to the loser was lost). The open frame is delayed on the client side by
  // a wrapper around the `ws` package's WebSocket: msw's interceptor (which wraps jsdom's global
  // WebSocket in this file) drops a message sent just before close(), which a real WebSocket sends.
  it('websocket+long-polling × websocket open frame 300 ms late, long-polling wins the race → only the winning session stays on the server, and the application saw only that one', async () => {
    srv = await startServer();
    const sl = watchServer(srv);
    const Real = NodeWebSocket as unknown as new (u: string) => WebSocketLike;
    const late = function (url: string): WebSocketLike {
      const w = new Real(url);
      const me: WebSocketLike = {
        get readyState() {
          return w.readyState;
        },
        get bufferedAmount() {
          return w.bufferedAmount;
        },
        onopen: null,
        onmessage: null,
        onclose: null,
        onerror: null,
        send: (d) => w.send(d),
        close: (c, r) => w.close(c, r),
      };
      w.onopen = (e) => me.onopen && me.onopen(e);
      w.onmessage = (e) => void setTimeout(() => me.onmessage && me.onmessage(e), 300);
      w.onclose = (e) => me.onclose && me.onclose(e);
      w.onerror = (e) => me.onerror && me.onerror(e);
      return me;
    } as unknown as WebSocketConstructor;
    const { sock } = open(srv.url, { upgrade: false, env: { WebSocket: late } });
    await waitFor(() => sock.transport === 'long-polling', 3000, 'long-polling wins');
    await waitFor(() => srv!.rt.clientsCount === 2, 3000, 'both candidates reached the server');
    await waitFor(() => srv!.rt.clientsCount === 1, 3000, "the loser's session closed");
    expect(sock.transport).toBe('long-polling');
    expect(srv.rt.connections().map((c) => c.transport)).toEqual(['long-polling']);
    expect(sl.conns.map((c) => c.transport), "'connection' events").toEqual(['long-polling']);
    expect(sl.conns[0].state).toBe('open');
  });
});

// ---- (h) session upgrade ----------------------------------------------------------------------------

describe('(h) session upgrade long-polling → websocket', () => {
  it('websocket+long-polling × websocket hangs on the first attempt only → session starts on long-polling, moves to websocket with 500 messages in flight each way: no loss, dup or reorder; transport events [long-polling, websocket]', { timeout: 25000 }, async () => {
    srv = await startServer();
    const sl = watchServer(srv);
    const N = 500;
    let c = 0;
    let s = 0;
    const atProbe = { client: -1, server: -1 };
    const real = JsdomWebSocket();
    const first = hangFirst(1, real);
    // Count what was sent when the upgrade probe (the second WebSocket) starts.
    const ctor = function (url: string): WebSocketLike {
      const w = new (first.ctor as unknown as new (u: string) => WebSocketLike)(url);
      if (first.made.length === 2) (atProbe.client = c), (atProbe.server = s);
      return w;
    } as unknown as WebSocketConstructor;
    // random 0.5: the upgrade starts 500 ms after the session opened on long polling.
    const { sock, cl } = open(srv.url, { env: { WebSocket: ctor, random: () => 0.5 } });
    const conn = await sl.first;
    await waitFor(() => sock.transport === 'long-polling', 3000, 'session on long-polling');
    const atClient: string[] = []; // transport carrying the session when each message arrived
    const atServer: string[] = [];
    sock.on('message', () => atClient.push(sock.transport!));
    conn.on('message', () => atServer.push(conn.transport!));
    // 2 messages each way every 4 ms: about a second of traffic, the upgrade in the middle of it.
    const pump = setInterval(() => {
      for (let k = 0; k < 2; k++) {
        if (c < N) sock.send('c' + c++);
        if (s < N) conn.send('s' + s++);
      }
      if (c >= N && s >= N) clearInterval(pump);
    }, 4);
    try {
      await bothWays(sl, cl, N, 10000, 200);
      await waitFor(() => sock.transport === 'websocket', 8000, 'session on websocket');
    } finally {
      clearInterval(pump);
    }
    // The guarantees: every message exactly once, in order, one session, both ways.
    expect(sl.received).toEqual(labels('c', N));
    expect(cl.received).toEqual(labels('s', N));
    expect(cl.opens).toBe(1);
    expect(sl.conns).toHaveLength(1);
    expect(cl.transports).toEqual(['long-polling', 'websocket']);
    expect(sl.transports[0]).toBe('long-polling');
    expect(sl.transports[sl.transports.length - 1]).toBe('websocket');
    // The upgrade started in the middle of the traffic, both ways.
    expect(atProbe.client).toBeGreaterThan(0);
    expect(atProbe.client).toBeLessThan(N);
    expect(atProbe.server).toBeGreaterThan(0);
    expect(atProbe.server).toBeLessThan(N);
    expect(atClient).toContain('long-polling');
    expect(atServer).toContain('long-polling');
    // Without reconnecting, except for the known 4409 teardown of the upgrade (it.fails below),
    // which happens here in about one run in three, sometimes twice in a row.
    expect(cl.reconnecting.filter((r) => r.code !== 4409)).toEqual([]);
    if (cl.reconnecting.length === 0) {
      expect(atClient).toContain('websocket');
      expect(atServer).toContain('websocket');
      expect(sl.transports).toEqual(['long-polling', 'websocket']);
      // The hanging race attempt, the upgrade probe (probe=1, no session) and the upgrade.
      expect(first.made).toHaveLength(3);
      expect(first.made.filter((m) => /[?&]probe=1/.test(m.url))).toHaveLength(1);
    }
    await waitFor(() => sock.bufferedAmount === 0 && conn.bufferedAmount === 0, 3000, 'everything acknowledged both ways');
  });

  // Regression (fixed in 859c912, src/session.ts resume(peerAck, told)): the probe's handshake
  // query carries the `ack` of when the probe started; messages that arrive on long polling
  // before its open frame used to be counted as acknowledged (ackSent = received) and stayed in
  // the server's buffer. ackDelay 1000 makes the window deterministic (the pending ack timer is
  // cancelled by the move); with the default 50 ms it is a narrower race.
  it('websocket+long-polling × messages arrive on long-polling while the upgrade handshake is in flight → the server sees them acknowledged after the move', async () => {
    srv = await startServer();
    const sl = watchServer(srv);
    let conn: Connection | null = null;
    const Real = JsdomWebSocket();
    let made = 0;
    // First attempt hangs. The upgrade probe (URL and ack computed on time) connects 300 ms late;
    // meanwhile the server sends 10 messages, which long polling delivers.
    const ctor = function (url: string): WebSocketLike {
      // The upgrade probe (probe=1) touches no session: let it through as it is.
      if (/[?&]probe=1/.test(url)) return new Real(url);
      made++;
      if (made === 1) return new (hangingWebSocket().ctor)(url);
      return delayedWebSocket(Real, url, 300, () => {
        for (let i = 0; i < 10; i++) conn!.send('late' + i);
      });
    } as unknown as WebSocketConstructor;
    const { sock, cl } = open(srv.url, { ackDelay: 1000, env: { WebSocket: ctor, random: () => 0.5 } });
    conn = await sl.first;
    await waitFor(() => sock.transport === 'websocket', 5000, 'upgrade');
    expect(cl.received).toEqual(labels('late', 10));
    await sleep(300);
    expect(conn.bufferedAmount).toBe(0);
  });

  // Regression guard (src/socket.ts _onLinkClosed → _lost → _closeAll, with transports/long-polling/server.ts
  // poll()): when the probe attaches, the server answers the held poll with '' and refuses any
  // later poll with 409 ("the session is carried by websocket"). If that 409 reaches the client
  // before the probe's open frame (a poll already in flight, or a probe path slower than a poll
  // round trip), the client takes it as the loss of its current transport: _lost() → _closeAll()
  // also kills the probe that already carries the session, and the socket reconnects (a
  // 'reconnecting' gap; the upgrade is retried later with a growing delay). Made deterministic
  // here with a probe 300 ms slow; the cell above hits it without any delay about once in three.
  it('websocket+long-polling × upgrade probe 300 ms slower than long polling → session moves to websocket without a reconnect', async () => {
    srv = await startServer();
    const first = hangFirst(1, JsdomWebSocket());
    slowWebSocket(srv, 300);
    const { sock, cl } = open(srv.url, { env: { WebSocket: first.ctor, random: () => 0.5 } });
    await waitFor(() => sock.transport === 'long-polling', 3000, 'session on long-polling');
    await waitFor(() => sock.transport === 'websocket' || cl.reconnecting.length > 0, 3000, 'upgrade or reconnect');
    if (cl.reconnecting.length && cl.reconnecting[0].code !== 4409) return; // precondition: if it reconnected, the 409 did it
    expect(cl.reconnecting).toEqual([]);
    expect(sock.transport).toBe('websocket');
  });
});

/**
 * A WebSocketLike whose real connection is made `ms` later (`meanwhile` runs at once): the URL,
 * hence the handshake query, is the one the socket computed on time.
 */
function delayedWebSocket(Real: WebSocketConstructor, url: string, ms: number, meanwhile: () => void): WebSocketLike {
  let inner: WebSocketLike | null = null;
  let closed = false;
  const self: WebSocketLike = {
    get readyState() {
      return inner ? inner.readyState : closed ? 3 : 0;
    },
    get bufferedAmount() {
      return inner ? inner.bufferedAmount : 0;
    },
    onopen: null,
    onmessage: null,
    onclose: null,
    onerror: null,
    send(d) {
      inner!.send(d);
    },
    close(code, reason) {
      closed = true;
      if (inner) inner.close(code, reason);
    },
  };
  meanwhile();
  setTimeout(() => {
    if (closed) return;
    inner = new Real(url);
    inner.onopen = (e) => self.onopen && self.onopen(e);
    inner.onmessage = (e) => self.onmessage && self.onmessage(e);
    inner.onclose = (e) => self.onclose && self.onclose(e);
    inner.onerror = (e) => self.onerror && self.onerror(e);
  }, ms);
  return self;
}

// ---- exact timing on fake timers, scripted network ------------------------------------------------

describe('exact timing (fake timers, env.request scripted, env.WebSocket fake)', () => {
  function fakeEnv(net: ScriptedPolling, WebSocket: WebSocketConstructor | undefined): Partial<Env> {
    return { WebSocket, request: net.request, random: () => 0.5 };
  }
  const realEnv = { setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms), now: () => Date.now() };

  it('websocket+long-polling × websocket errors at once → long-polling GET at t = 0 ms (headStart 250 not awaited), open at t = 5 ms', async () => {
    vi.useFakeTimers({ now: 0 });
    const net = new ScriptedPolling(realEnv, 5);
    const fake = erroringWebSocket(() => Date.now());
    const { sock, cl } = open('http://127.0.0.1:1/rt', { env: fakeEnv(net, fake.ctor) });
    expect(net.calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(0);
    expect(net.calls.map((c) => [c.method, c.at])).toEqual([['GET', 0]]);
    await vi.advanceTimersByTimeAsync(5);
    expect(sock.state).toBe('open');
    expect(cl.transports).toEqual(['long-polling']);
    await vi.advanceTimersByTimeAsync(1000);
    expect(net.calls.filter((c) => isHandshake(c.url))).toHaveLength(1); // no second race
  });

  it('websocket+long-polling × websocket hangs → long-polling GET at exactly t = headStart (250 ms), wins at 255 ms; first message at 260 ms', async () => {
    vi.useFakeTimers({ now: 0 });
    const net = new ScriptedPolling(realEnv, 5);
    const fake = hangingWebSocket(() => Date.now());
    const { sock, cl } = open('http://127.0.0.1:1/rt', { env: fakeEnv(net, fake.ctor), upgrade: false });
    let firstAt = -1;
    sock.on('message', () => firstAt < 0 && (firstAt = Date.now()));
    await vi.advanceTimersByTimeAsync(249);
    expect(net.calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(net.calls.map((c) => [c.method, c.at])).toEqual([['GET', 250]]);
    await vi.advanceTimersByTimeAsync(5);
    expect(sock.state).toBe('open');
    expect(cl.transports).toEqual(['long-polling']);
    expect(fake.made).toHaveLength(1);
    net.push('hello');
    await vi.advanceTimersByTimeAsync(5);
    expect(cl.received).toEqual(['hello']);
    expect(firstAt).toBe(260);
  });

  it('long-polling only × handshake answered 500 three times → reconnects at backoff delays 250, 500, 1000 ms (base 500, random 0.5)', async () => {
    vi.useFakeTimers({ now: 0 });
    let failures = 0;
    const net = new ScriptedPolling(realEnv, 5, (m, url) => (m === 'GET' && isHandshake(url) && failures++ < 3 ? { status: 500, body: '', retryAfter: null } : null));
    const { sock, cl } = open('http://127.0.0.1:1/rt', { transports: [longPolling], env: fakeEnv(net, undefined) });
    await vi.advanceTimersByTimeAsync(5000);
    expect(sock.state).toBe('open');
    expect(cl.reconnecting.map((r) => [r.attempt, r.code, r.delay])).toEqual([
      [1, 1006, 250],
      [2, 1006, 500],
      [3, 1006, 1000],
    ]);
    // Each attempt starts when its delay is over: answered at +5 ms, then the delay.
    expect(net.calls.map((c) => c.at)).toEqual([0, 255, 760, 1765, 1770]);
  });

  it('long-polling only × handshake answered 429 with Retry-After: 2 → next attempt exactly 2000 ms later (max of Retry-After and backoff)', async () => {
    vi.useFakeTimers({ now: 0 });
    let failures = 0;
    const net = new ScriptedPolling(realEnv, 5, (m, url) => (m === 'GET' && isHandshake(url) && failures++ < 1 ? { status: 429, body: '', retryAfter: '2' } : null));
    const { sock, cl } = open('http://127.0.0.1:1/rt', { transports: [longPolling], env: fakeEnv(net, undefined) });
    await vi.advanceTimersByTimeAsync(2004);
    expect(net.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(net.calls.map((c) => c.at)).toEqual([0, 2005]);
    expect(cl.reconnecting.map((r) => [r.code, r.delay])).toEqual([[4429, 2000]]);
    await vi.advanceTimersByTimeAsync(5);
    expect(sock.state).toBe('open');
  });
});
