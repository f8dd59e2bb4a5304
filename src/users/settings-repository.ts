/**
 * All SQL on the presence_settings table. Plain functions that take the database
 * first. Reading the settings for a status is not here: the status read joins
 * them in its one statement (src/presence/status-repository.ts). One statement
 * here reads pulse: choosing INVISIBLE snapshots the user's last heartbeat in the
 * same statement as the write, one round trip.
 */
import { sql } from 'kysely';
import type { Database } from '../db/database';
import type { UserId } from '../presence/user-id';
import type { ManualStatus } from '../presence/user-status';
import type { Visibility } from '../presence/visibility';

export interface ManualStatusChange {
  status: ManualStatus;
  text: string | null;
  expiresAt: Date | null;
}

/**
 * Sets `userId`'s manual status, text and expiry, replacing the previous ones.
 *
 * Going invisible takes a snapshot of the last heartbeat: that is the "last seen"
 * others are shown while the user stays invisible, as if they had gone offline
 * then. Choosing INVISIBLE again while still invisible keeps the snapshot, or
 * others would see "last seen" move and learn the user is active.
 */
export async function upsertManualStatus(db: Database, userId: UserId, change: ManualStatusChange): Promise<void> {
  // Shaped for Citus as well: INSERT ... SELECT rather than a subquery in VALUES
  // (which Citus refuses), and now() only in the inserted row, read back as
  // `excluded.updated_at` (Citus refuses non-immutable functions in DO UPDATE).
  await sql`
    insert into presence_settings as settings (user_id, manual_status, status_text, expires_at, invisible_last_seen, updated_at)
    select ${userId}::bigint, ${change.status}, ${change.text}, ${change.expiresAt}::timestamptz,
           case when ${change.status} = 'INVISIBLE'
                then (select last_hb from pulse where pulse.user_id = ${userId}::bigint) end,
           now()
    on conflict (user_id) do update set
      manual_status = excluded.manual_status,
      status_text = excluded.status_text,
      expires_at = excluded.expires_at,
      invisible_last_seen = case
        when excluded.manual_status = 'INVISIBLE'
         and settings.manual_status = 'INVISIBLE'
         and (settings.expires_at is null or settings.expires_at > excluded.updated_at)
        then settings.invisible_last_seen
        else excluded.invisible_last_seen end,
      updated_at = excluded.updated_at
  `.execute(db);
}

export interface PrivacyRow {
  visibility: Visibility;
  show_last_seen: boolean;
}

/**
 * Changes the privacy settings given (null: leave as is) and returns them all as
 * they now stand.
 */
export async function upsertPrivacy(
  db: Database,
  userId: UserId,
  change: { visibility: Visibility | null; showLastSeen: boolean | null },
): Promise<PrivacyRow> {
  // now() only in the inserted row, for Citus (see upsertManualStatus).
  const { rows } = await sql<PrivacyRow>`
    insert into presence_settings as settings (user_id, visibility, show_last_seen, updated_at)
    values (${userId}::bigint, coalesce(${change.visibility}, 'EVERYONE'), coalesce(${change.showLastSeen}::boolean, true), now())
    on conflict (user_id) do update set
      visibility = coalesce(${change.visibility}, settings.visibility),
      show_last_seen = coalesce(${change.showLastSeen}::boolean, settings.show_last_seen),
      updated_at = excluded.updated_at
    returning visibility, show_last_seen
  `.execute(db);
  return rows[0]!;
}

/** `userId`'s privacy settings; the defaults when they never changed them. */
export async function findPrivacy(db: Database, userId: UserId): Promise<PrivacyRow> {
  const row = await db
    .selectFrom('presence_settings')
    .select(['visibility', 'show_last_seen'])
    .where('user_id', '=', userId)
    .executeTakeFirst();
  return row ?? { visibility: 'EVERYONE', show_last_seen: true };
}
