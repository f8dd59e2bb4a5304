/**
 * Group commit for heartbeats: heartbeats that arrive close together are written
 * by one statement, and each caller is answered only once that statement has
 * committed.
 *
 * Adaptive by default (window 0), with nothing to tune: while a statement slot
 * is free, the heartbeats that arrived in this turn of the event loop are
 * written at once; while every slot (`maxInFlight`) is busy, everything that
 * arrives waits, and leaves together in one statement as soon as a slot frees.
 * So a heartbeat at a trickle costs one statement's latency and no more, and
 * under load every statement carries whatever arrived while the previous ones
 * ran: statements per second are bounded by the slots and the statement's own
 * time, not by the load, and statements per heartbeat fall as load rises. The
 * same idea as PostgreSQL's own group commit, Kafka's linger and the "smart
 * batching" pattern. A window above 0 instead holds the first heartbeat of a
 * batch that long before it may leave (fewer, larger statements at light load,
 * for more latency).
 *
 * A batch is also closed when it holds `maxSize` users. Duplicates within a
 * batch (several tabs of one user) share one row in the statement and one
 * answer. If the statement fails, exactly the heartbeats of that batch fail,
 * with its error; the next batch starts clean.
 */
import type { UserId } from './user-id';

/**
 * Given distinct user ids, writes them in one statement and returns each user's
 * answer. Rejects (for the whole batch) if the statement fails.
 */
export type WriteBatch<T> = (userIds: readonly UserId[]) => Promise<ReadonlyMap<UserId, T>>;

export interface HeartbeatBatcherOptions<T> {
  write: WriteBatch<T>;
  /** How long a batch stays open after its first heartbeat; 0 (adaptive): until the event loop turns, or a slot frees. */
  windowMs: number;
  /** A batch is closed at once when it holds this many users. */
  maxSize: number;
  /** Batch statements allowed to run at once. */
  maxInFlight: number;
}

interface Waiter<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export class HeartbeatBatcher<T> {
  readonly #options: HeartbeatBatcherOptions<T>;
  /** Heartbeats not yet written: one waiter per user, however many heartbeats they sent. */
  #pending = new Map<UserId, Waiter<T>>();
  /** The oldest pending heartbeat has waited out the window (or the batch is full). */
  #due = false;
  readonly #running = new Set<Promise<void>>();
  #timer: NodeJS.Timeout | NodeJS.Immediate | null = null;

  constructor(options: HeartbeatBatcherOptions<T>) {
    this.#options = options;
  }

  /** Adds `userId` to the next batch; resolves with their answer once it has committed. */
  submit(userId: UserId): Promise<T> {
    const existing = this.#pending.get(userId);
    if (existing) return existing.promise;
    const waiter = deferred<T>();
    this.#pending.set(userId, waiter);
    if (this.#pending.size >= this.#options.maxSize) {
      this.#markDue();
    } else if (this.#pending.size === 1 && !this.#due) {
      this.#timer =
        this.#options.windowMs > 0 ? setTimeout(() => this.#markDue(), this.#options.windowMs) : setImmediate(() => this.#markDue());
    }
    return waiter.promise;
  }

  /** Heartbeats waiting to be written (not counting those being written now). */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Writes everything buffered now, without waiting for the window, and resolves
   * when every batch (including those already running) has finished. For shutdown:
   * no heartbeat that arrived is dropped.
   */
  async flush(): Promise<void> {
    // Heartbeats that arrive while the flush runs (a request still draining at
    // shutdown) are due at once too: each turn either starts them or waits for a
    // statement that is running, so the loop never spins.
    do {
      this.#markDue();
      await Promise.allSettled([...this.#running]);
    } while (this.#running.size > 0 || this.#pending.size > 0);
  }

  // Private: the pending heartbeats may be written as soon as a slot is free.
  #markDue(): void {
    if (this.#timer) {
      clearTimeout(this.#timer as NodeJS.Timeout);
      clearImmediate(this.#timer as NodeJS.Immediate);
      this.#timer = null;
    }
    this.#due = true;
    this.#startBatches();
  }

  // Private: while slots are free, takes up to maxSize pending heartbeats into a
  // statement. Called when heartbeats become due and when a statement finishes:
  // whatever arrived while every slot was busy leaves together in the next one.
  #startBatches(): void {
    while (this.#due && this.#pending.size > 0 && this.#running.size < this.#options.maxInFlight) {
      let batch: Map<UserId, Waiter<T>>;
      if (this.#pending.size <= this.#options.maxSize) {
        batch = this.#pending;
        this.#pending = new Map();
      } else {
        batch = new Map();
        for (const [userId, waiter] of this.#pending) {
          if (batch.size >= this.#options.maxSize) break;
          batch.set(userId, waiter);
          this.#pending.delete(userId);
        }
      }
      // What remains is older than anything that arrives from now on: still due.
      this.#due = this.#pending.size > 0;
      const run = this.#run(batch).finally(() => {
        this.#running.delete(run);
        this.#startBatches();
      });
      this.#running.add(run);
    }
  }

  async #run(batch: Map<UserId, Waiter<T>>): Promise<void> {
    let answers: ReadonlyMap<UserId, T>;
    try {
      answers = await this.#options.write([...batch.keys()]);
    } catch (error) {
      for (const waiter of batch.values()) waiter.reject(error);
      return;
    }
    for (const [userId, waiter] of batch) {
      const answer = answers.get(userId);
      if (answer === undefined) waiter.reject(new Error(`Heartbeat batch returned no answer for user ${userId}`));
      else waiter.resolve(answer);
    }
  }
}

function deferred<T>(): Waiter<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
