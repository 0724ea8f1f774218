/**
 * Native binary messages on WebSocket (PROTOCOL.md, "Binary messages"): bytes travel as one
 * binary message each, never as base64, both ways; text transports carry the same bytes as base64;
 * limits count the text form on every transport; a session that changes transport replays bytes
 * exactly once in whichever form the new transport carries.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connect, longPolling, webSocket } from '../../src/index';
import { binaryLineLength, encodeBinary } from '../../src/frame';
import type { WebSocketConstructor, WebSocketLike } from '../../src/env';
import type { Connection } from '../../server/index';
import type { ServerOptions } from '../../server/options';
import { waitFor } from '../helpers/server';
import { cleanupAll, defer, http, lpHandshake, rawWs, serve, WS } from '../helpers/raw';

afterEach(cleanupAll);

const FAST: ServerOptions = { pingInterval: 5000, pingTimeout: 5000, sessionTimeout: 2000, pollTimeout: 300, allowedOrigins: '*' };

const firstConn = (rt: { on(e: 'connection', f: (c: Connection) => void): unknown }): Promise<Connection> => new Promise((resolve) => rt.on('connection', resolve));

/** A `ws` client WebSocket that records the type of every message it sends and receives. */
function tapped(log: { sent: string[]; got: string[] }): WebSocketConstructor {
  return class extends (WS as unknown as new (url: string) => WebSocketLike & { addEventListener(t: string, f: (e: { data: unknown }) => void): void }) {
    constructor(url: string) {
      super(url);
      this.addEventListener('message', (e) => log.got.push(typeof e.data === 'string' ? 'text' : 'binary'));
    }
    override send(d: string | Uint8Array): void {
      log.sent.push(typeof d === 'string' ? 'text' : 'binary');
      super.send(d);
    }
  } as unknown as WebSocketConstructor;
}

describe('raw WebSocket peer', () => {
  it('server bytes arrive as one binary message: the header without d, LF, the raw bytes', async () => {
    const s = await serve(FAST);
    const conn = firstConn(s.rt);
    const raw = rawWs(s.url + '/websocket?v=1');
    await raw.openFrame();
    const bytes = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff);
    (await conn).send(bytes);
    await waitFor(() => raw.binaries.length === 1, 3000, 'a binary message');
    const m = raw.binaries[0];
    const nl = m.indexOf(10);
    expect(m.subarray(0, nl).toString()).toBe('{"t":"d","s":1,"b":1}');
    expect(Buffer.compare(m.subarray(nl + 1), Buffer.from(bytes))).toBe(0);
    expect(raw.messages.filter((x) => x !== '<binary>' && x.includes('"d"'))).toEqual([]);
  });

  it('a binary data frame from the client reaches the application as a Buffer, and is acknowledged', async () => {
    const s = await serve(FAST);
    const conn = firstConn(s.rt);
    const raw = rawWs(s.url + '/websocket?v=1');
    await raw.openFrame();
    const got: Array<string | Buffer> = [];
    (await conn).on('message', (d) => got.push(d));
    raw.ws.send(Buffer.from(encodeBinary(1, new Uint8Array([0, 10, 255]))));
    raw.ws.send('{"t":"d","s":2,"d":"text"}');
    raw.ws.send(Buffer.from(encodeBinary(3, new Uint8Array(0))));
    await waitFor(() => got.length === 3, 3000, 'three messages');
    expect(got.map((d) => (typeof d === 'string' ? d : Array.from(d)))).toEqual([[0, 10, 255], 'text', []]);
    await waitFor(() => raw.messages.some((m) => m.includes('"t":"a","a":3')), 3000, 'ack 3');
  });

  it('a binary replay of a delivered sequence number is dropped, a gap is refused', async () => {
    const s = await serve(FAST);
    const conn = firstConn(s.rt);
    const raw = rawWs(s.url + '/websocket?v=1');
    await raw.openFrame();
    const got: Array<string | Buffer> = [];
    (await conn).on('message', (d) => got.push(d));
    raw.ws.send(Buffer.from(encodeBinary(1, new Uint8Array([1]))));
    raw.ws.send(Buffer.from(encodeBinary(1, new Uint8Array([1]))));
    raw.ws.send(Buffer.from(encodeBinary(3, new Uint8Array([3]))));
    expect((await raw.closeFrame()).c).toBe(4409);
    expect(got.length).toBe(1);
  });

  for (const over of [false, true]) {
    it(`a binary message whose text form is ${over ? 'one byte over' : 'exactly'} maxPayload is ${over ? 'refused with 4413' : 'delivered'}`, async () => {
      const maxPayload = 1000;
      const s = await serve({ ...FAST, maxPayload });
      const conn = firstConn(s.rt);
      const raw = rawWs(s.url + '/websocket?v=1');
      await raw.openFrame();
      const got: Buffer[] = [];
      (await conn).on('message', (d) => got.push(d as Buffer));
      // The largest n whose text form fits (base64 grows in steps of 4 per 3 bytes).
      let n = 0;
      while (binaryLineLength(1, n + 1) <= maxPayload) n++;
      const size = over ? n + 3 : n;
      expect(binaryLineLength(1, size) > maxPayload).toBe(over);
      raw.ws.send(Buffer.from(encodeBinary(1, new Uint8Array(size))));
      if (over) {
        expect((await raw.closeFrame()).c).toBe(4413);
        expect((await raw.closed).code).toBe(4413);
      } else {
        await waitFor(() => got.length === 1, 3000, 'the message');
        expect(got[0].length).toBe(size);
      }
    });
  }

  it('long polling carries the same server bytes as base64 in a text data frame', async () => {
    const s = await serve(FAST);
    const conn = firstConn(s.rt);
    const lp = await lpHandshake(s.url);
    (await conn).send(new Uint8Array([1, 2, 3, 250]));
    const r = await http('GET', lp.base + '&ack=0');
    expect(r.body.split('\n').map((l) => JSON.parse(l))).toContainEqual({ t: 'd', s: 1, d: Buffer.from([1, 2, 3, 250]).toString('base64'), b: 1 });
  });
});

describe('the client', () => {
  it('sends and receives bytes on WebSocket as binary messages, never base64, 200 each way in order', async () => {
    const s = await serve(FAST);
    s.rt.on('connection', (c) => c.on('message', (d) => c.send(d)));
    const log = { sent: [] as string[], got: [] as string[] };
    const sock = connect(s.url, { transports: [webSocket], WebSocket: tapped(log), upgrade: false });
    defer(() => sock.close());
    const got: Array<string | ArrayBuffer> = [];
    sock.on('message', (d) => got.push(d));
    const n = 200;
    for (let i = 0; i < n; i++) sock.send(i % 2 ? new Uint8Array([i & 0xff, i >> 8, 10, 0]) : 'm' + i);
    await waitFor(() => got.length === n, 5000, n + ' echoes');
    for (let i = 0; i < n; i++) {
      const d = got[i];
      if (i % 2) expect(Array.from(new Uint8Array(d as ArrayBuffer))).toEqual([i & 0xff, i >> 8, 10, 0]);
      else expect(d).toBe('m' + i);
    }
    // Every odd message went and came back as a binary message of its own.
    expect(log.sent.filter((t) => t === 'binary').length).toBe(n / 2);
    expect(log.got.filter((t) => t === 'binary').length).toBe(n / 2);
  });

  it('bytes lost with a dying WebSocket are replayed as base64 on long polling, exactly once', async () => {
    // A long ack delay: the first messages are received but not yet acknowledged when the cut comes.
    const s = await serve({ ...FAST, ackDelay: 1000 });
    const serverGot: Array<string | Buffer> = [];
    const conns: Connection[] = [];
    s.rt.on('connection', (c) => {
      conns.push(c);
      c.on('message', (d) => serverGot.push(d));
    });
    // The WebSocket loses what it is given once `drop` is set (a connection dying mid-write), and
    // once `refuse` is set no WebSocket can reach the server: the session resumes on long polling.
    let drop = false;
    let refuse = false;
    let dropped = 0;
    const Flaky = class extends (WS as unknown as new (url: string) => WebSocketLike) {
      constructor(url: string) {
        super(refuse ? url.replace('/websocket', '/no-such-transport') : url);
      }
      override send(d: string | Uint8Array): void {
        if (drop && typeof d !== 'string') dropped++;
        else super.send(d);
      }
    } as unknown as WebSocketConstructor;
    const sock = connect(s.url, { transports: [webSocket, longPolling], WebSocket: Flaky, upgrade: false, parallelFallback: false, headStart: 50, backoffBase: 20, backoffCap: 50 });
    defer(() => sock.close());
    await waitFor(() => sock.state === 'open', 3000, 'open');
    expect(sock.transport).toBe('websocket');
    const n = 50;
    const msg = (i: number): Uint8Array => new Uint8Array([i, 255 - i, 10]);
    for (let i = 0; i < 10; i++) sock.send(msg(i));
    await waitFor(() => serverGot.length === 10, 3000, 'the first 10 over WebSocket');
    drop = true;
    for (let i = 10; i < n; i++) sock.send(msg(i));
    await waitFor(() => dropped === n - 10, 3000, 'the other 40 lost on the WebSocket');
    refuse = true;
    for (const c of conns) c.link?.end(-1);
    await waitFor(() => serverGot.length >= n && sock.transport === 'long-polling', 8000, 'all messages, on long polling');
    await waitFor(() => sock.bufferedAmount === 0, 5000, 'everything acknowledged');
    expect(serverGot.length).toBe(n);
    serverGot.forEach((d, i) => expect(Array.from(d as Buffer)).toEqual(Array.from(msg(i))));
    expect(conns.length).toBe(1);
  });
});
