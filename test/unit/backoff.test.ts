import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { backoffDelay } from '../../src/backoff';

const defaults = { base: 500, cap: 15000 };
/** The largest double below 1: what Math.random() can return at most. */
const ALMOST_ONE = 1 - Number.EPSILON / 2;

describe('backoffDelay', () => {
  it('random = 0 gives 0, whatever the attempt', () => {
    for (const attempt of [1, 2, 5, 10, 31, 100, 1e9]) expect(backoffDelay(attempt, defaults, 0)).toBe(0);
  });

  it('the window starts at base and doubles each attempt', () => {
    expect(backoffDelay(1, defaults, ALMOST_ONE)).toBe(499);
    expect(backoffDelay(2, defaults, ALMOST_ONE)).toBe(999);
    expect(backoffDelay(3, defaults, ALMOST_ONE)).toBe(1999);
    expect(backoffDelay(4, defaults, ALMOST_ONE)).toBe(3999);
    expect(backoffDelay(5, defaults, ALMOST_ONE)).toBe(7999);
  });

  it('is capped at cap', () => {
    expect(backoffDelay(6, defaults, ALMOST_ONE)).toBe(14999); // window would be 16000
    expect(backoffDelay(20, defaults, ALMOST_ONE)).toBe(14999);
  });

  it('spreads the delay over the whole window (full jitter)', () => {
    expect(backoffDelay(1, defaults, 0.5)).toBe(250);
    expect(backoffDelay(3, defaults, 0.25)).toBe(500);
    expect(backoffDelay(10, defaults, 0.5)).toBe(7500);
  });

  it('returns whole milliseconds', () => {
    expect(backoffDelay(1, { base: 3, cap: 100 }, 0.5)).toBe(1);
    expect(Number.isInteger(backoffDelay(2, { base: 333, cap: 10000 }, 0.123456789))).toBe(true);
  });

  it('does not overflow for huge attempt numbers', () => {
    for (const attempt of [31, 32, 64, 1024, 1e6, Number.MAX_SAFE_INTEGER, Infinity]) {
      const d = backoffDelay(attempt, defaults, ALMOST_ONE);
      expect(Number.isFinite(d)).toBe(true);
      expect(d).toBe(14999);
    }
    // Even without a practical cap the window stays finite.
    const d = backoffDelay(1e9, { base: 1000, cap: Number.MAX_SAFE_INTEGER }, ALMOST_ONE);
    expect(Number.isFinite(d)).toBe(true);
    expect(d).toBeGreaterThan(0);
    expect(d).toBeLessThanOrEqual(Number.MAX_SAFE_INTEGER);
  });

  const attempt = fc.integer({ min: 1, max: 200 });
  const opts = fc.record({ base: fc.integer({ min: 1, max: 10_000 }), cap: fc.integer({ min: 1, max: 1_000_000 }) });
  const random = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });

  it('lies in [0, min(cap, base * 2^(attempt-1))) and is an integer (property)', () => {
    fc.assert(
      fc.property(attempt, opts, random, (n, o, r) => {
        const d = backoffDelay(n, o, r);
        const window = Math.min(o.cap, o.base * 2 ** (n - 1));
        expect(Number.isInteger(d)).toBe(true);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(window);
      }),
      { numRuns: 1000 },
    );
  });

  it('equals floor(random * window) while the window is below 2^30 * base (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 31 }), opts, random, (n, o, r) => {
        expect(backoffDelay(n, o, r)).toBe(Math.floor(r * Math.min(o.cap, o.base * 2 ** (n - 1))));
      }),
      { numRuns: 1000 },
    );
  });

  it('never shrinks as attempts grow, for the same random number (property)', () => {
    fc.assert(
      fc.property(attempt, opts, random, (n, o, r) => {
        expect(backoffDelay(n + 1, o, r)).toBeGreaterThanOrEqual(backoffDelay(n, o, r));
      }),
      { numRuns: 1000 },
    );
  });
});
