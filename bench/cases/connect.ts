/** Connect time: from dialling to the server's first message (its hello), `n` dials one after another; median ms. */
import type { Client } from '../clients';
import type { Servers } from '../servers';
import { median, within } from '../util';

export async function connectTime(client: Client, servers: Servers, n: number, ms: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const conn = await within(ms, client.name + ' dial', client.dial(servers.ports));
    times.push(performance.now() - t0);
    conn.close();
  }
  return median(times);
}
