/**
 * Token buckets per client: how Pulse says "not so fast" to one client without
 * slowing anyone else.
 *
 * Each client (a user id or an address) has a bucket of `burst` tokens that
 * refills at `ratePerSecond`; an action takes one token, and with none left it is
 * refused with the seconds until the next token. A client that stays within the
 * rate is never refused, and a burst after a quiet spell is allowed.
 *
 * Memory is bounded whatever a caller does (an attacker can send from many
 * addresses): a bucket that has refilled is the same as no bucket and is dropped
 * on the next sweep, and past `maxClients` the oldest buckets are dropped first,
 * which at worst gives those clients a fresh burst.
 */

/** A rate: `perSecond` actions per second on average, with bursts of `burst`. */
export interface Rate {
  readonly perSecond: number;
  readonly burst: number;
}

/** What {@link TokenBucket.take} decided. */
export type Decision = { allowed: true } | { allowed: false; retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date (ms). */
  at: number;
}

export class TokenBucket {
  readonly #rate: Rate;
  readonly #maxClients: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();
  #lastSweep = 0;

  constructor(rate: Rate, options: { maxClients?: number; now?: () => number } = {}) {
    this.#rate = rate;
    this.#maxClients = options.maxClients ?? 100_000;
    this.#now = options.now ?? Date.now;
  }

  /** Takes one token from `client`'s bucket, or says how long until one is there. */
  take(client: string): Decision {
    const now = this.#now();
    this.#sweep(now);
    const { perSecond, burst } = this.#rate;
    let bucket = this.#buckets.get(client);
    if (bucket) {
      bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * perSecond);
      bucket.at = now;
    } else {
      bucket = { tokens: burst, at: now };
      this.#buckets.set(client, bucket);
      if (this.#buckets.size > this.#maxClients) this.#buckets.delete(this.#buckets.keys().next().value!);
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      // Re-inserting keeps the map in order of last use, so the oldest go first.
      this.#buckets.delete(client);
      this.#buckets.set(client, bucket);
      return { allowed: true };
    }
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / perSecond)) };
  }

  /** Clients with a bucket that is not full (for tests and metrics). */
  get size(): number {
    return this.#buckets.size;
  }

  // Private: drops buckets that have refilled, at most once per refill time, so
  // the cost is spread thin over many calls.
  #sweep(now: number): void {
    const fullAfterMs = (this.#rate.burst / this.#rate.perSecond) * 1000;
    if (now - this.#lastSweep < fullAfterMs) return;
    this.#lastSweep = now;
    for (const [client, bucket] of this.#buckets) {
      if (bucket.tokens + ((now - bucket.at) / 1000) * this.#rate.perSecond >= this.#rate.burst) this.#buckets.delete(client);
    }
  }
}
