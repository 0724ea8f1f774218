/** Echo latency: `n` round trips, one message in flight; p50 and p99 in microseconds. */
import type { Client } from '../clients';
import type { Servers } from '../servers';
import { quantile, within } from '../util';

export async function latency(client: Client, servers: Servers, n: number, payload: string, ms: number): Promise<[number, number]> {
  const conn = await within(ms, client.name + ' dial', client.dial(servers.ports));
  try {
    const rtt = await within(
      ms,
      client.name + ' latency',
      new Promise<number[]>((resolve) => {
        const samples: number[] = [];
        let t0 = performance.now();
        conn.onmessage = () => {
          samples.push((performance.now() - t0) * 1000);
          if (samples.length === n) return resolve(samples);
          t0 = performance.now();
          conn.send(payload);
        };
        conn.send(payload);
      }),
    );
    return [quantile(rtt, 0.5), quantile(rtt, 0.99)];
  } finally {
    conn.close();
  }
}
