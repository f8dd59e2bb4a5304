/**
 * Live presence: the statuses a subscriber watches, pushed when they change.
 *
 * Three things make a watched status change, and each has one source here:
 *  - coming online: a heartbeat statement reports it, and the bus carries the ids
 *    to every process;
 *  - manual status and privacy changes: published on the bus by whoever made them;
 *  - going offline, or a manual status expiring: nothing happens at all, so this
 *    process keeps, for every watched user, the moment their status would change
 *    by itself (threshold passed, expiry reached), and re-reads them then. The
 *    cost follows the watched users, never the size of the pulse table, and needs
 *    no index on last_hb. Every process that watches a user keeps its own
 *    deadline, so the user goes offline for its subscribers even if the process
 *    that took their last heartbeat has died.
 *
 * Changes are coalesced for a few milliseconds and then re-read in one statement
 * per viewer, through the same read (and privacy rules) as queries; a subscriber
 * is sent only what changed in what its viewer may see.
 *
 * With read replicas, a subscription's first statuses (the snapshot) and the
 * re-read of everything after the bus reconnects (the resync) come from a
 * replica; re-reads for a change come from the primary, since the change is a
 * write the replica may not have replayed yet. A replica read may predate
 * changes the bus has just announced, so the users with an announced change in
 * the last `replicaStalenessMs` are re-read from the primary right after it; and
 * a resync is repeated once that long later, when the replica has replayed
 * whatever the bus missed while it was away.
 */
import type { Logger } from '../logger';
import type { UserId } from '../presence/user-id';
import type { UserStatus } from '../presence/user-status';
import { SubscriberQueue } from './subscriber-queue';
import type { PresenceBus } from './presence-bus';

/** The longest a timer is set for; a later change is re-checked then. */
const MAX_TIMER_MS = 10 * 60_000;

/** Who is looking: a user id, or null for an anonymous viewer. */
export type Viewer = UserId | null;

export interface LivePresenceOptions {
  bus: PresenceBus;
  /**
   * Statuses of `userIds` as `viewer` may see them, in order, in one statement.
   * `fresh`: must show every committed write (the primary); otherwise a read
   * replica may answer.
   */
  readStatuses(userIds: readonly UserId[], viewer: Viewer, options: { fresh: boolean }): Promise<UserStatus[]>;
  /**
   * For each user whose status will change by itself (going offline, a manual
   * status expiring): milliseconds until it does. Users with nothing pending
   * are not in the map.
   */
  readTimesUntilChange(userIds: readonly UserId[], options: { fresh: boolean }): Promise<ReadonlyMap<UserId, number>>;
  /**
   * How far behind the primary a read that is not fresh may be (a read replica's
   * largest lag plus the time between lag checks); 0 (default): every read is
   * fresh.
   */
  replicaStalenessMs?: number;
  logger: Logger;
  /** How long changes are gathered before they are re-read together. */
  coalesceMs?: number;
  /** How often due offline deadlines are checked. */
  tickMs?: number;
  /**
   * Told, after each round of re-reads, how long the oldest change in it waited
   * from reaching this process to its events being sent (the delay a watcher sees
   * on top of the bus's own), and how many events it sent.
   */
  onEventsSent?(delayMs: number, events: number): void;
}

interface Watcher {
  viewer: Viewer;
  /** The users watched and what this subscriber was told of each, packed. */
  queue: SubscriberQueue;
}

export class LivePresence {
  readonly #options: LivePresenceOptions;
  readonly #coalesceMs: number;
  readonly #watchers = new Map<UserId, Set<Watcher>>();
  readonly #dirty = new Set<UserId>();
  /** When the oldest change among #dirty arrived (for the event delay). */
  #dirtySince = 0;
  #flushTimer: NodeJS.Timeout | null = null;
  #flushing: Promise<void> = Promise.resolve();
  /** Offline deadlines by second, and each user's second: a timer wheel. */
  readonly #deadlines = new Map<number, Set<UserId>>();
  readonly #deadlineOf = new Map<UserId, number>();
  readonly #ticker: NodeJS.Timeout;
  #subscriptions = 0;
  /** Users the bus announced a change for lately, and when (oldest first). */
  readonly #recentChanges = new Map<UserId, number>();
  readonly #replicaStalenessMs: number;
  #resyncTimer: NodeJS.Timeout | null = null;

  constructor(options: LivePresenceOptions) {
    this.#options = options;
    this.#coalesceMs = options.coalesceMs ?? 20;
    this.#replicaStalenessMs = options.replicaStalenessMs ?? 0;
    options.bus.listen(
      (userIds) => {
        this.#noteRecentChanges(userIds);
        this.changed(userIds);
      },
      () => this.#resync(),
    );
    this.#ticker = setInterval(() => this.#tick(), options.tickMs ?? 250);
    this.#ticker.unref();
  }

  /** Open subscriptions, and distinct users watched by them (for metrics and tests). */
  get size(): { subscriptions: number; watchedUsers: number; deadlines: number } {
    return { subscriptions: this.#subscriptions, watchedUsers: this.#watchers.size, deadlines: this.#deadlineOf.size };
  }

  /**
   * Streams the statuses of `userIds` as `viewer` may see them: first the current
   * status of each, then every change. Ending the iterator (the client leaves)
   * frees everything kept for it.
   */
  async watch(userIds: readonly UserId[], viewer: Viewer): Promise<AsyncIterableIterator<UserStatus>> {
    const watcher: Watcher = { viewer, queue: new SubscriberQueue(userIds, () => this.#unwatch(watcher)) };
    const ids = watcher.queue.ids;
    const newlyWatched = [...ids].filter((id) => !this.#watchers.has(id));
    for (const id of ids) {
      let set = this.#watchers.get(id);
      if (!set) this.#watchers.set(id, (set = new Set()));
      set.add(watcher);
    }
    this.#subscriptions++;
    try {
      await this.#schedule(newlyWatched, false);
      const statuses = await this.#options.readStatuses([...ids], viewer, { fresh: false });
      for (const status of statuses) watcher.queue.offer(status);
      this.#recheckRecentChanges(ids);
    } catch (error) {
      await watcher.queue.return();
      throw error;
    }
    return watcher.queue;
  }

  /** These users' presence may have changed: re-read them for their watchers soon. */
  changed(userIds: readonly UserId[]): void {
    if (this.#dirty.size === 0) this.#dirtySince = Date.now();
    for (const id of userIds) if (this.#watchers.has(id)) this.#dirty.add(id);
    if (this.#dirty.size > 0 && !this.#flushTimer) {
      this.#flushTimer = setTimeout(() => {
        this.#flushTimer = null;
        this.#flushing = this.#flushing.then(() => this.#flush());
      }, this.#coalesceMs);
    }
  }

  /** Ends every subscription and stops the timers. */
  async stop(): Promise<void> {
    clearInterval(this.#ticker);
    if (this.#flushTimer) clearTimeout(this.#flushTimer);
    if (this.#resyncTimer) clearTimeout(this.#resyncTimer);
    const watchers = new Set([...this.#watchers.values()].flatMap((set) => [...set]));
    await Promise.all([...watchers].map((w) => w.queue.return()));
    await this.#flushing;
  }

  // Private: the bus was away and may have missed changes: re-read every watched
  // user (from a replica when there is one), and once more when a replica has
  // surely replayed what was written while the bus was away.
  #resync(repeat = true): void {
    this.#flushing = this.#flushing.then(() => this.#reread([...this.#watchers.keys()], false));
    if (repeat && this.#replicaStalenessMs > 0 && !this.#resyncTimer) {
      this.#resyncTimer = setTimeout(() => {
        this.#resyncTimer = null;
        this.#resync(false);
      }, this.#replicaStalenessMs);
      this.#resyncTimer.unref();
    }
  }

  // Private: what a read that is not fresh may not have seen yet.
  #noteRecentChanges(userIds: readonly UserId[]): void {
    if (this.#replicaStalenessMs === 0) return;
    const now = Date.now();
    for (const id of userIds) {
      // Re-inserted, so the map stays in order of time and pruning stops early.
      this.#recentChanges.delete(id);
      this.#recentChanges.set(id, now);
    }
  }

  // Private: after a read that may have come from a replica, users with a change
  // announced within its staleness are re-read from the primary.
  #recheckRecentChanges(ids: Iterable<UserId>): void {
    if (this.#recentChanges.size === 0) return;
    const recent: UserId[] = [];
    for (const id of ids) if (this.#recentChanges.has(id)) recent.push(id);
    if (recent.length > 0) this.changed(recent);
  }

  // Private: changes go to the primary, which has the write that caused them.
  async #flush(): Promise<void> {
    const ids = [...this.#dirty];
    const since = this.#dirtySince;
    this.#dirty.clear();
    await this.#reread(ids, true, since);
  }

  // Private: one statement for the deadlines of `ids`, then one status read per
  // viewer among their watchers. `since`: when the oldest of the changes arrived.
  async #reread(changedIds: readonly UserId[], fresh: boolean, since = Date.now()): Promise<void> {
    const ids = changedIds.filter((id) => this.#watchers.has(id));
    if (ids.length === 0) return;
    let events = 0;
    try {
      await this.#schedule(ids, fresh);
      const byViewer = new Map<Viewer, { watchers: Set<Watcher>; ids: Set<UserId> }>();
      for (const id of ids) {
        for (const watcher of this.#watchers.get(id) ?? []) {
          let group = byViewer.get(watcher.viewer);
          if (!group) byViewer.set(watcher.viewer, (group = { watchers: new Set(), ids: new Set() }));
          group.watchers.add(watcher);
          group.ids.add(id);
        }
      }
      await Promise.all(
        [...byViewer].map(async ([viewer, group]) => {
          const statuses = await this.#options.readStatuses([...group.ids], viewer, { fresh });
          for (const status of statuses) {
            for (const watcher of this.#watchers.get(status.userId) ?? []) {
              if (group.watchers.has(watcher) && watcher.queue.offer(status)) events++;
            }
          }
        }),
      );
      this.#options.onEventsSent?.(Date.now() - since, events);
      if (!fresh) this.#recheckRecentChanges(ids);
    } catch (error) {
      // The database is away: try these users again on the next tick rather
      // than leave their subscribers with a stale dot.
      this.#options.logger.warn('live presence: re-reading changed users failed; retrying', { error: (error as Error).message });
      for (const id of ids) this.#setDeadline(id, Date.now() + 1000);
    }
  }

  // Private: reads when each of `ids` would change by itself (go offline, see a
  // manual status expire) and files the deadlines.
  async #schedule(ids: readonly UserId[], fresh: boolean): Promise<void> {
    if (ids.length === 0) return;
    const msUntilChange = await this.#options.readTimesUntilChange(ids, { fresh });
    const now = Date.now();
    for (const id of ids) {
      const ms = msUntilChange.get(id);
      if (ms === undefined) this.#clearDeadline(id);
      // A little past the moment, so the re-read finds the change by the
      // database's clock too. A far-off expiry is looked at again after ten
      // minutes instead, which keeps the wheel's buckets few.
      else this.#setDeadline(id, now + Math.min(Math.max(0, ms) + 250, MAX_TIMER_MS));
    }
  }

  #setDeadline(id: UserId, at: number): void {
    this.#clearDeadline(id);
    const second = Math.ceil(at / 1000);
    let bucket = this.#deadlines.get(second);
    if (!bucket) this.#deadlines.set(second, (bucket = new Set()));
    bucket.add(id);
    this.#deadlineOf.set(id, second);
  }

  #clearDeadline(id: UserId): void {
    const second = this.#deadlineOf.get(id);
    if (second === undefined) return;
    this.#deadlineOf.delete(id);
    const bucket = this.#deadlines.get(second);
    bucket?.delete(id);
    if (bucket?.size === 0) this.#deadlines.delete(second);
  }

  // Private: due deadlines become changes; the re-read then either sends the
  // offline status or, if a heartbeat arrived meanwhile, files a later deadline.
  #tick(): void {
    const forgetBefore = Date.now() - this.#replicaStalenessMs;
    for (const [id, at] of this.#recentChanges) {
      if (at >= forgetBefore) break;
      this.#recentChanges.delete(id);
    }
    const now = Math.floor(Date.now() / 1000);
    const due: UserId[] = [];
    for (const [second, bucket] of this.#deadlines) {
      if (second > now) continue;
      this.#deadlines.delete(second);
      for (const id of bucket) {
        this.#deadlineOf.delete(id);
        due.push(id);
      }
    }
    if (due.length > 0) this.changed(due);
  }

  #unwatch(watcher: Watcher): void {
    this.#subscriptions--;
    for (const id of watcher.queue.ids) {
      const set = this.#watchers.get(id);
      set?.delete(watcher);
      if (set?.size === 0) {
        this.#watchers.delete(id);
        this.#clearDeadline(id);
      }
    }
  }
}
