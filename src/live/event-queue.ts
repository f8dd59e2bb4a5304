/**
 * An async iterator fed by pushes, for one subscriber: what a GraphQL
 * subscription resolver returns.
 *
 * A slow reader never makes it grow without bound: events are kept per key
 * (here, per user), and a newer event for a key replaces the one not yet read,
 * since only the latest status of a user matters. `return()` (the client went
 * away, or the server stops) ends the stream and calls `onReturn` once.
 */
export class EventQueue<T> implements AsyncIterableIterator<T> {
  readonly #keyOf: (value: T) => string;
  readonly #onReturn: () => void;
  readonly #pending = new Map<string, T>();
  #waiting: ((result: IteratorResult<T>) => void) | null = null;
  #done = false;

  constructor(keyOf: (value: T) => string, onReturn: () => void) {
    this.#keyOf = keyOf;
    this.#onReturn = onReturn;
  }

  push(value: T): void {
    if (this.#done) return;
    if (this.#waiting) {
      const resolve = this.#waiting;
      this.#waiting = null;
      resolve({ value, done: false });
      return;
    }
    const key = this.#keyOf(value);
    // Re-inserting moves the key to the end: events stay in the order of their
    // latest change.
    this.#pending.delete(key);
    this.#pending.set(key, value);
  }

  next(): Promise<IteratorResult<T>> {
    const first = this.#pending.entries().next();
    if (!first.done) {
      this.#pending.delete(first.value[0]);
      return Promise.resolve({ value: first.value[1], done: false });
    }
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.#waiting = resolve;
    });
  }

  return(): Promise<IteratorResult<T>> {
    if (!this.#done) {
      this.#done = true;
      this.#pending.clear();
      this.#waiting?.({ value: undefined, done: true });
      this.#waiting = null;
      this.#onReturn();
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(error: unknown): Promise<IteratorResult<T>> {
    void this.return();
    return Promise.reject(error);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
