/**
 * Group commit for heartbeats: heartbeats that arrive close together are written
 * by one statement, and each caller is answered only once that statement has
 * committed.
 *
 * A batch opens with its first heartbeat and closes when the window has passed
 * or it holds `maxSize` users. At most `maxInFlight` batch statements run at
 * once; a closed batch waits for a free slot, and meanwhile the next batch keeps
 * filling. So batches grow with the load by themselves: at a trickle each
 * heartbeat is written alone after the window, and when the database is the
 * bottleneck every statement carries everything that arrived while the previous
 * ones ran. Statements per heartbeat fall as load rises, which is the point.
 *
 * Duplicates within a batch (several tabs of one user) share one row in the
 * statement and one answer. If the statement fails, exactly the heartbeats of
 * that batch fail, with its error; the next batch starts clean.
 */
import type { UserId } from './user-id';

/**
 * Given distinct user ids, writes them in one statement and returns each user's
 * answer. Rejects (for the whole batch) if the statement fails.
 */
export type WriteBatch<T> = (userIds: readonly UserId[]) => Promise<ReadonlyMap<UserId, T>>;

export interface HeartbeatBatcherOptions<T> {
  write: WriteBatch<T>;
  /** How long a batch stays open after its first heartbeat; 0: until the event loop turns. */
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
  /** The open batch: one waiter per user, however many heartbeats they sent. */
  #open = new Map<UserId, Waiter<T>>();
  /** Batches closed but not yet started, oldest first (waiting for a free slot). */
  readonly #closed: Map<UserId, Waiter<T>>[] = [];
  readonly #running = new Set<Promise<void>>();
  #timer: NodeJS.Timeout | NodeJS.Immediate | null = null;

  constructor(options: HeartbeatBatcherOptions<T>) {
    this.#options = options;
  }

  /** Adds `userId` to the open batch; resolves with their answer once it has committed. */
  submit(userId: UserId): Promise<T> {
    const existing = this.#open.get(userId);
    if (existing) return existing.promise;
    const waiter = deferred<T>();
    this.#open.set(userId, waiter);
    if (this.#open.size >= this.#options.maxSize) {
      this.#close();
    } else if (this.#open.size === 1) {
      this.#timer =
        this.#options.windowMs > 0 ? setTimeout(() => this.#close(), this.#options.windowMs) : setImmediate(() => this.#close());
    }
    return waiter.promise;
  }

  /** Heartbeats waiting to be written or being written now. */
  get pending(): number {
    return this.#open.size + this.#closed.reduce((n, batch) => n + batch.size, 0);
  }

  /**
   * Writes everything buffered now, without waiting for the window, and resolves
   * when every batch (including those already running) has finished. For shutdown:
   * no heartbeat that arrived is dropped.
   */
  async flush(): Promise<void> {
    this.#close();
    while (this.#running.size > 0 || this.#closed.length > 0) {
      await Promise.allSettled([...this.#running]);
    }
  }

  // Private: the open batch stops taking heartbeats and queues for a slot.
  #close(): void {
    if (this.#timer) {
      clearTimeout(this.#timer as NodeJS.Timeout);
      clearImmediate(this.#timer as NodeJS.Immediate);
      this.#timer = null;
    }
    if (this.#open.size === 0) return;
    this.#closed.push(this.#open);
    this.#open = new Map();
    this.#startNext();
  }

  // Private: starts queued batches while slots are free. Called when a batch
  // closes and when one finishes.
  #startNext(): void {
    while (this.#running.size < this.#options.maxInFlight && this.#closed.length > 0) {
      const batch = this.#closed.shift()!;
      const run = this.#run(batch).finally(() => {
        this.#running.delete(run);
        this.#startNext();
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
