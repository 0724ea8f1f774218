/**
 * Options as a page without types passes them: every bad value is a TypeError at connect(), not a
 * socket that misbehaves later (a NaN backoff reconnected ~600 times a second). And a timeout of
 * Infinity means "never", not "at once" (hosts fire delays over 2^31 - 1 ms immediately).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connect, longPolling, Socket, webSocket, type SocketOptions } from '../../src/index';
import { startServer, waitFor, type TestServer } from '../helpers/server';

const noNetwork = { env: { WebSocket: undefined, request: undefined } };

describe('connect() rejects bad options with a TypeError naming them', () => {
  const bad: Array<[string, unknown, RegExp]> = [
    ['backoffBase', NaN, /option backoffBase must be a number >= 0, not number NaN/],
    ['headStart', '250', /option headStart must be a number >= 0, not string 250/],
    ['maxAttempts', -1, /option maxAttempts must be a number >= 0/],
    ['connectTimeout', null, /option connectTimeout must be a number >= 0, not object null/],
    ['upgrade', 'false', /option upgrade must be a boolean, not string false/],
    ['parallelFallback', 0, /option parallelFallback must be a boolean/],
    ['shouldRetry', true, /shouldRetry must be a function/],
    ['transports', ['websocket'], /transports\[0\] is not a transport: pass e.g. CometSocket.webSocket, not its name/],
    ['transports', [webSocket, undefined], /transports\[1\] is not a transport/],
  ];
  for (const [k, v, msg] of bad) {
    it(`${k}: ${String(v)}`, () => {
      expect(() => connect('http://127.0.0.1:1/rt', { ...noNetwork, [k]: v } as SocketOptions)).toThrow(TypeError);
      expect(() => connect('http://127.0.0.1:1/rt', { ...noNetwork, [k]: v } as SocketOptions)).toThrow(msg);
    });
  }

  it('a url that is not a string', () => {
    expect(() => new Socket(undefined as unknown as string, { transports: [longPolling] })).toThrow(/cometsocket: url must be a string/);
  });

  it('accepts every default written out, Infinity and 0 where they mean something', () => {
    const s = connect('http://127.0.0.1:1/rt', { ...noNetwork, maxAttempts: Infinity, rememberFor: 0, headStart: 0, upgrade: false, parallelFallback: true, connectTimeout: Infinity });
    s.close();
  });
});

describe('a timeout of Infinity', () => {
  let srv: TestServer;
  let sock: Socket | undefined;
  afterEach(async () => {
    sock?.close();
    await srv?.close();
  });

  it('requestTimeout: Infinity → long polling connects and echoes (each request was timed out at once)', async () => {
    srv = await startServer();
    srv.rt.on('connection', (c) => c.on('message', (m) => c.send(m)));
    const got: unknown[] = [];
    const events: string[] = [];
    sock = connect(srv.url, { transports: [longPolling], requestTimeout: Infinity, connectTimeout: Infinity, maxAttempts: 2 });
    sock.on('message', (m) => got.push(m));
    for (const e of ['open', 'reconnecting', 'close'] as const) sock.on(e, () => events.push(e));
    sock.send('hello');
    await waitFor(() => got.length === 1 || events.includes('close'), 5000, 'the echo');
    expect(events).toEqual(['open']);
    expect(got).toEqual(['hello']);
  });
});
