/**
 * Retry delays for Pulse's browser client: exponential backoff with full jitter
 * (a random delay between 0 and the exponential cap), which spreads a crowd of
 * clients that failed together instead of sending them back together.
 */
export interface Backoff {
  /** The delay before retry number `attempt` (0 for the first retry), in ms. */
  delay(attempt: number): number;
}

export function fullJitter(baseMs: number, maxMs: number, random: () => number = Math.random): Backoff {
  return {
    delay(attempt) {
      const cap = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
      return Math.floor(random() * cap);
    },
  };
}

/** A `Retry-After` header in milliseconds (seconds or an HTTP date), or 0. */
export function retryAfterMs(header: string | null, now: number = Date.now()): number {
  if (!header) return 0;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(header);
  return Number.isNaN(date) ? 0 : Math.max(0, date - now);
}
