/**
 * A TCP proxy on 127.0.0.1 (port 0) for liveness tests. `silence()` turns every connection open
 * at that moment half-open: from then on it forwards nothing in either direction and passes on no
 * FIN and no RST (both sockets stay open, what arrives is dropped, a close on one side is not
 * shown to the other), as when a NAT box forgets a mapping or a laptop's network vanishes.
 * Connections accepted afterwards forward normally, to the current target (`retarget()` points new
 * connections at another server, e.g. a restarted one). Every socket it creates is destroyed by
 * `close()`.
 */
import { createServer, connect as netConnect, type AddressInfo, type Socket } from 'node:net';

export interface Pair {
  /** The client's socket (accepted by the proxy). */
  client: Socket;
  /** The proxy's socket to the server. */
  upstream: Socket;
  silent: boolean;
  /** performance.now() of the last chunk forwarded client → server, or -1. */
  lastUp: number;
  /** performance.now() of the last chunk forwarded server → client, or -1. */
  lastDown: number;
  /** performance.now() when the server's side closed (FIN, RST or error), or -1. */
  upstreamClosedAt: number;
  /** performance.now() when the client's side closed, or -1. */
  clientClosedAt: number;
  /** Called with each chunk forwarded server → client (while not silent). */
  onDown?: (chunk: Buffer) => void;
  /** Called with each chunk forwarded client → server (while not silent). */
  onUp?: (chunk: Buffer) => void;
}

export interface SilentProxy {
  port: number;
  /** Connections ever accepted (forwarded or held). */
  readonly accepted: number;
  /** Every forwarded connection, oldest first (closed ones included). */
  readonly pairs: Pair[];
  /** Make every open connection half-open (silent, no FIN/RST); returns them. */
  silence(): Pair[];
  /** Destroy every open connection, both sides, at once (the client sees the connection drop). */
  cut(): number;
  /** New connections go to this port from now on. */
  retarget(port: number): void;
  /** Called for every new connection (after it is set up). */
  onPair?: (p: Pair) => void;
  /**
   * While true, new connections are accepted and then held: nothing is forwarded and nothing is
   * answered (a connection attempt that hangs). Counted in `accepted` and `held`.
   */
  holdNew: boolean;
  /** Connections accepted while `holdNew` was true. */
  readonly held: number;
  close(): Promise<void>;
}

export async function startSilentProxy(targetPort: number): Promise<SilentProxy> {
  let target = targetPort;
  const pairs: Pair[] = [];
  const sockets = new Set<Socket>();
  let held = 0;
  const server = createServer((client) => {
    if (proxy.holdNew) {
      held++;
      sockets.add(client);
      client.on('error', () => {}).on('close', () => sockets.delete(client));
      client.resume(); // read and drop
      return;
    }
    const upstream = netConnect(target, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const p: Pair = { client, upstream, silent: false, lastUp: -1, lastDown: -1, upstreamClosedAt: -1, clientClosedAt: -1 };
    pairs.push(p);
    client.on('data', (d: Buffer) => {
      if (p.silent) return;
      p.lastUp = performance.now();
      if (p.onUp) p.onUp(d);
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (p.silent) return;
      p.lastDown = performance.now();
      if (p.onDown) p.onDown(d);
      client.write(d);
    });
    const gone = (side: 'client' | 'upstream') => (): void => {
      sockets.delete(side === 'client' ? client : upstream);
      if (side === 'client' && p.clientClosedAt < 0) p.clientClosedAt = performance.now();
      if (side === 'upstream' && p.upstreamClosedAt < 0) p.upstreamClosedAt = performance.now();
      // Half-open: the other side learns nothing.
      if (!p.silent) (side === 'client' ? upstream : client).destroy();
    };
    client.on('error', () => {}).on('close', gone('client'));
    upstream.on('error', () => {}).on('close', gone('upstream'));
    if (proxy.onPair) proxy.onPair(p);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  let closing: Promise<void> | null = null;
  const proxy: SilentProxy = {
    port: (server.address() as AddressInfo).port,
    get accepted() {
      return pairs.length + held;
    },
    get held() {
      return held;
    },
    holdNew: false,
    pairs,
    silence() {
      const now: Pair[] = [];
      for (const p of pairs) {
        if (p.silent || p.clientClosedAt >= 0 || p.upstreamClosedAt >= 0) continue;
        p.silent = true;
        now.push(p);
      }
      return now;
    },
    cut() {
      let n = 0;
      for (const p of pairs) {
        if (p.clientClosedAt >= 0 && p.upstreamClosedAt >= 0) continue;
        n++;
        p.silent = false;
        p.client.destroy();
        p.upstream.destroy();
      }
      return n;
    },
    retarget(port) {
      target = port;
    },
    close() {
      return (closing ||= new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        sockets.clear();
        server.close(() => r());
      }));
    },
  };
  return proxy;
}
