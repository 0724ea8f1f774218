import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { connect, longPolling, webSocket, type Socket } from '../../src/index';
import type { WebSocketConstructor } from '../../src/env';
import { startServer, waitFor, type TestServer } from '../helpers/server';

let srv: TestServer | null = null;
let sock: Socket | null = null;
afterEach(async () => {
  sock?.close();
  await srv?.close();
  srv = sock = null;
});

for (const t of [webSocket, longPolling]) {
  describe(t.name, () => {
    it('echoes 1000 messages each way in order', async () => {
      srv = await startServer();
      srv.rt.on('connection', (c) => c.on('message', (d) => c.send(d)));
      const got: string[] = [];
      sock = connect(srv.url, { transports: [t], WebSocket: WebSocket as unknown as WebSocketConstructor });
      sock.on('message', (d) => got.push(d as string));
      for (let i = 0; i < 1000; i++) sock.send('m' + i);
      await waitFor(() => got.length >= 1000, 10000, '1000 echoes');
      expect(got).toEqual(Array.from({ length: 1000 }, (_, i) => 'm' + i));
      expect(sock.transport).toBe(t.name);
    });
  });
}
