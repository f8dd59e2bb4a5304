/**
 * The statements that write the pulse table (heartbeats, retention) and its reads
 * of pulse alone. Plain functions that take the database first. Two statements
 * elsewhere also read pulse, each on purpose in one statement with another table:
 * the status read (status-repository.ts, pulse with presence_settings and follows)
 * and the INVISIBLE snapshot of last seen (users/settings-repository.ts).
 *
 * Two rules shape every statement here:
 *  - The database clock is the only clock. `now()` and the threshold comparison
 *    run in SQL, so API servers with skewed clocks agree on who is online.
 *  - Every statement must also run on Citus with pulse distributed by user_id:
 *    each names user_id, and an upsert puts `now()` in the inserted row and copies
 *    it with `EXCLUDED.last_hb`, because Citus rejects non-immutable functions in
 *    `ON CONFLICT DO UPDATE SET`.
 */
import { sql } from 'kysely';
import type { Database } from '../db/database';
import { DatabaseTime, isoTime } from '../db/database-time';
import type { UserId } from './user-id';

/** A user's pulse as the database sees it, with `online` judged by the database. */
export interface PulseRow {
  user_id: string;
  last_hb: Date;
  online: boolean;
  /** The latest heartbeat said the user is idle. */
  idle: boolean;
}

/** What one heartbeat statement did, from {@link recordHeartbeats}. */
export interface HeartbeatOutcome {
  /** The statement's time: `last_hb` of every row it wrote. */
  now: Date;
  /** Rows written less than the minimum write gap ago, left alone: each as it stands. */
  skipped: PulseRow[];
  /** Users the statement wrote who were offline or never seen before it. */
  cameOnline: UserId[];
  /** Users who were online and whose heartbeat changed them between idle and active. */
  idleChanged: UserId[];
  /**
   * Users neither written nor visible to the statement: their first row was
   * inserted by another transaction after this statement's snapshot. Rare.
   */
  missing: UserId[];
}

/**
 * Records a heartbeat for each of `userIds` in one statement: `last_hb = now()`,
 * inserting the rows of users who have none. Every user the outcome does not
 * name otherwise (skipped, missing) was written: online, last seen `now`.
 *
 * `userIds` must be distinct and sorted ascending (see {@link sortUserIds}): rows
 * are then locked in one global order, so two batches that share users wait for
 * each other instead of deadlocking, and no row is hit twice in one statement
 * ("ON CONFLICT DO UPDATE command cannot affect row a second time").
 *
 * A row written less than `minWriteGapSeconds` ago is not written again (its
 * status is returned as it stands): several tabs or devices of one user cost one
 * write per gap. A heartbeat that changes the user between idle and active
 * (`idleUserIds`: those whose heartbeat says idle) is written even inside the gap:
 * it changes what others see. The gap is a difference of two timestamps, not `timestamptz -
 * interval`, and `now()` sits in the inserted rows, not in the SET: Citus accepts
 * only immutable expressions in `ON CONFLICT DO UPDATE`.
 *
 * The answer names only the exceptions. In the common case (users already
 * online, past the gap) it is one row, the statement's time, however many users
 * the batch holds: PostgreSQL formats one timestamp instead of one per user, and
 * the API process parses one row.
 */
export async function recordHeartbeats(
  db: Database,
  userIds: readonly UserId[],
  thresholdSeconds: number,
  minWriteGapSeconds: number,
  notifyChannel: string | null = null,
  citus = false,
  idleUserIds: ReadonlySet<UserId> = new Set(),
): Promise<HeartbeatOutcome> {
  if (userIds.length === 0) return { now: new Date(), skipped: [], cameOnline: [], idleChanged: [], missing: [] };
  const ids = sql.val(userIds);
  const idle = userIds.map((id) => idleUserIds.has(id));
  // The heartbeat rows, in lock order. On PostgreSQL, array parameters: the
  // statement text is the same for every batch and cheap to plan. On Citus
  // (`citus`: pulse is distributed), a VALUES list instead: Citus splits it by
  // shard and writes over one connection per worker, where INSERT ... SELECT
  // FROM unnest goes through the coordinator with a COPY, a new connection and a
  // two-phase commit per shard touched (docs/scale-out.md has the figures).
  const heartbeatRows = citus
    ? sql`values ${sql.join(userIds.map((id, i) => sql`(${id}::bigint, now(), ${idle[i]!}::boolean)`))}`
    : sql`select user_id, now(), idle
      from unnest(${ids}::bigint[], ${sql.val(idle)}::boolean[]) with ordinality as t(user_id, idle, position)
      order by position`;
  const threshold = sql`make_interval(secs => ${thresholdSeconds})`;
  // With a channel, the statement also NOTIFYs the users it brought online or
  // changed between idle and active (both change what watchers see), 300
  // ids per message (a NOTIFY payload must stay under 8000 bytes). NOTIFY is
  // delivered at commit, so listeners never hear of a write that rolled back.
  // The `::text` is for Citus, which keeps every CTE's rows as an intermediate
  // result and refuses a `void` column in one; pg_notify then runs on the
  // coordinator (the CTE reads only intermediate results), whose listeners hear it.
  const notify = notifyChannel
    ? sql`, notified as (
        select pg_notify(${notifyChannel}, string_agg(user_id::text, ','))::text
        from (
          select user_id, row_number() over (order by user_id) as n
          from (select user_id from came_online union all select user_id from idle_changed) as changed
        ) as numbered
        group by (n - 1) / 300
      )`
    : sql``;
  // Referenced, or the notify CTE would never run (an unreferenced read-only CTE is skipped).
  const notifications = notifyChannel ? sql`(select count(*) from notified)::int` : sql`0`;
  // `before` reads the table as it was before the write: the previous heartbeat
  // of a written row, and the current one of a skipped row, which the upsert
  // left alone. It tells who came online with this heartbeat, with no second
  // statement. On PostgreSQL every part of one statement shares its snapshot, so
  // the order of the CTEs does not matter; Citus runs materialised CTEs one after
  // the other, in the order written, so `before` comes first and is MATERIALIZED
  // (inlined into the final SELECT, it would run after the write and read it).
  const { rows } = await sql<{ kind: 'now' | 'skipped' | 'came_online' | 'idle_changed' | 'missing'; user_id: string | null; last_hb: string | null; online: boolean | null; idle: boolean | null; notifications: number | null }>`
    with before as materialized (
      select user_id, last_hb, idle from pulse where user_id = any(${ids}::bigint[])
    ), heartbeat as (
      insert into pulse (user_id, last_hb, idle)
      ${heartbeatRows}
      on conflict (user_id) do update set last_hb = excluded.last_hb, idle = excluded.idle
      where excluded.last_hb - pulse.last_hb >= make_interval(secs => ${minWriteGapSeconds})
         or excluded.idle <> pulse.idle
      returning user_id, idle
    ), came_online as (
      select h.user_id from heartbeat h left join before b on b.user_id = h.user_id
      where b.last_hb is null or b.last_hb < now() - ${threshold}
    ), idle_changed as (
      select h.user_id from heartbeat h join before b on b.user_id = h.user_id
      where b.last_hb >= now() - ${threshold} and h.idle <> b.idle
    )${notify}
    select 'now' as kind, null as user_id, ${isoTime(sql`now()`)} as last_hb, null::boolean as online, null::boolean as idle, ${notifications} as notifications
    union all
    select 'came_online', user_id::text, null, null, null, null from came_online
    union all
    select 'idle_changed', user_id::text, null, null, null, null from idle_changed
    union all
    select 'skipped', b.user_id::text, ${isoTime(sql`b.last_hb`)}, b.last_hb >= now() - ${threshold}, b.idle, null
      from before b where not exists (select from heartbeat h where h.user_id = b.user_id)
    union all
    select 'missing', t.user_id::text, null, null, null, null from unnest(${ids}::bigint[]) as t(user_id)
     where not exists (select from heartbeat h where h.user_id = t.user_id)
       and not exists (select from before b where b.user_id = t.user_id)
  `.execute(db);
  const outcome: HeartbeatOutcome = { now: new Date(), skipped: [], cameOnline: [], idleChanged: [], missing: [] };
  for (const row of rows) {
    if (row.kind === 'now') outcome.now = new DatabaseTime(row.last_hb!);
    else if (row.kind === 'skipped') outcome.skipped.push({ user_id: row.user_id!, last_hb: new DatabaseTime(row.last_hb!), online: row.online!, idle: row.idle! });
    else if (row.kind === 'came_online') outcome.cameOnline.push(row.user_id as UserId);
    else if (row.kind === 'idle_changed') outcome.idleChanged.push(row.user_id as UserId);
    else outcome.missing.push(row.user_id as UserId);
  }
  return outcome;
}

/**
 * Sorts user ids ascending as numbers, the lock order {@link recordHeartbeats}
 * needs. Ids have no leading zeros, so a shorter id is always the smaller one.
 */
export function sortUserIds(userIds: Iterable<UserId>): UserId[] {
  return [...userIds].sort((a, b) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0));
}

/** One step of a walk over the pulse table in primary-key order. */
export interface RetentionStep {
  /** The largest user_id this step looked at; null when the walk is over. */
  lastUserId: string | null;
  deleted: number;
}

/**
 * Deletes, among the next `batchSize` rows after `afterUserId` in primary-key
 * order, those whose last heartbeat is older than `cutoff`. One short statement
 * per step: no transaction or lock grows with the table, and a concurrent
 * heartbeat that refreshes a row between the read and the delete keeps it (the
 * delete re-checks `last_hb` on the row it locks).
 */
export async function deletePulsesOlderThan(
  db: Database,
  cutoff: Date,
  afterUserId: string,
  batchSize: number,
): Promise<RetentionStep> {
  const { rows } = await sql<{ last_user_id: string | null; deleted: string }>`
    with batch as (
      select user_id from pulse
      where user_id > ${afterUserId}::bigint
      order by user_id
      limit ${batchSize}
    ), removed as (
      delete from pulse
      where user_id in (select user_id from batch) and last_hb < ${cutoff}
      returning user_id
    )
    select (select max(user_id) from batch)::text as last_user_id,
           (select count(*) from removed) as deleted
  `.execute(db);
  const row = rows[0]!;
  return { lastUserId: row.last_user_id, deleted: Number(row.deleted) };
}
