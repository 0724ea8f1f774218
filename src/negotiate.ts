/**
 * Negotiation decisions, pure: which candidates to try, when to start the next one of a race
 * ("happy eyeballs", RFC 8305: each candidate gets a head start, a failure starts the next at
 * once), and which transports are better than the one carrying the session.
 */
import type { Env } from './env';
import type { Transport } from '../transports/types';

/** The transports this environment supports, in the order given. */
export function supportedTransports(list: readonly Transport[], env: Env): Transport[] {
  const out: Transport[] = [];
  for (let i = 0; i < list.length; i++) if (list[i].supported(env)) out.push(list[i]);
  return out;
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
  get live(): number {
    return this.started - this.failures;
  }

  /** Every candidate started and failed: the race is lost. */
  get lost(): boolean {
    return this.failures >= this.count;
  }

  /** Index of the next candidate to open, or -1 when all have started. */
  start(): number {
    return this.started < this.count ? this.started++ : -1;
  }

  /** A candidate failed. Returns whether the next one should start now (nothing else is live). */
  failed(): boolean {
    this.failures++;
    return this.live === 0 && this.started < this.count;
  }

  /** The head start of the newest candidate is over: start the next one (if any) alongside. */
  headStartOver(): boolean {
    return this.started < this.count;
  }
}

/** Whether a session carried by candidate `current` should try to move up the list. */
export function canUpgrade(current: number): boolean {
  return current > 0;
}
