/**
 * All SQL on the pulse table. Plain functions that take the database first.
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
import type { UserId } from './user-id';

/** A user's pulse as the database sees it, with `online` judged by the database. */
export interface PulseRow {
  user_id: string;
  last_hb: Date;
  online: boolean;
}

// Private: `online` for a row, judged against the database clock. make_interval
// takes the threshold as a parameter, so the statement text (and its plan) does
// not change with the configured threshold.
const onlineExpression = (thresholdSeconds: number) =>
  sql<boolean>`last_hb >= now() - make_interval(secs => ${thresholdSeconds})`.as('online');

/**
 * Records a heartbeat for `userId`: `last_hb = now()`, inserting the row when the
 * user has none. Returns the row as written.
 */
export async function upsertPulse(db: Database, userId: UserId, thresholdSeconds: number): Promise<PulseRow> {
  return db
    .insertInto('pulse')
    .values({ user_id: userId, last_hb: sql<Date>`now()` })
    .onConflict((oc) => oc.column('user_id').doUpdateSet({ last_hb: (eb) => eb.ref('excluded.last_hb') }))
    .returning(['user_id', 'last_hb', onlineExpression(thresholdSeconds)])
    .executeTakeFirstOrThrow();
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
