/**
 * Reconnection delays: exponential backoff with full jitter
 * (delay = random(0, min(cap, base * 2^attempt))), so a crowd of clients that lost the same
 * server spreads its reconnects over the whole window instead of arriving together.
 */
export interface BackoffOptions {
  /** First window, ms. @default 500 */
  base: number;
  /** Largest window, ms. @default 15000 */
  cap: number;
}

/** Delay before reconnect attempt `attempt` (1-based), given a random number in [0, 1). */
export function backoffDelay(attempt: number, o: BackoffOptions, random: number): number {
  const window = Math.min(o.cap, o.base * Math.pow(2, Math.min(attempt - 1, 30)));
  return Math.floor(random * window);
}
