/** `debug: true` writes each decision through the environment's log (console.debug by default). */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { connect, webSocket } from '../../src/index';
import { waitFor } from '../helpers/server';
import { cleanupAll, defer, serve, WS } from '../helpers/raw';

afterEach(cleanupAll);

describe('debug option', () => {
  it('debug: true logs every decision through env.log; debug: false logs nothing', async () => {
    const s = await serve({ allowedOrigins: '*' });
    const on: string[] = [];
    const off: string[] = [];
    const a = connect(s.url, { transports: [webSocket], WebSocket: WS, debug: true, env: { log: (m) => on.push(m) } });
    const b = connect(s.url, { transports: [webSocket], WebSocket: WS, debug: false, env: { log: (m) => off.push(m) } });
    defer(() => a.close());
    defer(() => b.close());
    await waitFor(() => a.state === 'open' && b.state === 'open', 3000, 'both open');
    expect(on[0]).toBe('try websocket (new session)');
    expect(on.some((m) => m.startsWith('websocket carries session '))).toBe(true);
    expect(off).toEqual([]);
  });

  it('by default env.log is console.debug with a prefix', async () => {
    const spy = vi.spyOn(console, 'debug').mockImplementation(() => {});
    try {
      const s = await serve({ allowedOrigins: '*' });
      const a = connect(s.url, { transports: [webSocket], WebSocket: WS, debug: true });
      defer(() => a.close());
      await waitFor(() => a.state === 'open', 3000, 'open');
      expect(spy.mock.calls.map((c) => c[0])).toContain('[cometsocket] try websocket (new session)');
    } finally {
      spy.mockRestore();
    }
  });
});
