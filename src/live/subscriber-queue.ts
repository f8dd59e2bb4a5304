/**
 * One subscriber's watched users and the statuses it has been given, packed
 * into typed arrays: what a GraphQL subscription resolver returns (an async
 * iterator of statuses).
 *
 * A stream may watch 1,000 users and a process may hold thousands of streams,
 * so what a stream keeps per watched user is its memory bill. Here that is the
 * user's id (shared with the request), one byte for state and manual status, a
 * float for lastSeen and, only once some status text was seen, a reference to
 * it: about 17 bytes, where a Map of JSON strings and a Map of status objects
 * took a few hundred (docs/live.md has both figures).
 *
 * The arrays hold the latest status offered per user; a status that differs in
 * nothing a subscriber sees from the last one is dropped; a user whose news has
 * not been read yet is marked pending, in the order of their latest change, and
 * the event is built from the arrays when read. So a slow reader never makes
 * this grow: a newer status of a user replaces the unread one, as only the
 * latest matters. `return()` (the client went away, or the server stops) ends
 * the stream and calls `onReturn` once.
 */
import type { UserId } from '../presence/user-id';
import type { ManualStatus, PresenceState, UserStatus } from '../presence/user-status';

const STATES: readonly PresenceState[] = ['ONLINE', 'AWAY', 'BUSY', 'OFFLINE'];
const MANUAL: readonly (ManualStatus | null)[] = [null, 'AUTO', 'AWAY', 'BUSY', 'INVISIBLE'];
/** In the state byte: nothing offered yet for this user. */
const UNKNOWN = 0;

export class SubscriberQueue implements AsyncIterableIterator<UserStatus> {
  /** The watched users, distinct, in numeric order (positions index the arrays). */
  readonly ids: readonly UserId[];
  readonly #onReturn: () => void;
  /** 1 + state * MANUAL.length + manual status; UNKNOWN before the first offer. */
  readonly #state: Uint8Array;
  /** lastSeen in ms since the epoch; NaN for null. */
  readonly #lastSeen: Float64Array;
  /** Status texts by position, made on the first non-null one. */
  #texts: (string | null)[] | null = null;
  /** Positions with news not yet read, oldest change first. */
  readonly #pending = new Set<number>();
  #waiting: ((result: IteratorResult<UserStatus>) => void) | null = null;
  #done = false;

  constructor(userIds: Iterable<UserId>, onReturn: () => void) {
    this.ids = [...new Set(userIds)].sort(compareIds);
    this.#onReturn = onReturn;
    this.#state = new Uint8Array(this.ids.length);
    this.#lastSeen = new Float64Array(this.ids.length);
  }

  /**
   * The latest status of a watched user: queued for the subscriber when it
   * differs in what they see from the last one (state, manual status, text, and
   * lastSeen once offline: while online it moves with every heartbeat, which is
   * not news). Statuses of users not watched here are ignored.
   */
  offer(status: UserStatus): void {
    if (this.#done) return;
    const at = positionOf(this.ids, status.userId);
    if (at < 0) return;
    const state = 1 + STATES.indexOf(status.state) * MANUAL.length + MANUAL.indexOf(status.manualStatus);
    const lastSeen = status.lastSeen ? status.lastSeen.getTime() : NaN;
    const text = status.statusText;
    if (
      this.#state[at] === state &&
      (this.#texts?.[at] ?? null) === text &&
      (status.online || Object.is(this.#lastSeen[at], lastSeen))
    ) {
      return;
    }
    this.#state[at] = state;
    this.#lastSeen[at] = lastSeen;
    if (text !== null || this.#texts) (this.#texts ??= new Array<string | null>(this.ids.length).fill(null))[at] = text;
    if (this.#waiting) {
      const resolve = this.#waiting;
      this.#waiting = null;
      resolve({ value: this.#statusAt(at), done: false });
      return;
    }
    // Re-inserting moves the user to the end: events stay in the order of their
    // latest change.
    this.#pending.delete(at);
    this.#pending.add(at);
  }

  next(): Promise<IteratorResult<UserStatus>> {
    const first = this.#pending.values().next();
    if (!first.done) {
      this.#pending.delete(first.value);
      return Promise.resolve({ value: this.#statusAt(first.value), done: false });
    }
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.#waiting = resolve;
    });
  }

  return(): Promise<IteratorResult<UserStatus>> {
    if (!this.#done) {
      this.#done = true;
      this.#pending.clear();
      this.#waiting?.({ value: undefined, done: true });
      this.#waiting = null;
      this.#onReturn();
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(error: unknown): Promise<IteratorResult<UserStatus>> {
    void this.return();
    return Promise.reject(error);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  // Private: the status at a position, rebuilt from the arrays.
  #statusAt(at: number): UserStatus {
    const code = this.#state[at]! - 1;
    const state = STATES[Math.floor(code / MANUAL.length)]!;
    const lastSeen = this.#lastSeen[at]!;
    return {
      userId: this.ids[at]!,
      state,
      online: state !== 'OFFLINE',
      lastSeen: Number.isNaN(lastSeen) ? null : new Date(lastSeen),
      statusText: this.#texts?.[at] ?? null,
      manualStatus: MANUAL[code % MANUAL.length]!,
    };
  }
}

// Private: ids are decimal strings without leading zeros, so a shorter one is
// smaller and equal lengths compare as text.
function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

function positionOf(ids: readonly string[], id: string): number {
  let low = 0;
  let high = ids.length - 1;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    const order = compareIds(ids[middle]!, id);
    if (order === 0) return middle;
    if (order < 0) low = middle + 1;
    else high = middle - 1;
  }
  return -1;
}
