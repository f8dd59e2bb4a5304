/**
 * The pulse table: one row per user who ever sent a heartbeat.
 *
 * Every online user's row is rewritten every few seconds, so the table is tuned for
 * churn rather than for growth. Frozen in time: takes Kysely<any> on purpose.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table pulse (
      user_id bigint primary key,
      last_hb timestamptz not null
    ) with (
      -- Leave 30% of every page free so the new version of a row fits on the same
      -- page as the old one: the update is then HOT (no primary-key index entry is
      -- written) and the old version is pruned in place without waiting for vacuum.
      fillfactor = 70,
      -- Vacuum when 2% of rows are dead, not the default 20%: at 100k updates/s the
      -- default lets dead versions pile up to a fifth of a large table between runs.
      autovacuum_vacuum_scale_factor = 0.02,
      -- ...but not on every few rows of a small table.
      autovacuum_vacuum_threshold = 1000,
      -- Updates never change user_id's distribution, so statistics go stale slowly;
      -- analyse less eagerly than the vacuum threshold above would imply.
      autovacuum_analyze_scale_factor = 0.1
    )
  `.execute(db);
  // Deliberately no index on last_hb: an indexed column that changes on every
  // heartbeat would make every update non-HOT and double the write cost.
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('pulse').execute();
}
