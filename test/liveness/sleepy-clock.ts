/**
 * A clock and timers for the client's `env` that can "put the tab to sleep": while asleep no
 * timer fires (as in a frozen or heavily throttled background tab) and `jump(ms)` moves the wall
 * clock forward (the laptop lid was closed). On `wake()` the page runs again, but timers that came
 * due during the sleep stay throttled for `lateBy` ms more (Chrome's intensive throttling aligns
 * them to the minute; a frozen page may run them later still), so anything the socket does at
 * once on wake must come from the wake events, not from its own timers. Timers not yet due when
 * the page wakes fire on time. Outside a sleep, timers are real `setTimeout`s: the network in
 * these tests is real.
 */
import type { Env } from '../../src/env';

interface Timer {
  fn: () => void;
  /** Due time on this clock. */
  due: number;
  handle?: ReturnType<typeof setTimeout>;
}

export class SleepyClock {
  /** How far this clock is ahead of Date.now(). */
  offset = 0;
  asleep = false;
  private readonly timers = new Map<number, Timer>();
  private nextId = 1;
  /** Timers that fired (ran their callback), for the record. */
  fired = 0;

  constructor(readonly lateBy = 60_000) {}

  now = (): number => Date.now() + this.offset;

  setTimeout = (fn: () => void, ms: number): number => {
    const id = this.nextId++;
    const t: Timer = { fn, due: this.now() + Math.max(0, ms) };
    this.timers.set(id, t);
    if (!this.asleep) this.arm(id, t, Math.max(0, ms));
    return id;
  };

  clearTimeout = (id: unknown): void => {
    const t = this.timers.get(id as number);
    if (!t) return;
    if (t.handle) clearTimeout(t.handle);
    this.timers.delete(id as number);
  };

  /** The part of `env` this clock replaces. */
  env(): Pick<Env, 'now' | 'setTimeout' | 'clearTimeout'> {
    return { now: this.now, setTimeout: this.setTimeout, clearTimeout: this.clearTimeout };
  }

  /** The page stops running timers. */
  sleep(): void {
    this.asleep = true;
    for (const t of this.timers.values()) {
      if (t.handle) clearTimeout(t.handle);
      t.handle = undefined;
    }
  }

  /** The wall clock moves on while the page sleeps. */
  jump(ms: number): void {
    this.offset += ms;
  }

  /** The page runs again: timers due during the sleep stay throttled for `lateBy` ms more. */
  wake(): void {
    this.asleep = false;
    const now = this.now();
    for (const [id, t] of this.timers) this.arm(id, t, t.due <= now ? this.lateBy : t.due - now);
  }

  /** Timers not fired and not cleared. */
  get pending(): number {
    return this.timers.size;
  }

  /** Drop every timer (cleanup). */
  dispose(): void {
    for (const t of this.timers.values()) if (t.handle) clearTimeout(t.handle);
    this.timers.clear();
  }

  private arm(id: number, t: Timer, ms: number): void {
    if (t.handle) clearTimeout(t.handle);
    t.handle = setTimeout(() => {
      t.handle = undefined;
      if (this.asleep || !this.timers.has(id)) return;
      this.timers.delete(id);
      this.fired++;
      t.fn();
    }, ms);
  }
}
