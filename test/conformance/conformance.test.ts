/**
 * The conformance suite against the reference server: every check of suite.ts must pass (none may
 * be skipped), with short heartbeat timings so the slow checks run in a second or two.
 */
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { createServer, type RtServer } from '../../server/index';
import { checks, runCheck, type Target } from './suite';

const ALLOWED = 'http://app.conformance.test';
const FOREIGN = 'http://elsewhere.conformance.test';

let rt: RtServer;
let target: Target;

beforeAll(async () => {
  rt = createServer({
    path: '/rt',
    allowedOrigins: [ALLOWED],
    // hb + hto = 2 s bounds the slow checks; the poll timeout must stay below it.
    pingInterval: 1000,
    pingTimeout: 1000,
    pollTimeout: 1500,
    serveClient: false,
  });
  // What the suite requires of a server under test: echo every message on its session.
  rt.on('connection', (c) => c.on('message', (d) => c.send(d)));
  const server = rt.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', () => resolve());
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  target = { url: 'http://127.0.0.1:' + port + '/rt', origin: ALLOWED, foreignOrigin: FOREIGN, timeoutMs: 5000 };
});

afterAll(() => new Promise<void>((resolve) => rt.close(() => resolve())));

describe('protocol conformance of the reference server', () => {
  for (const c of checks) {
    it(c.section + ': ' + c.name, async () => {
      const r = await runCheck(c, target, { slow: true, capMs: 15000 });
      if (r.status !== 'ok') throw new Error((r.status === 'skip' ? 'skipped (the reference server must run every check): ' : '') + r.message);
    }, 20000);
  }
});
