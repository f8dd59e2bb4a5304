/**
 * Away when idle: whether a user's latest heartbeat said they were idle (connected,
 * not using the app). A column of the pulse row, written by the same statement as
 * last_hb, so a heartbeat stays one row write.
 *
 * No index on it (an indexed column would end HOT updates of the hottest table),
 * and a constant default, so adding it rewrites nothing: PostgreSQL 11+ stores
 * the default in the catalog. docs/decisions/0002-idle-in-the-pulse-row.md says why.
 * Frozen in time: takes Kysely<any> on purpose.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table pulse add column idle boolean not null default false`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table pulse drop column idle`.execute(db);
}
