/**
 * The write statements the database bench sends. Pulse's own batched heartbeat
 * statement is not copied here: the bench calls recordHeartbeats itself, as
 * Pulse's heartbeat batcher does (through PresenceService), so what is measured
 * is what Pulse sends. The two bare upserts are the yardsticks it is compared with.
 */
import { loadConfig } from '../../src/config';
import type { Database } from '../../src/db/database';
import { PRESENCE_CHANNEL } from '../../src/live/postgres-bus';
import { recordHeartbeats, sortUserIds, type HeartbeatOutcome } from '../../src/presence/pulse-repository';
import type { UserId } from '../../src/presence/user-id';

// The yardsticks, Citus-compatible as Pulse's statement is: now() goes in the
// inserted row and `excluded.last_hb` copies it, because Citus refuses
// non-immutable functions in ON CONFLICT DO UPDATE SET.

/** The Day-0 heartbeat: one user per statement. */
export const SINGLE_UPSERT =
  'insert into pulse (user_id, last_hb) values ($1, now()) on conflict (user_id) do update set last_hb = excluded.last_hb';

/**
 * The floor: the cheapest statement that writes a batch of heartbeats, a bare
 * unnest upsert with no write gap, no idle column, no answer and no NOTIFY.
 * `order by id`: concurrent batches lock their rows in one global order, so two
 * batches that share users wait for each other instead of deadlocking.
 */
export const BATCHED_UPSERT =
  'insert into pulse (user_id, last_hb) select id, now() from unnest($1::bigint[]) as t(id) order by id on conflict (user_id) do update set last_hb = excluded.last_hb';

/** What Pulse's heartbeat statement is told besides the users: PresenceService's settings. */
export interface PulseStatementSettings {
  thresholdSeconds: number;
  minWriteGapSeconds: number;
  /** The LISTEN/NOTIFY channel of the PostgreSQL presence bus, or null (Redis bus). */
  notifyChannel: string | null;
}

/**
 * Pulse's defaults, as a Pulse started with no settings runs: the PostgreSQL
 * presence bus (so the statement NOTIFYs), the default threshold and write gap,
 * and the batcher's limits. `env` may set the PRESENCE_* and HEARTBEAT_*
 * variables, as for Pulse itself.
 */
export function pulseDefaults(env: NodeJS.ProcessEnv = {}): PulseStatementSettings & { batchMax: number; batchesInFlight: number } {
  const presenceEnv = Object.fromEntries(Object.entries(env).filter(([name]) => /^(PRESENCE|HEARTBEAT)_/.test(name)));
  // A secret only to satisfy the configuration: the bench signs no token.
  const config = loadConfig({ ...presenceEnv, JWT_SECRET: 'the-database-bench-signs-no-tokens-at-all' });
  return {
    thresholdSeconds: config.presence.thresholdSeconds,
    minWriteGapSeconds: config.presence.minWriteGapSeconds,
    notifyChannel: PRESENCE_CHANNEL,
    batchMax: config.heartbeatBatching.maxSize,
    batchesInFlight: config.heartbeatBatching.maxInFlight,
  };
}

/**
 * One batch of heartbeats through Pulse's statement, sent as the batcher's write
 * sends it (PresenceService): distinct users sorted into lock order, every one
 * active (not idle), on plain PostgreSQL (not Citus).
 */
export function writePulseBatch(db: Database, userIds: readonly UserId[], settings: PulseStatementSettings): Promise<HeartbeatOutcome> {
  return recordHeartbeats(db, sortUserIds(userIds), settings.thresholdSeconds, settings.minWriteGapSeconds, settings.notifyChannel);
}
