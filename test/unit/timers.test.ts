import { describe, expect, it } from 'vitest';
import type { Env } from '../../src/env';
import { Timers } from '../../src/timers';

/** A fake clock whose timers fire only when `advance` says, like a throttled background tab. */
function fakeEnv(): { env: Env; now: { t: number }; fire(upTo: number): void; pending(): number } {
  const now = { t: 0 };
  let id = 0;
  const queue = new Map<number, { at: number; fn: () => void }>();
  const env = {
    now: () => now.t,
    setTimeout: (fn: () => void, ms: number) => (queue.set(++id, { at: now.t + ms, fn }), id),
    clearTimeout: (i: unknown) => void queue.delete(i as number),
  } as unknown as Env;
  return {
    env,
    now,
    fire(upTo) {
      for (const [k, q] of [...queue].sort((a, b) => a[1].at - b[1].at)) if (q.at <= upTo && queue.delete(k)) q.fn();
    },
    pending: () => queue.size,
  };
}

describe('Timers', () => {
  it('a timer runs once, at its time; setting the same name again replaces it', () => {
    const f = fakeEnv();
    const t = new Timers<'a' | 'b'>(f.env);
    const ran: string[] = [];
    t.later('a', () => ran.push('a1'), 100);
    t.later('a', () => ran.push('a2'), 200);
    expect(f.pending()).toBe(1);
    f.fire(150);
    expect(ran).toEqual([]);
    f.fire(200);
    expect(ran).toEqual(['a2']);
    expect(t.pending('a')).toBe(false);
  });

  it('cancel and cancelAll stop timers; pending tells what is set', () => {
    const f = fakeEnv();
    const t = new Timers<'a' | 'b'>(f.env);
    const ran: string[] = [];
    t.later('a', () => ran.push('a'), 10);
    t.later('b', () => ran.push('b'), 10);
    expect(t.pending('a') && t.pending('b')).toBe(true);
    t.cancel('a');
    expect(t.pending('a')).toBe(false);
    t.cancelAll();
    f.fire(100);
    expect(ran).toEqual([]);
    expect(f.pending()).toBe(0);
  });

  it('wake runs at once every timer already due by the wall clock (a page that slept), and only those', () => {
    const f = fakeEnv();
    const t = new Timers<'beat' | 'retry' | 'later'>(f.env);
    const ran: string[] = [];
    t.later('beat', () => ran.push('beat'), 45_000);
    t.later('retry', () => ran.push('retry'), 5_000);
    t.later('later', () => ran.push('later'), 900_000);
    // Ten minutes asleep: the browser fired nothing.
    f.now.t = 600_000;
    t.wake();
    expect(ran.sort()).toEqual(['beat', 'retry']);
    expect(t.pending('later')).toBe(true);
    expect(f.pending()).toBe(1);
    // The browser's own late firing of the ones already run does nothing more.
    f.fire(600_000);
    expect(ran.length).toBe(2);
  });

  it('a timer set by a timer that wake runs is kept (a heartbeat re-arming itself)', () => {
    const f = fakeEnv();
    const t = new Timers<'beat'>(f.env);
    let runs = 0;
    const beat = (): void => {
      runs++;
      t.later('beat', beat, 1000);
    };
    t.later('beat', beat, 1000);
    f.now.t = 5000;
    t.wake();
    expect(runs).toBe(1);
    expect(t.pending('beat')).toBe(true);
  });
});
