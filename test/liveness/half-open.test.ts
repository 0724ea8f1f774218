/**
 * Half-open connections: a TCP proxy on 127.0.0.1:0 between a client (WebSocket, `ws` under Node)
 * and the reference server silently stops forwarding: no FIN, no RST, both sockets stay open.
 * Only heartbeats can tell. Measured and asserted:
 *  - the client notices within hb + hto of the last frame it heard (the open frame's hb/hto);
 *  - the server notices within pingInterval + pingTimeout of the last frame it heard, plus its
 *    sweep period;
 *  - the client then resumes the session on a new connection and every message either side sent
 *    into the dead connection arrives exactly once, in order.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connect, longPolling, webSocket, type Transport } from '../../src/index';
import type { SocketOptions } from '../../src/options';
import type { Connection } from '../../server/index';
import { waitFor } from '../helpers/server';
import { cleanupAll, defer, serve, sleep, WS } from '../helpers/raw';
import { startSilentProxy, type Pair } from './proxy';

afterEach(cleanupAll);

const PING_INTERVAL = 1000;
const PING_TIMEOUT = 500;
const LIMIT = PING_INTERVAL + PING_TIMEOUT;
/** The server's sweep runs every min(1000, max(10, pingInterval / 4)) ms. */
const SWEEP = Math.min(1000, Math.max(10, PING_INTERVAL / 4));
/** Timer and scheduling slack on a loaded 2-core runner. */
const SLACK = 400;
/** Reconnect delay: backoff window 2 s with random 0.99, so the server detects before the client comes back. */
const RECONNECT = 1980;

const seq = (p: string, n: number): string[] => Array.from({ length: n }, (_, i) => p + (i + 1));

const CASES: Array<{ transport: Transport; options?: SocketOptions }> = [
  { transport: webSocket },
  // requestTimeout above hb + hto, so the heartbeat is what detects (a POST into the dead
  // connection would otherwise time out first), yet bounded: fetch may reuse a pooled keep-alive
  // connection that went silent too (a browser's connection pool behaves the same).
  { transport: longPolling, options: { requestTimeout: LIMIT + SLACK + 500 } },
];

describe('half-open connection (silent proxy: no FIN, no RST)', () => {
  for (const { transport, options } of CASES) {
    it(`${transport.name}: client detects within hb + hto (${LIMIT} ms), server within pingInterval + pingTimeout + sweep; the session resumes with nothing lost`, async () => {
      const srv = await serve({ allowedOrigins: '*', pingInterval: PING_INTERVAL, pingTimeout: PING_TIMEOUT, pollTimeout: 900, sessionTimeout: 30000 });
      const conns: Connection[] = [];
      const serverGot: string[] = [];
      srv.rt.on('connection', (c) => {
        conns.push(c);
        c.on('message', (d) => serverGot.push(String(d)));
      });
      const proxy = await startSilentProxy(srv.port);
      defer(() => proxy.close());
      const sock = connect('http://127.0.0.1:' + proxy.port + '/rt', {
        transports: [transport],
        WebSocket: WS,
        upgrade: false,
        backoffBase: 2000,
        backoffCap: 2000,
        env: { random: () => 0.99 },
        ...options,
      });
      defer(() => sock.state !== 'closed' && sock.close());
      const got: string[] = [];
      const events: Array<{ e: string; at: number; code?: number }> = [];
      sock.on('message', (d) => got.push(String(d)));
      sock.on('open', () => events.push({ e: 'open', at: performance.now() }));
      sock.on('resume', () => events.push({ e: 'resume', at: performance.now() }));
      sock.on('session-lost', (i) => events.push({ e: 'session-lost', at: performance.now(), code: i.code }));
      sock.on('reconnecting', (i) => events.push({ e: 'reconnecting', at: performance.now(), code: i.code }));
      sock.on('close', (i) => events.push({ e: 'close', at: performance.now(), code: i.code }));
      await waitFor(() => sock.state === 'open' && conns.length === 1, 3000, 'open');
      const conn = conns[0];
      const sid = sock.id;

      for (const m of seq('c-before-', 5)) sock.send(m);
      for (const m of seq('s-before-', 5)) conn.send(m);
      await waitFor(() => got.length === 5 && serverGot.length === 5, 3000, 'exchange');
      await waitFor(() => sock.bufferedAmount === 0 && conn.bufferedAmount === 0, 3000, 'acknowledged');

      // Go silent right after a ping and the client's answer went through, so both sides last
      // heard each other at about the same moment (the measure is taken from those moments anyway).
      const pinged = new Promise<void>((resolve) => {
        const watch = (p: Pair): void => {
          p.onDown = (c) => {
            if (c.toString().includes('"t":"p"')) resolve();
          };
        };
        proxy.pairs.forEach(watch);
        proxy.onPair = watch;
      });
      const wait = PING_INTERVAL + SWEEP + 1000;
      await Promise.race([pinged, sleep(wait).then(() => Promise.reject(new Error('no ping within ' + wait + ' ms')))]);
      await sleep(20); // the pong (and a long poll's next poll) go out
      const t0 = performance.now();
      const silenced = proxy.silence();
      expect(silenced.length).toBeGreaterThan(0);
      const lastDown = Math.max(...silenced.map((p) => p.lastDown));
      const lastUp = Math.max(...silenced.map((p) => p.lastUp));

      // The server dropping the transport, sampled every 2 ms.
      let serverAt = -1;
      const sampler = setInterval(() => {
        if (serverAt < 0 && conn.transport === null) serverAt = performance.now();
      }, 2);
      defer(() => clearInterval(sampler));

      // Both sides write into the dead connection.
      for (const m of seq('c-void-', 5)) sock.send(m);
      for (const m of seq('s-void-', 5)) conn.send(m);

      // Client side: a 'reconnecting' with 4408 (heartbeat).
      await waitFor(() => events.some((e) => e.e === 'reconnecting'), LIMIT + SLACK + 1000, 'the client to detect the dead connection');
      const rc = events.find((e) => e.e === 'reconnecting')!;
      const clientMs = rc.at - lastDown;
      // Server side: the session loses its transport (not the session).
      await waitFor(() => serverAt >= 0, LIMIT + SWEEP + SLACK + 1000, 'the server to detect the dead connection');
      const serverMs = serverAt - lastUp;
      expect(conn.state).toBe('open');
      if (transport === webSocket) {
        // The server terminated its socket (the proxy saw its side close) and nothing reached the client.
        await waitFor(() => silenced[0].upstreamClosedAt >= 0, 1000, 'the server to terminate the WebSocket');
        expect(silenced[0].upstreamClosedAt - serverAt).toBeLessThan(50);
        expect(silenced[0].clientClosedAt).toBe(-1);
      }

      console.log(
        `[half-open] ${transport.name}: hb + hto = ${LIMIT} ms. client detected ${clientMs.toFixed(0)} ms after the last frame it heard ` +
          `(${(rc.at - t0).toFixed(0)} ms after the cut); server detected ${serverMs.toFixed(0)} ms after the last frame it heard ` +
          `(${(serverAt - t0).toFixed(0)} ms after the cut; sweep every ${SWEEP} ms)`,
      );
      expect(rc.code).toBe(4408);
      expect(clientMs).toBeGreaterThanOrEqual(LIMIT - 20);
      expect(clientMs).toBeLessThanOrEqual(LIMIT + SLACK);
      expect(serverMs).toBeGreaterThanOrEqual(LIMIT);
      expect(serverMs).toBeLessThanOrEqual(LIMIT + SWEEP + SLACK);

      // The client comes back on a new connection and resumes: nothing lost, nothing twice.
      await waitFor(() => events.some((e) => e.e === 'resume'), RECONNECT + 5000, 'resume');
      const resumedAfter = events.find((e) => e.e === 'resume')!.at - rc.at;
      console.log(`[half-open] ${transport.name}: resumed ${resumedAfter.toFixed(0)} ms after detection (reconnect delay ${RECONNECT} ms)`);
      expect(proxy.accepted).toBeGreaterThan(silenced.length);
      expect(sock.id).toBe(sid);
      expect(conns.length).toBe(1);
      await waitFor(() => got.length === 10 && serverGot.length === 10, 3000, 'messages sent into the dead connection');
      await sleep(100);
      expect(got).toEqual([...seq('s-before-', 5), ...seq('s-void-', 5)]);
      expect(serverGot).toEqual([...seq('c-before-', 5), ...seq('c-void-', 5)]);
      expect(events.map((e) => e.e)).toEqual(['open', 'reconnecting', 'resume']);
      expect(conn.transport).toBe(transport.name);
    });
  }
});
