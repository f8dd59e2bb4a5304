/**
 * Presence settings: a user's manual status (away, busy, invisible) and privacy
 * (who may see their presence, whether others see "last seen"). One row per user
 * who changed anything; no row means the defaults (automatic status, visible to
 * everyone, last seen shown).
 *
 * No foreign key to users or pulse: users who exist only as ids in tokens may set
 * a status too, and pulse stays free of constraints that would tax its writes.
 * Frozen in time: takes Kysely<any> on purpose.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table presence_settings (
      user_id bigint primary key,
      manual_status text not null default 'AUTO'
        check (manual_status in ('AUTO', 'AWAY', 'BUSY', 'INVISIBLE')),
      status_text text check (char_length(status_text) <= 140),
      -- After this instant the manual status and its text no longer apply; the
      -- read compares it with now(), so nothing has to reset it.
      expires_at timestamptz,
      -- While invisible, what others see as "last seen": the last heartbeat
      -- before the user went invisible (null if they had never sent one).
      invisible_last_seen timestamptz,
      visibility text not null default 'EVERYONE'
        check (visibility in ('EVERYONE', 'CONTACTS', 'NOBODY')),
      show_last_seen boolean not null default true,
      updated_at timestamptz not null default now()
    )
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('presence_settings').execute();
}
