/**
 * Echo throughput: `n` messages with `window` of them in flight. Returns messages per second, and
 * the CPU time client and server spent per message, µs: on a shared machine the rate moves with
 * the neighbours' load, the CPU cost much less.
 */
import type { Client } from '../clients';
import type { Servers } from '../servers';
import { within } from '../util';

function ownCpu(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

export async function throughput(client: Client, servers: Servers, n: number, window: number, payload: string | Uint8Array, ms: number): Promise<[number, number]> {
  const conn = await within(ms, client.name + ' dial', client.dial(servers.ports));
  try {
    const serverCpu = await servers.cpuTime();
    const clientCpu = ownCpu();
    const seconds = await within(
      ms,
      client.name + ' throughput',
      new Promise<number>((resolve) => {
        let sent = 0;
        let got = 0;
        const t0 = performance.now();
        conn.onmessage = () => {
          if (++got === n) resolve((performance.now() - t0) / 1000);
          else if (sent < n) conn.send(payload), sent++;
        };
        while (sent < Math.min(window, n)) conn.send(payload), sent++;
      }),
    );
    const cpu = ownCpu() - clientCpu + (await servers.cpuTime()) - serverCpu;
    return [n / seconds, cpu / n];
  } finally {
    conn.close();
  }
}
