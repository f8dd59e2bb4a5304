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
import { sql, type RawBuilder } from 'kysely';
import { preparedStatement, type Database } from '../db/database';
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

/** What the heartbeat statements of one batch did, from {@link recordHeartbeats}. */
export interface HeartbeatOutcome {
  /** The heartbeats' time: `last_hb` of every row written. */
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
  /**
   * How many of the batch's users were not the common case (online already, past
   * the gap, idle unchanged), so that the statement reading each row had to write
   * them: the hint for `readFirst` on the next batch. (Users never seen before
   * count when the batch went to the reading statement alone; in the two-statement
   * write the first inserts them, so they do not.)
   */
  uncommon: number;
}

/**
 * Records a heartbeat for each of `userIds`: `last_hb = now()`, inserting the rows
 * of users who have none. Every user the outcome does not name otherwise
 * (skipped, missing) was written: online, last seen `now`.
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
 * Two statements, each its own transaction, and the second only when needed:
 *
 *  1. {@link writeOnlineUsers}, the common case at the cost of a plain upsert:
 *     writes the users who are online already, past the gap, with their idle
 *     flag unchanged (nothing to tell anyone), and inserts the users never seen
 *     (who came online). It answers the time it wrote and the users it did not
 *     write, usually none.
 *  2. {@link writeTheRest}, for those users only: the statement that reads each
 *     row before writing it, to tell who came online, who turned idle or active,
 *     and who is within the gap. It writes the first statement's time, so the
 *     whole batch has one `now`.
 *
 * With `readFirst` (the caller's hint that most users of its previous batch were
 * not the common case: {@link HeartbeatOutcome.uncommon}), the batch goes to the
 * reading statement alone, at its own `now()`: in a login storm that saves the
 * first statement and a second commit per batch, and the next batch whose users
 * are mostly online again goes back to the two.
 *
 * Lock order: each statement locks rows in ascending id order (an upsert locks the
 * row of each conflicting input row, written or not, in the order of its input),
 * and each commits before the next one starts, so a batch never holds a lock
 * while it waits for another and two concurrent batches cannot deadlock, whatever
 * users they share. A failure between the two statements leaves the first one's
 * writes, which is harmless: the whole batch is answered with the error, and a
 * heartbeat answered with an error may or may not have been written (nothing
 * acknowledged is lost).
 */
export async function recordHeartbeats(
  db: Database,
  userIds: readonly UserId[],
  thresholdSeconds: number,
  minWriteGapSeconds: number,
  notifyChannel: string | null = null,
  citus = false,
  idleUserIds: ReadonlySet<UserId> = new Set(),
  readFirst = false,
): Promise<HeartbeatOutcome> {
  if (userIds.length === 0) return { now: new Date(), skipped: [], cameOnline: [], idleChanged: [], missing: [], uncommon: 0 };
  const settings = { thresholdSeconds, minWriteGapSeconds, notifyChannel, citus };
  if (readFirst) {
    // Most users of the last batch needed the reading statement (a login storm:
    // everyone reconnecting after an outage): the first statement would write few
    // and lock every row for nothing, so the batch goes to the reading one alone.
    const all = await writeTheRest(db, userIds, idleUserIds, null, settings);
    const { skipped, cameOnline, idleChanged, missing } = all;
    return { ...all, uncommon: skipped.length + cameOnline.length + idleChanged.length + missing.length };
  }
  const first = await writeOnlineUsers(db, userIds, idleUserIds, settings);
  if (first.rest.length === 0) return { now: first.now, skipped: [], cameOnline: first.inserted, idleChanged: [], missing: [], uncommon: 0 };
  const second = await writeTheRest(db, first.rest, idleUserIds, first.exactNow, settings);
  return { ...second, now: first.now, cameOnline: [...first.inserted, ...second.cameOnline], uncommon: first.rest.length };
}

// Private: what both heartbeat statements need besides the users.
interface HeartbeatSettings {
  thresholdSeconds: number;
  minWriteGapSeconds: number;
  notifyChannel: string | null;
  citus: boolean;
}

// Private: the heartbeat rows `(user_id, last_hb, idle)` for an insert, in lock
// order, with `time` as last_hb. On PostgreSQL, array parameters: the statement
// text is the same for every batch, so it can be prepared once. On Citus (pulse is
// distributed), a VALUES list instead: Citus splits it by shard and writes over one
// connection per worker, where INSERT ... SELECT FROM unnest goes through the
// coordinator with a COPY, a new connection and a two-phase commit per shard
// touched (docs/scale-out.md has the figures).
function heartbeatRows(userIds: readonly UserId[], idleUserIds: ReadonlySet<UserId>, time: RawBuilder<unknown>, citus: boolean) {
  const idle = userIds.map((id) => idleUserIds.has(id));
  return citus
    ? sql`values ${sql.join(userIds.map((id, i) => sql`(${id}::bigint, ${time}, ${idle[i]!}::boolean)`))}`
    : sql`select user_id, ${time}, idle
      from unnest(${sql.val(userIds)}::bigint[], ${sql.val(idle)}::boolean[]) with ordinality as t(user_id, idle, position)
      order by position`;
}

// Private: a CTE `notified` that NOTIFYs `channel` of the users in `changed` (a
// query of user_id), 300 ids per message (a NOTIFY payload must stay under 8000
// bytes). NOTIFY is delivered at commit, so listeners never hear of a write that
// rolled back. The `::text` is for Citus, which keeps every CTE's rows as an
// intermediate result and refuses a `void` column in one; pg_notify then runs on
// the coordinator (the CTE reads only intermediate results), whose listeners hear
// it. A read-only CTE runs only if referenced: the statement must read `notified`.
function notifiedCte(channel: string, changed: RawBuilder<unknown>) {
  return sql`notified as (
    select pg_notify(${channel}, string_agg(user_id::text, ','))::text
    from (select user_id, row_number() over (order by user_id) as n from (${changed}) as changed) as numbered
    group by (n - 1) / 300
  )`;
}

// Private: the first heartbeat statement (see recordHeartbeats). The upsert writes
// only rows online (`excluded.last_hb - pulse.last_hb <= threshold`: last_hb >=
// now() - threshold), past the gap, with the same idle flag: such a write changes
// nothing anyone sees, so it needs no read of the row before it and no
// notification. An upsert that finds a row and whose condition is false leaves it
// alone; an inserted row (`xmax = 0`: a row the upsert updated carries its lock in
// xmax, a detail of PostgreSQL's upsert that the tests pin down) is a user never
// seen, who came online. The answer is one row. Its last two columns are
// subqueries behind a CASE, which PostgreSQL evaluates only when the CASE needs
// them (uncorrelated subqueries are init plans, run on first use): in the common
// case nothing is listed and nobody notified, and what the statement costs beyond
// the upsert is one count over its RETURNING rows. Prepared on PostgreSQL (the
// Citus VALUES list changes with the batch size), it is also planned only once.
async function writeOnlineUsers(
  db: Database,
  userIds: readonly UserId[],
  idleUserIds: ReadonlySet<UserId>,
  settings: HeartbeatSettings,
): Promise<{ now: Date; exactNow: string; inserted: UserId[]; rest: UserId[] }> {
  const { notifyChannel, citus } = settings;
  const notify = notifyChannel ? sql`, ${notifiedCte(notifyChannel, sql`select user_id from written where inserted`)}` : sql``;
  const notifications = notifyChannel ? sql`(select count(*) from notified)` : sql`0`;
  const { rows } = await sql<{ now: string; exact_now: string; notifications: string | null; inserted: string[] | null; rest: string[] | null }>`${citus ? sql`` : preparedStatement}
    with written as (
      insert into pulse (user_id, last_hb, idle)
      ${heartbeatRows(userIds, idleUserIds, sql`now()`, citus)}
      on conflict (user_id) do update set last_hb = excluded.last_hb, idle = excluded.idle
      where excluded.last_hb - pulse.last_hb <= make_interval(secs => ${settings.thresholdSeconds})
        and excluded.last_hb - pulse.last_hb >= make_interval(secs => ${settings.minWriteGapSeconds})
        and excluded.idle = pulse.idle
      returning user_id, xmax = 0 as inserted
    ), tally as (
      select count(*) as written, count(*) filter (where inserted) as inserted from written
    )${notify}
    select ${isoTime(sql`now()`)} as now,
      ${exactTime(sql`now()`)} as exact_now,
      case when t.inserted > 0 then ${notifications} end as notifications,
      case when t.inserted > 0 then array(select user_id::text from written where inserted) end as inserted,
      case when t.written < ${userIds.length}::int then array(
        select user_id::text from (select user_id from unnest(${sql.val(userIds)}::bigint[]) as u(user_id)
          except all select user_id from written) as rest
      ) end as rest
    from tally t
  `.execute(db);
  const row = rows[0]!;
  return {
    now: new DatabaseTime(row.now),
    exactNow: row.exact_now,
    inserted: (row.inserted ?? []) as UserId[],
    // In lock order again: EXCEPT returns its rows in no particular order.
    rest: sortUserIds((row.rest ?? []) as UserId[]),
  };
}

// Private: the second heartbeat statement (see recordHeartbeats), for the users the
// first did not write, at the first one's time `exactNow`.
//
// `before` reads the table as it was before the write: the previous heartbeat of a
// written row, and the current one of a skipped row, which the upsert left alone.
// It tells who came online with this heartbeat, with no further statement. On
// PostgreSQL every part of one statement shares its snapshot, so the order of the
// CTEs does not matter; Citus runs materialised CTEs one after the other, in the
// order written, so `before` comes first and is MATERIALIZED (inlined into the
// final SELECT, it would run after the write and read it). With a channel, the
// statement also NOTIFYs the users it brought online or changed between idle and
// active (both change what watchers see). The answer names only the exceptions.
// Prepared on PostgreSQL too: planning this statement costs about a millisecond,
// more than running it for the few users a batch usually leaves to it.
async function writeTheRest(
  db: Database,
  userIds: readonly UserId[],
  idleUserIds: ReadonlySet<UserId>,
  exactNow: string | null,
  settings: HeartbeatSettings,
): Promise<Omit<HeartbeatOutcome, 'uncommon'>> {
  const { notifyChannel, citus } = settings;
  const ids = sql.val(userIds);
  // The first statement's time, or (the batch sent here alone) this statement's own.
  const now = sql`coalesce(${exactNow}::timestamptz, now())`;
  const onlineSince = sql`${now} - make_interval(secs => ${settings.thresholdSeconds})`;
  const notify = notifyChannel
    ? sql`, ${notifiedCte(notifyChannel, sql`select user_id from came_online union all select user_id from idle_changed`)}`
    : sql``;
  // Referenced, or the notify CTE would never run.
  const notifications = notifyChannel ? sql`(select count(*) from notified)::int` : sql`0`;
  const { rows } = await sql<{ kind: 'now' | 'notified' | 'skipped' | 'came_online' | 'idle_changed' | 'missing'; user_id: string | null; last_hb: string | null; online: boolean | null; idle: boolean | null }>`${citus ? sql`` : preparedStatement}
    with before as materialized (
      select user_id, last_hb, idle from pulse where user_id = any(${ids}::bigint[])
    ), heartbeat as (
      insert into pulse (user_id, last_hb, idle)
      ${heartbeatRows(userIds, idleUserIds, now, citus)}
      on conflict (user_id) do update set last_hb = excluded.last_hb, idle = excluded.idle
      where excluded.last_hb - pulse.last_hb >= make_interval(secs => ${settings.minWriteGapSeconds})
         or excluded.idle <> pulse.idle
      returning user_id, idle
    ), came_online as (
      select h.user_id from heartbeat h left join before b on b.user_id = h.user_id
      where b.last_hb is null or b.last_hb < ${onlineSince}
    ), idle_changed as (
      select h.user_id from heartbeat h join before b on b.user_id = h.user_id
      where b.last_hb >= ${onlineSince} and h.idle <> b.idle
    )${notify}
    select 'now' as kind, null as user_id, ${isoTime(now)} as last_hb, null::boolean as online, null::boolean as idle
    union all
    select 'notified', null, null, null, null
      where ${notifications} < 0
    union all
    select 'came_online', user_id::text, null, null, null from came_online
    union all
    select 'idle_changed', user_id::text, null, null, null from idle_changed
    union all
    select 'skipped', b.user_id::text, ${isoTime(sql`b.last_hb`)}, b.last_hb >= ${onlineSince}, b.idle
      from before b where not exists (select from heartbeat h where h.user_id = b.user_id)
    union all
    select 'missing', t.user_id::text, null, null, null from unnest(${ids}::bigint[]) as t(user_id)
     where not exists (select from heartbeat h where h.user_id = t.user_id)
       and not exists (select from before b where b.user_id = t.user_id)
  `.execute(db);
  const outcome: Omit<HeartbeatOutcome, 'uncommon'> = { now: new Date(), skipped: [], cameOnline: [], idleChanged: [], missing: [] };
  for (const row of rows) {
    if (row.kind === 'now') outcome.now = new DatabaseTime(row.last_hb!);
    else if (row.kind === 'skipped') outcome.skipped.push({ user_id: row.user_id!, last_hb: new DatabaseTime(row.last_hb!), online: row.online!, idle: row.idle! });
    else if (row.kind === 'came_online') outcome.cameOnline.push(row.user_id as UserId);
    else if (row.kind === 'idle_changed') outcome.idleChanged.push(row.user_id as UserId);
    else if (row.kind === 'missing') outcome.missing.push(row.user_id as UserId);
  }
  return outcome;
}

// Private: SQL, `timestamp` as ISO-8601 UTC text with microseconds, which casts
// back to the same timestamptz exactly (whatever the session's DateStyle).
function exactTime(timestamp: RawBuilder<unknown>): RawBuilder<string> {
  return sql<string>`to_char(${timestamp} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
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
