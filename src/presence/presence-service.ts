/**
 * Presence: heartbeats in, statuses out. The rules live here; the SQL lives in
 * the pulse repository (writes) and the status repository (reads); protocols
 * (GraphQL, HTTP) live above, and see this service through {@link Presence}.
 */
import DataLoader from 'dataloader';
import type { Database } from '../db/database';
import type { ReplicaReads } from '../db/read-replicas';
import type { Metrics } from '../observability/metrics';
import { HeartbeatBatcher } from './heartbeat-batcher';
import { HeartbeatRateLimit } from './heartbeat-rate-limit';
import { recordHeartbeats, sortUserIds } from './pulse-repository';
import { findStatusRows, findTimesUntilChange } from './status-repository';
import { neverSeen, statusFromRow, type UserStatus } from './user-status';
import { visibleStatus } from './visible-status';
import type { UserId } from './user-id';

export interface PresenceServiceOptions {
  /** The primary: every write, and every read that must see a write just made. */
  db: Database;
  /**
   * Where the other status reads go (read replicas, see {@link ReadReplicas});
   * absent: the primary.
   */
  replicaReads?: ReplicaReads;
  /** A user is online while their last heartbeat is at most this many seconds old. */
  thresholdSeconds: number;
  metrics?: Pick<Metrics, 'heartbeats' | 'heartbeatBatchSize'>;
  /** A user's heartbeats closer together than this are answered without work; 0: off. */
  heartbeatMinIntervalMs?: number;
  /** A row written less than this many seconds ago is not written again; 0: always write. */
  minWriteGapSeconds?: number;
  /**
   * Group commit (see {@link HeartbeatBatcher}); null: every heartbeat is its own
   * statement, as soon as it arrives.
   */
  batching?: { windowMs: number; maxSize: number; maxInFlight: number } | null;
  /**
   * Told which users came online with a heartbeat (they were offline or never
   * seen before it), after the write has committed: the source of live events.
   */
  onCameOnline?: (userIds: UserId[]) => void;
  /** A LISTEN/NOTIFY channel the heartbeat statement itself notifies of users who came online. */
  notifyChannel?: string | null;
  /** pulse is distributed by Citus: heartbeats are written in the form Citus writes cheaply. */
  citus?: boolean;
}

export class PresenceService {
  readonly #db: Database;
  readonly #replicaReads: ReplicaReads;
  readonly #thresholdSeconds: number;
  readonly #metrics: PresenceServiceOptions['metrics'];
  // Whether the next batch goes straight to the statement that reads each row (see recordHeartbeats).
  #readFirst = false;
  readonly #minWriteGapSeconds: number;
  readonly #rateLimit: HeartbeatRateLimit<UserStatus>;
  readonly #batcher: HeartbeatBatcher<UserStatus> | null;
  readonly #onCameOnline: ((userIds: UserId[]) => void) | undefined;
  readonly #notifyChannel: string | null;
  readonly #citus: boolean;

  constructor(options: PresenceServiceOptions) {
    this.#db = options.db;
    this.#replicaReads = options.replicaReads ?? ((read) => read(options.db));
    this.#thresholdSeconds = options.thresholdSeconds;
    this.#minWriteGapSeconds = options.minWriteGapSeconds ?? 0;
    this.#metrics = options.metrics;
    this.#rateLimit = new HeartbeatRateLimit(options.heartbeatMinIntervalMs ?? 0);
    this.#onCameOnline = options.onCameOnline;
    this.#notifyChannel = options.notifyChannel ?? null;
    this.#citus = options.citus ?? false;
    this.#batcher = options.batching
      ? new HeartbeatBatcher({ ...options.batching, write: (ids, idle) => this.#write(ids, idle) })
      : null;
  }

  /**
   * Marks `userId` alive now and returns their status after the write has
   * committed. A repeat within the rate-limit interval gets the first heartbeat's
   * answer instead; with batching, the write shares a statement with the
   * heartbeats that arrived around it.
   *
   * `idle`: the user is connected but not using the app; while their latest
   * heartbeat says so they show AWAY (unless they chose a manual status).
   */
  heartbeat(userId: UserId, idle = false): Promise<UserStatus> {
    const { limited, answer } = this.#rateLimit.answer(
      userId,
      () =>
        this.#batcher
          ? this.#batcher.submit(userId, idle)
          : this.#write([userId], idle ? new Set([userId]) : new Set()).then((answers) => answers.get(userId)!),
      idle ? 'idle' : 'active',
    );
    if (limited) this.#metrics?.heartbeats.inc({ outcome: 'limited' });
    return answer;
  }

  /**
   * Writes every buffered heartbeat and waits for the writes in flight. Call on
   * shutdown after the HTTP server has stopped taking requests, before the pool
   * closes.
   */
  async flush(): Promise<void> {
    await this.#batcher?.flush();
  }

  /** Heartbeats buffered for the next batch (not counting those being written). */
  get pendingHeartbeats(): number {
    return this.#batcher?.pending ?? 0;
  }

  // Private: one statement for a set of distinct users; every user's status after it.
  async #write(userIds: readonly UserId[], idle: ReadonlySet<UserId>): Promise<Map<UserId, UserStatus>> {
    let outcome;
    try {
      outcome = await recordHeartbeats(
        this.#db,
        sortUserIds(userIds),
        this.#thresholdSeconds,
        this.#minWriteGapSeconds,
        this.#notifyChannel,
        this.#citus,
        idle,
        this.#readFirst,
      );
    } catch (error) {
      this.#metrics?.heartbeats.inc({ outcome: 'failed' }, userIds.length);
      throw error;
    }
    // A batch most of whose users were not already online and past the gap (a
    // login storm) makes the next one skip the statement for the common case.
    this.#readFirst = outcome.uncommon * 2 > userIds.length;
    // Every user the statement names no exception for was written now: online,
    // last seen at the statement's time (one Date, shared: statuses are never
    // mutated).
    const answers = new Map<UserId, UserStatus>();
    for (const row of outcome.skipped) answers.set(row.user_id as UserId, statusFromRow(row.user_id as UserId, row));
    const notWritten = new Set<UserId>(outcome.missing);
    for (const id of answers.keys()) notWritten.add(id);
    for (const id of userIds) {
      if (!notWritten.has(id)) answers.set(id, { userId: id, state: 'ONLINE', online: true, lastSeen: outcome.now, statusText: null, manualStatus: null, idle: false });
    }
    // Coming online, and turning idle or active again, change what watchers see.
    const changed = [...outcome.cameOnline, ...outcome.idleChanged];
    if (changed.length > 0) this.#onCameOnline?.(changed);
    const written = userIds.length - notWritten.size;
    this.#metrics?.heartbeats.inc({ outcome: 'written' }, written);
    this.#metrics?.heartbeats.inc({ outcome: 'skipped' }, outcome.skipped.length);
    this.#metrics?.heartbeatBatchSize.observe(userIds.length);
    // A user whose first row another process inserted after this statement's
    // snapshot was taken is neither written nor visible to it. Rare: read them,
    // each as they see themself.
    for (const id of outcome.missing) {
      const [status] = await this.statuses([id], id, { fresh: true });
      answers.set(id, status!);
    }
    return answers;
  }

  /**
   * Given user ids, returns their statuses as `viewer` sees them (null: an
   * anonymous viewer), in the same order (duplicates included), in one SQL
   * statement. Manual status, privacy and the threshold are all applied here:
   * every protocol that returns a status calls this.
   *
   * The read goes to a read replica when one is configured, unless it must show
   * a write just made: `fresh` (an answer to a mutation, a live event about a
   * change), or the viewer's own status among `userIds` (what a user just did to
   * themself must never look undone). Those read the primary.
   */
  async statuses(userIds: readonly UserId[], viewer: UserId | null, options: ReadOptions = {}): Promise<UserStatus[]> {
    const unique = [...new Set(userIds)];
    const fresh = options.fresh === true || (viewer !== null && unique.includes(viewer));
    const rows = await this.#read(fresh, (db) => findStatusRows(db, unique, viewer, this.#thresholdSeconds));
    const byId = new Map(rows.map((row) => [row.user_id, row]));
    return userIds.map((id) => {
      const row = byId.get(id);
      // The read yields a row for every id; a missing one would be a bug, and the
      // safe answer to a bug in a privacy rule is "never seen".
      return row ? visibleStatus(row, viewer) : neverSeen(id);
    });
  }

  /**
   * For each of `userIds` whose status will change by itself (an online user
   * going offline without another heartbeat, a manual status expiring), the
   * milliseconds until it does, by user, in one statement: live presence's
   * timers. Users with nothing pending are not in the map. Routed as
   * {@link statuses} is.
   */
  timesUntilChange(userIds: readonly UserId[], options: ReadOptions = {}): Promise<Map<UserId, number>> {
    return this.#read(options.fresh === true, (db) => findTimesUntilChange(db, userIds, this.#thresholdSeconds));
  }

  /**
   * A loader for one request by `viewer`: every `load(id)` made in the same tick
   * is answered by one call to {@link statuses}, so a request costs one statement
   * however many fields ask. Create one per request; its cache must not outlive
   * it, or a status would stay stale after the threshold passes, and it must not
   * be shared between viewers, who may see different things. `fresh`: read the
   * primary (see {@link statuses}).
   */
  createStatusLoader(viewer: UserId | null, options: ReadOptions = {}): DataLoader<UserId, UserStatus> {
    return new DataLoader((ids) => this.statuses(ids, viewer, options), { maxBatchSize: Infinity });
  }

  // Private: the primary for reads that must see the latest writes, otherwise
  // wherever the replica routing sends them.
  #read<T>(fresh: boolean, read: (db: Database) => Promise<T>): Promise<T> {
    return fresh ? read(this.#db) : this.#replicaReads(read);
  }
}

/**
 * What the transports (GraphQL, REST, event streams) ask of presence: heartbeats
 * in, statuses out, and the buffered heartbeats a stop must write. They depend on
 * this rather than on {@link PresenceService} and its batching and SQL (the TTL
 * comparator of `npm run bench` serves heartbeats another way behind the same
 * transports).
 */
export type Presence = Pick<PresenceService, 'heartbeat' | 'statuses' | 'createStatusLoader' | 'flush' | 'pendingHeartbeats'>;

/** How fresh a status read must be. */
export interface ReadOptions {
  /** Must show every write committed before it: read the primary, never a replica. */
  fresh?: boolean;
}
