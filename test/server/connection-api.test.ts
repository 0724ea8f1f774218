/**
 * The server's application API: Connection.send/close and its events, broadcast, serveClient,
 * and attach() to an existing HTTP server. Real clients on both transports.
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { connect, longPolling, webSocket, type Socket } from '../../src/index';
import type { CloseInfo } from '../../src/options';
import { createServer, type Connection } from '../../server/index';
import { waitFor } from '../helpers/server';
import { cleanupAll, defer, echo, healthy, http, plainHttpServer, rawWs, serve, sleep, unhandledWsErrors, upgradeStatus, WS } from '../helpers/raw';

afterEach(cleanupAll);

const FAST = { pingInterval: 200, pingTimeout: 200, sessionTimeout: 500, pollTimeout: 300, allowedOrigins: '*' as const };

function bytes(d: unknown): number[] {
  if (d instanceof ArrayBuffer) return Array.from(new Uint8Array(d));
  if (Buffer.isBuffer(d)) return Array.from(d);
  throw new Error('not binary: ' + Object.prototype.toString.call(d));
}

/** A client on `transport` and the server's Connection for it. */
async function pair(url: string, rt: import('../../server/index').RtServer, transport: typeof webSocket) {
  let conn: Connection | null = null;
  const onConn = (c: Connection): void => {
    conn = c;
  };
  rt.once('connection', onConn);
  const sock = connect(url, { transports: [transport], WebSocket: WS, backoffBase: 20, backoffCap: 100, upgrade: false });
  defer(() => sock.close());
  const events: string[] = [];
  const got: Array<string | ArrayBuffer> = [];
  let closed: CloseInfo | null = null;
  sock.on('open', () => events.push('open'));
  sock.on('reconnecting', (i) => events.push('reconnecting ' + i.code));
  sock.on('session-lost', (i) => events.push('session-lost ' + i.code));
  sock.on('resume', () => events.push('resume'));
  sock.on('close', (i) => ((closed = i), events.push('close ' + i.code)));
  sock.on('message', (d) => got.push(d));
  await waitFor(() => events.includes('open') && conn !== null, 3000, 'open');
  const serverGot: Array<string | Buffer> = [];
  const serverClose: Array<[number, string]> = [];
  conn!.on('message', (d) => serverGot.push(d));
  conn!.on('close', (code, reason) => serverClose.push([code, reason]));
  return { sock: sock as Socket, conn: conn! as Connection, events, got, serverGot, serverClose, closed: () => closed as CloseInfo | null };
}

for (const t of [webSocket, longPolling]) {
  describe('Connection on ' + t.name, () => {
    it('conn.send of a string arrives as a string; Buffer, Uint8Array view and ArrayBuffer arrive as ArrayBuffer with identical bytes', async () => {
      const s = await serve(FAST);
      const p = await pair(s.url, s.rt, t);
      const all = Array.from({ length: 256 }, (_, i) => i);
      const backing = new Uint8Array([9, 9, 1, 2, 3, 0, 255, 9]);
      expect(p.conn.send('héllo ✓ 😀 line\nbreak\r\n\u2028\u0000"\\')).toBe(true);
      expect(p.conn.send(Buffer.from(all))).toBe(true);
      expect(p.conn.send(backing.subarray(2, 7))).toBe(true); // a view with an offset
      expect(p.conn.send(new Uint16Array([0x0102, 0xfffe]))).toBe(true);
      expect(p.conn.send(new Uint8Array([7, 8]).buffer)).toBe(true);
      expect(p.conn.send(new Uint8Array(0))).toBe(true);
      expect(p.conn.send('')).toBe(true);
      await waitFor(() => p.got.length >= 7, 3000, '7 messages');
      expect(p.got[0]).toBe('héllo ✓ 😀 line\nbreak\r\n\u2028\u0000"\\');
      for (const d of p.got.slice(1, 6)) expect(d).toBeInstanceOf(ArrayBuffer);
      expect(bytes(p.got[1])).toEqual(all);
      expect(bytes(p.got[2])).toEqual([1, 2, 3, 0, 255]);
      expect(bytes(p.got[3])).toEqual(Array.from(new Uint8Array(new Uint16Array([0x0102, 0xfffe]).buffer)));
      expect(bytes(p.got[4])).toEqual([7, 8]);
      expect(bytes(p.got[5])).toEqual([]);
      expect(p.got[6]).toBe('');
    });

    it('client strings arrive as strings and client binary arrives at the server as a Buffer with identical bytes', async () => {
      const s = await serve(FAST);
      const p = await pair(s.url, s.rt, t);
      const all = Array.from({ length: 256 }, (_, i) => 255 - i);
      p.sock.send('text ✓');
      p.sock.send(new Uint8Array(all));
      p.sock.send(new Uint8Array([5, 5, 1, 2, 3, 5]).subarray(2, 5));
      p.sock.send(new Uint8Array([4, 2]).buffer);
      await waitFor(() => p.serverGot.length >= 4, 3000, '4 messages');
      expect(p.serverGot[0]).toBe('text ✓');
      for (const d of p.serverGot.slice(1)) expect(Buffer.isBuffer(d)).toBe(true);
      expect(bytes(p.serverGot[1])).toEqual(all);
      expect(bytes(p.serverGot[2])).toEqual([1, 2, 3]);
      expect(bytes(p.serverGot[3])).toEqual([4, 2]);
    });

    // Regression guard: this once failed because src/socket.ts _onServerClose() ends the socket only for 1000 and the
    // codes isRetryable() calls fatal; an application code such as 4000 is "retryable", so the
    // client reconnects, gets 4404, emits 'session-lost' and opens a brand-new session, although
    // PROTOCOL.md says "Either side ends the session with a close frame".
    it("conn.close(4000, 'bye') gives the client a clean close 4000 and no reconnect", async () => {
      const s = await serve(FAST);
      const p = await pair(s.url, s.rt, t);
      p.conn.close(4000, 'bye');
      expect(p.serverClose).toEqual([[4000, 'bye']]);
      await waitFor(() => p.events.length > 1, 3000, 'the next client event');
      expect(p.events[1]).toBe('close 4000');
      expect(p.closed()).toEqual({ code: 4000, reason: 'bye', wasClean: true });
      expect(p.sock.state).toBe('closed');
      await sleep(300);
      expect(p.events).toEqual(['open', 'close 4000']);
      expect(s.rt.clientsCount).toBe(0);
      expect(p.conn.send('late')).toBe(false);
    });

    it('conn.close() (default 1000) closes the client for good with 1000', async () => {
      const s = await serve(FAST);
      const p = await pair(s.url, s.rt, t);
      p.conn.close();
      await waitFor(() => p.closed() !== null, 3000, 'client close');
      expect(p.closed()).toMatchObject({ code: 1000, wasClean: true });
      await sleep(200);
      expect(p.events).toEqual(['open', 'close 1000']);
    });

    it("client.close() fires the server conn 'close' with 1000 and frees the session", async () => {
      // No pings, so no pong POST is in flight when the client closes (see the next test).
      const s = await serve({ ...FAST, pingInterval: 5000, pingTimeout: 5000, sessionTimeout: 5000 });
      const p = await pair(s.url, s.rt, t);
      p.sock.close();
      // Well before any heartbeat or expiry sweep could end it.
      await waitFor(() => p.serverClose.length > 0, 1000, "server conn 'close'");
      expect(p.serverClose).toEqual([[1000, '']]);
      expect(s.rt.clientsCount).toBe(0);
    });

    // On long polling the close frame must follow the POST in flight, not be skipped or aborted.
    it("client.close(4321, 'why') right after send() delivers the message and then the close to the server", async () => {
      const s = await serve({ ...FAST, pingInterval: 5000, pingTimeout: 5000, sessionTimeout: 5000 });
      const p = await pair(s.url, s.rt, t);
      p.sock.send('last words');
      p.sock.close(4321, 'why');
      await waitFor(() => p.serverClose.length > 0, 1000, "server conn 'close'");
      expect(p.serverGot).toEqual(['last words']);
      expect(p.serverClose).toEqual([[4321, 'why']]);
    });

    it("conn emits 'transport' and exposes transport, headers and remoteAddress", async () => {
      const s = await serve(FAST);
      const names: string[] = [];
      s.rt.on('connection', (c) => {
        names.push(c.transport!);
        c.on('transport', (n) => names.push('event ' + n));
      });
      const p = await pair(s.url, s.rt, t);
      expect(p.conn.transport).toBe(t.name);
      expect(p.conn.remoteAddress).toMatch(/127\.0\.0\.1/);
      expect(p.conn.headers.host).toBe('127.0.0.1:' + s.port);
      expect(names[0]).toBe(t.name);
      expect(p.conn.state).toBe('open');
      expect(s.rt.connections()).toEqual([p.conn]);
    });
  });
}

describe('conn.close() while the client is away', () => {
  it('the close frame waits for the client and reaches it when it resumes', async () => {
    const s = await serve(FAST);
    const { startProxy } = await import('../helpers/raw');
    let conn: Connection | null = null;
    s.rt.on('connection', (c) => (conn = c));
    const proxy = await startProxy(s.port);
    const sock = connect('http://127.0.0.1:' + proxy.port + '/rt', { transports: [webSocket], WebSocket: WS, backoffBase: 20, backoffCap: 50, upgrade: false });
    defer(() => sock.close());
    const events: string[] = [];
    sock.on('open', () => events.push('open'));
    sock.on('resume', () => events.push('resume'));
    sock.on('close', (i) => events.push('close ' + i.code + ' ' + i.wasClean));
    await waitFor(() => events.includes('open'), 3000, 'open');
    await proxy.close(); // the client is away and cannot come back yet
    await waitFor(() => conn!.transport === null, 2000, 'detached');
    conn!.close(1000, 'done');
    expect(conn!.state).toBe('closing');
    await startProxy(s.port, proxy.port);
    await waitFor(() => events.some((e) => e.startsWith('close')), 3000, 'client close');
    expect(events).toEqual(['open', 'resume', 'close 1000 true']);
    await waitFor(() => conn!.state === 'closed', 1000, 'session gone');
    expect(s.rt.clientsCount).toBe(0);
  });
});

describe('client with the Node `ws` package', () => {
  // Regression guard: this once failed because transports/websocket/client.ts close() sets ws.onerror = null and then
  // calls ws.close(); on a `ws` WebSocket that is still CONNECTING, close() emits 'error' on the
  // next tick, and with no listener Node throws it as an uncaught exception (a crash in an app).
  it("closing a socket while its WebSocket is still connecting emits no unhandled 'error'", async () => {
    const s = await serve(FAST);
    const before = unhandledWsErrors.length;
    const sock = connect(s.url, { transports: [webSocket], WebSocket: WS });
    sock.close();
    await sleep(50);
    expect(unhandledWsErrors.slice(before)).toEqual([]);
  });
});

describe('broadcast', () => {
  it('reaches every open session on every transport, exactly once, and skips `except`', async () => {
    const s = await serve(FAST);
    const conns: Connection[] = [];
    s.rt.on('connection', (c) => conns.push(c));
    const a = await healthy(s.url, webSocket);
    const b = await healthy(s.url, longPolling);
    const c = await healthy(s.url, webSocket);
    expect(s.rt.clientsCount).toBe(3);
    expect(s.rt.broadcast('to all')).toBe(3);
    expect(s.rt.broadcast(Buffer.from([1, 2, 3]))).toBe(3);
    expect(s.rt.broadcast('not to b', conns[1])).toBe(2);
    await waitFor(() => a.got.length >= 3 && b.got.length >= 2 && c.got.length >= 3, 3000, 'broadcasts');
    await sleep(100);
    for (const h of [a, c]) {
      expect(h.got[0]).toBe('to all');
      expect(bytes(h.got[1])).toEqual([1, 2, 3]);
      expect(h.got[2]).toBe('not to b');
      expect(h.got).toHaveLength(3);
    }
    expect(b.got[0]).toBe('to all');
    expect(bytes(b.got[1])).toEqual([1, 2, 3]);
    expect(b.got).toHaveLength(2);
    // A closed session is no longer counted.
    conns[2].close(4000, 'bye');
    expect(s.rt.broadcast('after one left')).toBe(2);
    await waitFor(() => a.got.length >= 4 && b.got.length >= 3, 3000, 'last broadcast');
  });
});

describe('serveClient', () => {
  it('serves the browser bundle at ${path}/cometsocket.min.js with a JavaScript type, ETag and 304', async () => {
    const file = new URL('../../dist/cometsocket.iife.min.js', import.meta.url);
    const body = readFileSync(file, 'utf8'); // run `npm run build` first if this throws
    const s = await serve({ ...FAST, path: '/live' });
    const r = await http('GET', s.url + '/cometsocket.min.js');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^(application|text)\/javascript/);
    expect(r.body).toBe(body);
    expect(Number(r.headers['content-length'])).toBe(Buffer.byteLength(body));
    const etag = r.headers.etag!;
    expect(etag).toMatch(/^"[^"]+"$/);
    const again = await http('GET', s.url + '/cometsocket.min.js', { headers: { 'If-None-Match': etag } });
    expect(again.status).toBe(304);
    expect(again.body).toBe('');
    const stale = await http('GET', s.url + '/cometsocket.min.js', { headers: { 'If-None-Match': '"other"' } });
    expect(stale.status).toBe(200);
    // Not under another path.
    expect((await http('GET', s.origin + '/rt/cometsocket.min.js')).status).toBe(404);
  });

  it('with serveClient: false the bundle is not served', async () => {
    const s = await serve({ ...FAST, serveClient: false });
    expect((await http('GET', s.url + '/cometsocket.min.js')).status).toBe(404);
    expect((await http('GET', s.url + '/cometsocket.js')).status).toBe(404);
  });
});

describe('attach()', () => {
  it("leaves an existing HTTP server's other routes and upgrades working, during and after", async () => {
    const { server, port } = await plainHttpServer((req, res) => {
      res.writeHead(req.url === '/hello' ? 200 : 404, { 'Content-Type': 'text/plain' });
      res.end(req.url === '/hello' ? 'hello ' + req.method : 'app 404');
    });
    // The application's own WebSocket endpoint, on its own upgrade listener.
    const chat = new WebSocketServer({ noServer: true });
    defer(() => chat.close());
    chat.on('connection', (w) => w.on('message', (d) => w.send('chat:' + d.toString())));
    server.on('upgrade', (req, socket, head) => {
      if (req.url === '/chat') chat.handleUpgrade(req, socket, head, (w) => chat.emit('connection', w, req));
      else if (!req.url!.startsWith('/rt/')) socket.destroy();
    });
    const origin = 'http://127.0.0.1:' + port;
    expect((await http('GET', origin + '/hello')).body).toBe('hello GET');

    const rt = createServer({ ...FAST }).attach(server);
    let rtClosed = false;
    defer(() => !rtClosed && new Promise<void>((r) => rt.close(() => r())));
    echo(rt);
    const h = await healthy(origin + '/rt', webSocket);
    const h2 = await healthy(origin + '/rt', longPolling);
    await h.exchange('attached');
    await h2.exchange('attached');

    const hello = await http('POST', origin + '/hello', { body: 'x' });
    expect([hello.status, hello.body]).toEqual([200, 'hello POST']);
    const miss = await http('GET', origin + '/elsewhere');
    expect([miss.status, miss.body]).toEqual([404, 'app 404']);
    const raw = rawWs(origin + '/chat');
    await raw.opened;
    raw.ws.send('hi');
    await waitFor(() => raw.messages.includes('chat:hi'), 2000, 'chat echo');
    // The application's listener still sees upgrades outside the path.
    await expect(upgradeStatus(origin + '/unknown')).rejects.toThrow(/socket hang up|ECONNRESET/);
    expect(await upgradeStatus(origin + '/rt/nope?v=1')).toBe(501);

    await new Promise<void>((r) => rt.close(() => r()));
    rtClosed = true;
    // The HTTP server is not ours: still listening, its routes intact.
    expect(server.listening).toBe(true);
    expect((await http('GET', origin + '/hello')).body).toBe('hello GET');
    const after = await http('GET', origin + '/rt/long-polling?v=1');
    expect([after.status, after.body]).toEqual([404, 'app 404']);
  });

  it('handleRequest / handleUpgrade work as middleware and return false outside the path', async () => {
    const rt = createServer({ ...FAST });
    defer(() => new Promise<void>((r) => rt.close(() => r())));
    echo(rt);
    const seen: string[] = [];
    const { server, port } = await plainHttpServer((req, res) => {
      if (rt.handleRequest(req, res)) return;
      seen.push(req.url!);
      res.end('app');
    });
    server.on('upgrade', (req, socket, head) => {
      if (!rt.handleUpgrade(req, socket, head)) socket.destroy();
    });
    const origin = 'http://127.0.0.1:' + port;
    expect((await http('GET', origin + '/other')).body).toBe('app');
    expect(seen).toEqual(['/other']);
    const h = await healthy(origin + '/rt', webSocket);
    await h.exchange('middleware');
    const h2 = await healthy(origin + '/rt', longPolling);
    await h2.exchange('middleware');
  });
});
