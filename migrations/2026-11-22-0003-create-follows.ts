/**
 * Follows: who follows whom. A user's contacts are the users they follow, which
 * is what the CONTACTS visibility lets see their presence.
 * Frozen in time: takes Kysely<any> on purpose.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table follows (
      follower_id bigint not null references users (id) on delete cascade,
      followee_id bigint not null references users (id) on delete cascade,
      created_at timestamptz not null default now(),
      -- "Whom does X follow?" and the status read's "does the target follow the
      -- viewer?" are both look-ups by this key.
      primary key (follower_id, followee_id),
      check (follower_id <> followee_id)
    )
  `.execute(db);
  // "Who follows X?" (the followers list, and deleting a user).
  await sql`create index follows_followee on follows (followee_id, follower_id)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('follows').execute();
}
