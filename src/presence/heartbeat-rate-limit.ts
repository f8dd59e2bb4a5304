/**
 * Per-user heartbeat rate limit: a user's extra heartbeats within the interval
 * are answered with the answer to the first one, without any work. Several tabs,
 * a reconnect storm or a buggy client loop cost one write per user per interval.
 *
 * Memory stays bounded by the users who sent a heartbeat in the last two
 * intervals: entries live in two generations, and the older generation is
 * dropped whole when the interval turns (no per-entry timers, no scans).
 */
export class HeartbeatRateLimit<T> {
  readonly #intervalMs: number;
  readonly #now: () => number;
  #current = new Map<string, { at: number; answer: Promise<T>; kind: string }>();
  #previous = new Map<string, { at: number; answer: Promise<T>; kind: string }>();
  #generationStart: number;

  constructor(intervalMs: number, now: () => number = Date.now) {
    this.#intervalMs = intervalMs;
    this.#now = now;
    this.#generationStart = now();
  }

  /**
   * The answer to `userId`'s heartbeat: the one already given within the interval
   * if there is one (`limited: true`), else a fresh `work()`. A failed answer is
   * forgotten, so the next heartbeat tries again. A heartbeat of another `kind`
   * than the one remembered (idle after active, or back) is never a repeat: it
   * changes what others see.
   */
  answer(userId: string, work: () => Promise<T>, kind = ''): { limited: boolean; answer: Promise<T> } {
    if (this.#intervalMs <= 0) return { limited: false, answer: work() };
    const now = this.#now();
    this.#rotate(now);
    const recent = this.#current.get(userId) ?? this.#previous.get(userId);
    if (recent && recent.kind === kind && now - recent.at < this.#intervalMs) return { limited: true, answer: recent.answer };

    const answer = work();
    const entry = { at: now, answer, kind };
    this.#previous.delete(userId);
    this.#current.set(userId, entry);
    answer.catch(() => {
      if (this.#current.get(userId) === entry) this.#current.delete(userId);
      if (this.#previous.get(userId) === entry) this.#previous.delete(userId);
    });
    return { limited: false, answer };
  }

  /** Users remembered right now (at most those seen in the last two intervals). */
  get size(): number {
    return this.#current.size + this.#previous.size;
  }

  // Private: every interval, the current generation becomes the previous one and
  // the previous one is dropped: whatever it held is older than one interval.
  #rotate(now: number): void {
    const elapsed = now - this.#generationStart;
    if (elapsed < this.#intervalMs) return;
    this.#previous = elapsed < 2 * this.#intervalMs ? this.#current : new Map();
    this.#current = new Map();
    this.#generationStart = now;
  }
}
