/**
 * Presence: heartbeats in, statuses out. The rules live here; the SQL lives in
 * the pulse repository; protocols (GraphQL, HTTP) live above.
 */
import DataLoader from 'dataloader';
import type { Database } from '../db/database';
import type { Metrics } from '../observability/metrics';
import { HeartbeatRateLimit } from './heartbeat-rate-limit';
import { upsertPulse } from './pulse-repository';
import { findStatusRows } from './status-repository';
import { neverSeen, statusFromRow, type UserStatus } from './user-status';
import { visibleStatus } from './visible-status';
import type { UserId } from './user-id';

export interface PresenceServiceOptions {
  db: Database;
  /** A user is online while their last heartbeat is at most this many seconds old. */
  thresholdSeconds: number;
  metrics?: Pick<Metrics, 'heartbeats' | 'heartbeatBatchSize'>;
  /** A user's heartbeats closer together than this are answered without work; 0: off. */
  heartbeatMinIntervalMs?: number;
}

export class PresenceService {
  readonly #db: Database;
  readonly #thresholdSeconds: number;
  readonly #metrics: PresenceServiceOptions['metrics'];
  readonly #rateLimit: HeartbeatRateLimit<UserStatus>;

  constructor(options: PresenceServiceOptions) {
    this.#db = options.db;
    this.#thresholdSeconds = options.thresholdSeconds;
    this.#metrics = options.metrics;
    this.#rateLimit = new HeartbeatRateLimit(options.heartbeatMinIntervalMs ?? 0);
  }

  get thresholdSeconds(): number {
    return this.#thresholdSeconds;
  }

  /**
   * Marks `userId` alive now and returns their status after the write. A repeat
   * within the rate-limit interval gets the first heartbeat's answer instead.
   */
  heartbeat(userId: UserId): Promise<UserStatus> {
    const { limited, answer } = this.#rateLimit.answer(userId, () => this.#write(userId));
    if (limited) this.#metrics?.heartbeats.inc({ outcome: 'limited' });
    return answer;
  }

  async #write(userId: UserId): Promise<UserStatus> {
    let row;
    try {
      row = await upsertPulse(this.#db, userId, this.#thresholdSeconds);
    } catch (error) {
      this.#metrics?.heartbeats.inc({ outcome: 'failed' });
      throw error;
    }
    this.#metrics?.heartbeats.inc({ outcome: 'written' });
    this.#metrics?.heartbeatBatchSize.observe(1);
    return statusFromRow(userId, row);
  }

  /**
   * Given user ids, returns their statuses as `viewer` sees them (null: an
   * anonymous viewer), in the same order (duplicates included), in one SQL
   * statement. Manual status, privacy and the threshold are all applied here:
   * every protocol that returns a status calls this.
   */
  async statuses(userIds: readonly UserId[], viewer: UserId | null): Promise<UserStatus[]> {
    const unique = [...new Set(userIds)];
    const rows = await findStatusRows(this.#db, unique, viewer, this.#thresholdSeconds);
    const byId = new Map(rows.map((row) => [row.user_id, row]));
    return userIds.map((id) => {
      const row = byId.get(id);
      // The read yields a row for every id; a missing one would be a bug, and the
      // safe answer to a bug in a privacy rule is "never seen".
      return row ? visibleStatus(row, viewer) : neverSeen(id);
    });
  }

  /**
   * A loader for one request by `viewer`: every `load(id)` made in the same tick
   * is answered by one call to {@link statuses}, so a request costs one statement
   * however many fields ask. Create one per request; its cache must not outlive
   * it, or a status would stay stale after the threshold passes, and it must not
   * be shared between viewers, who may see different things.
   */
  createStatusLoader(viewer: UserId | null): DataLoader<UserId, UserStatus> {
    return new DataLoader((ids) => this.statuses(ids, viewer), { maxBatchSize: Infinity });
  }
}
