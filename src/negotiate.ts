/**
 * Negotiation decisions, pure: which candidates to try, when to start the next one of a race
 * ("happy eyeballs", RFC 8305: each candidate gets a head start, a failure starts the next at
 * once), and which transports are better than the one carrying the session.
 */
import type { Env } from './env';
import type { Transport } from '../transports/types';

/**
 * The transports this environment supports, in the order given, keeping only the first
 * streaming transport supported (the best this browser has; the others would fail the same way).
 */
export function supportedTransports(list: readonly Transport[], env: Env): Transport[] {
  const out: Transport[] = [];
  let stream = false;
  for (let i = 0; i < list.length; i++) {
    const t = list[i];
    if (t.supported(env) && !(t.stream && stream)) {
      out.push(t);
      stream = stream || !!t.stream;
    }
  }
  return out;
}

/** Where what worked is remembered (localStorage, sessionStorage, or anything shaped like them). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** The transport that worked last time for `key`, if still fresh: its index in `list`, or -1. */
export function recall(storage: StorageLike | null | undefined, key: string, list: readonly Transport[], now: number): number {
  try {
    const m = storage && JSON.parse(storage.getItem(key) || 'null');
    if (m && m.x > now) for (let i = 0; i < list.length; i++) if (list[i].name === m.t) return i;
  } catch {
    /* unreadable or blocked storage: remember nothing */
  }
  return -1;
}

/** Remember that `name` worked for `key` until `now + ttl`. */
export function remember(storage: StorageLike | null | undefined, key: string, name: string, now: number, ttl: number): void {
  try {
    if (storage) storage.setItem(key, JSON.stringify({ t: name, x: now + ttl }));
  } catch {
    /* full or blocked storage */
  }
}

/** Race order over `count` candidates: `first` (what worked last time) leads, the rest keep their order. */
export function raceOrder(count: number, first: number): number[] {
  const order: number[] = first >= 0 ? [first] : [];
  for (let i = 0; i < count; i++) if (i !== first) order.push(i);
  return order;
}

/**
 * The next better candidate to probe after `tried` (-1 at first) while `current` carries the
 * session, skipping those `avoid` names; -1 when none is left.
 */
export function nextUpgrade(current: number, tried: number, avoid: (i: number) => boolean = () => false): number {
  for (let i = tried + 1; i < current; i++) if (!avoid(i)) return i;
  return -1;
}

/**
 * One race over `count` candidates. The socket calls `start()` to learn which candidate to open,
 * `failed()` when one fails, and `headStartOver()` when the head-start timer fires.
 */
export class Race {
  private started = 0;
  private failures = 0;

  constructor(readonly count: number) {}

  /** Candidates started and not yet failed. */
  live(): number {
    return this.started - this.failures;
  }

  /** Every candidate started and failed: the race is lost. */
  lost(): boolean {
    return this.failures >= this.count;
  }

  /** Index of the next candidate to open, or -1 when all have started. */
  start(): number {
    return this.started < this.count ? this.started++ : -1;
  }

  /**
   * A candidate failed. Returns whether the next one should start now: whenever one is left, even
   * with others live (one may be a stream a proxy holds silent: waiting out its head start would
   * cost every first visit behind a buffering proxy that head start).
   */
  failed(): boolean {
    this.failures++;
    return this.started < this.count;
  }

  /** The head start of the newest candidate is over: start the next one (if any) alongside. */
  headStartOver(): boolean {
    return this.started < this.count;
  }
}

