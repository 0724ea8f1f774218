/**
 * createServer checks its options up front: a wrong type or range names the option, and
 * defaults that depend on another option follow it instead of contradicting it.
 */
import { describe, expect, it } from 'vitest';
import { createServer } from '../../server/index';
import { resolveServerOptions, type ServerOptions } from '../../server/options';

describe('server options', () => {
  it('a shorter pingInterval lowers the default pollTimeout instead of throwing', () => {
    expect(resolveServerOptions({ pingInterval: 5000 }).pollTimeout).toBe(5000);
    expect(resolveServerOptions({}).pollTimeout).toBe(25000);
    const rt = createServer({ pingInterval: 2000, pingTimeout: 1000 });
    rt.close();
  });

  it('a larger maxPayload raises the default maxBatch instead of throwing', () => {
    expect(resolveServerOptions({ maxPayload: 4 << 20 }).maxBatch).toBe(4 << 20);
    expect(resolveServerOptions({}).maxBatch).toBe(2 << 20);
  });

  it('contradictions the caller wrote are RangeErrors naming both options', () => {
    expect(() => resolveServerOptions({ pollTimeout: 30000, pingInterval: 10000, pingTimeout: 10000 })).toThrow(/pollTimeout \(30000\) must be below pingInterval \+ pingTimeout \(20000\)/);
    expect(() => resolveServerOptions({ maxPayload: 4096, maxBatch: 1024 })).toThrow(/maxBatch \(1024\) must be at least maxPayload \(4096\)/);
  });

  const bad: Array<[ServerOptions, RegExp, ErrorConstructor]> = [
    [{ pingInterval: '5000' as unknown as number }, /pingInterval must be a number, not string/, TypeError],
    [{ pingTimeout: NaN }, /pingTimeout must be a number, not NaN/, TypeError],
    [{ pingTimeout: 0 }, /pingTimeout must be between 1 and/, RangeError],
    [{ sessionTimeout: 2 ** 31 }, /sessionTimeout must be between 1 and 2147483647/, RangeError],
    [{ maxSessions: -1 }, /maxSessions must be between 0/, RangeError],
    [{ ackDelay: -5 }, /ackDelay must be between 0/, RangeError],
    [{ maxPayload: 10 }, /maxPayload must be between 64/, RangeError],
    [{ path: 5 as unknown as string }, /path must be a string/, TypeError],
    [{ serveClient: 'yes' as unknown as boolean }, /serveClient must be a boolean/, TypeError],
  ];
  for (const [o, msg, type] of bad) {
    it('rejects ' + JSON.stringify(o, (_, v) => (typeof v === 'number' && v !== v ? 'NaN' : v)) + ' with a ' + type.name, () => {
      expect(() => createServer(o)).toThrow(type);
      expect(() => createServer(o)).toThrow(msg);
    });
  }
});
