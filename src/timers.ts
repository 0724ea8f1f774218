/**
 * Named one-shot timers with their wall-clock due times. Browsers throttle timers in background
 * tabs and freeze pages; `wake()` (on visibilitychange, online, focus, pageshow, resume) runs
 * every timer already due by the clock at once, instead of whenever the browser gets round to it.
 */
import type { Env } from './env';

interface Timer {
  id: unknown;
  due: number;
  fn: () => void;
}

export class Timers<Name extends string> {
  private _t: Partial<Record<Name, Timer>> = {};

  constructor(private readonly _env: Env) {}

  /** Run `fn` in `ms`, replacing the timer of the same name. */
  later(name: Name, fn: () => void, ms: number): void {
    this.cancel(name);
    const run = (): void => {
      delete this._t[name];
      fn();
    };
    // Hosts fire a delay over 2^31 - 1 ms at once; a heartbeat a server announced as 2^40 ms waits the most they keep.
    ms = Math.min(ms, 0x7fffffff);
    this._t[name] = { id: this._env.setTimeout(run, ms), due: this._env.now() + ms, fn: run };
  }

  /** Whether the timer `name` is pending. */
  pending(name: Name): boolean {
    return this._t[name] !== undefined;
  }

  cancel(name: Name): void {
    const t = this._t[name];
    if (t) this._env.clearTimeout(t.id);
    delete this._t[name];
  }

  cancelAll(): void {
    for (const k in this._t) this.cancel(k);
  }

  /** Run now every timer whose due time has passed (the page may have slept). */
  wake(): void {
    const now = this._env.now();
    for (const k in this._t) {
      const t = this._t[k];
      if (t && t.due <= now) {
        this._env.clearTimeout(t.id);
        t.fn();
      }
    }
  }
}
