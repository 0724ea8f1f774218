/** A reference server on 127.0.0.1, port 0, closed after the test. */
import type { AddressInfo } from 'node:net';
import { createServer, type RtServer } from '../../server/index';
import type { ServerOptions } from '../../server/options';

export interface TestServer {
  rt: RtServer;
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startServer(options: ServerOptions = {}): Promise<TestServer> {
  const rt = createServer({ allowedOrigins: '*', ...options });
  const http = rt.listen(0, '127.0.0.1');
  await new Promise<void>((r) => http.once('listening', () => r()));
  const port = (http.address() as AddressInfo).port;
  return {
    rt,
    port,
    url: 'http://127.0.0.1:' + port + (options.path || '/rt'),
    close: () => new Promise<void>((r) => rt.close(() => r())),
  };
}

/** Resolve when `check` is true, polling every 5 ms; reject after `ms`. */
export async function waitFor(check: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 5));
  }
}
