/**
 * The networks a page reaches its server through, all on 127.0.0.1. The page is loaded through
 * the network too, so the network's address is the page's origin:
 *  - direct           no middlebox;
 *  - nginx            a real nginx (/usr/sbin/nginx, Debian) with a default config: `location / {
 *                     proxy_pass … }` and nothing else (HTTP/1.0 upstream, Upgrade dropped, Host
 *                     rewritten, responses buffered unless the upstream says X-Accel-Buffering: no);
 *  - dropUpgrades     a firewall that closes WebSocket upgrade connections at once
 *                     (test/browser/proxy.ts);
 *  - swallowUpgrades  a firewall that accepts them and never answers (proxy.ts);
 *  - buffer           a proxy that holds every response whole until it ends (proxy.ts; upgrades
 *                     dropped: a buffering proxy does not speak WebSocket);
 *  - reset            a TCP proxy (test/chaos/fault-proxy.ts) that resets every connection it
 *                     carries (RST both ways) every 1.5 s, on a fixed clock from its start.
 */
import { existsSync } from 'node:fs';
import { defaultBlock, NGINX, startNginx } from '../../test/browser/nginx';
import { startProxy } from '../../test/browser/proxy';
import { FaultProxy } from '../../test/chaos/fault-proxy';

export type NetName = 'direct' | 'nginx' | 'dropUpgrades' | 'swallowUpgrades' | 'buffer' | 'reset';
export const NETWORKS: readonly NetName[] = ['direct', 'nginx', 'dropUpgrades', 'swallowUpgrades', 'buffer', 'reset'];

/** Period of the reset link, ms. */
export const RESET_EVERY = 1500;

/** The best transport each network lets through (for the reader of the table; not measured). */
export const BEST: Record<NetName, string> = {
  direct: 'websocket',
  nginx: 'streaming (sse)',
  dropUpgrades: 'streaming (sse)',
  swallowUpgrades: 'streaming (sse)',
  buffer: 'long-polling',
  reset: 'websocket',
};

export interface Network {
  readonly name: NetName;
  /** http://127.0.0.1:PORT: the page's origin. */
  readonly origin: string;
  /** Connections reset so far (the reset link; 0 elsewhere). */
  readonly resets: number;
  /** Reset ticks so far (the reset link). */
  readonly ticks: number;
  close(): Promise<void>;
}

/** Whether nginx can be used here. */
export function haveNginx(): boolean {
  return existsSync(NGINX);
}

/** nginx in the foreground, default config (proxy_pass only) in front of 127.0.0.1:`upstream`. */
async function startDefaultNginx(upstream: number): Promise<Network> {
  const n = await startNginx(defaultBlock(upstream));
  return { name: 'nginx', origin: n.origin, resets: 0, ticks: 0, close: () => n.close() };
}

async function startResetLink(upstream: number): Promise<Network> {
  const p = await FaultProxy.start(upstream);
  let resets = 0;
  let ticks = 0;
  const timer = setInterval(() => {
    ticks++;
    resets += p.reset('all');
  }, RESET_EVERY);
  return {
    name: 'reset',
    origin: p.url,
    get resets() {
      return resets;
    },
    get ticks() {
      return ticks;
    },
    async close() {
      clearInterval(timer);
      await p.close();
    },
  };
}

/** Open network `name` in front of the server at `target` (http://127.0.0.1:PORT). */
export async function openNetwork(name: NetName, target: string): Promise<Network> {
  const port = Number(new URL(target).port);
  switch (name) {
    case 'direct':
      return { name, origin: target, resets: 0, ticks: 0, close: () => Promise.resolve() };
    case 'nginx':
      return startDefaultNginx(port);
    case 'reset':
      return startResetLink(port);
    default: {
      const proxy = await startProxy(name, target);
      return { name, origin: proxy.origin, resets: 0, ticks: 0, close: () => proxy.close() };
    }
  }
}
