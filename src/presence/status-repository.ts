/**
 * The status read: everything that decides what a viewer sees of a batch of
 * users, in one SQL statement.
 *
 * Starts from the requested ids (unnest), so each id yields exactly one row even
 * with no pulse, no settings or no follow, and joins by primary key:
 *  - pulse: the last heartbeat, and whether it is within the threshold;
 *  - presence_settings: manual status, its text and expiry, privacy;
 *  - follows: whether the target follows the viewer, which is what CONTACTS
 *    visibility asks ("my contacts are the users I follow").
 * Time is judged here, by the database clock: the threshold and the expiry of a
 * manual status both compare against now(), so no job ever resets a status and
 * API servers with skewed clocks agree.
 *
 * Beside it, the read behind live presence's timers (findTimesUntilChange): when
 * each user's status will change by itself, from pulse and presence_settings
 * joined the same way, also in one statement.
 */
import { sql, type RawBuilder } from 'kysely';
import type { Database } from '../db/database';
import { databaseTime, isoTime } from '../db/database-time';
import type { UserId } from './user-id';
import type { ManualStatus } from './user-status';
import type { Visibility } from './visibility';

/** Everything the read knows about one target, before the viewer's rules apply. */
export interface StatusRow {
  user_id: string;
  /** The real last heartbeat; null for never seen. */
  last_hb: Date | null;
  /** The last heartbeat is within the threshold. */
  connected: boolean;
  /** The latest heartbeat said the user is idle (connected, not using the app). */
  idle: boolean;
  /** The manual status in force: AUTO when none was set or it expired. */
  manual_status: ManualStatus;
  /** The status text, null when none was set or it expired. */
  status_text: string | null;
  /** While invisible: the last heartbeat before going invisible. */
  invisible_last_seen: Date | null;
  visibility: Visibility;
  show_last_seen: boolean;
  /** The target follows the viewer (false for an anonymous viewer). */
  follows_viewer: boolean;
}

/**
 * One {@link StatusRow} per id in `userIds` (which must hold no duplicates), in no
 * particular order, in one statement. `viewer` null is an anonymous viewer.
 */
export async function findStatusRows(
  db: Database,
  userIds: readonly UserId[],
  viewer: UserId | null,
  thresholdSeconds: number,
): Promise<StatusRow[]> {
  if (userIds.length === 0) return [];
  const { rows } = await statusRowsQuery(userIds, viewer, thresholdSeconds).execute(db);
  // The timestamps arrive as ISO text (see DatabaseTime) and become Dates in
  // place: the rows are this function's own.
  const statusRows = rows as unknown as StatusRow[];
  for (const row of rows) {
    (row as unknown as StatusRow).last_hb = databaseTime(row.last_hb);
    (row as unknown as StatusRow).invisible_last_seen = databaseTime(row.invisible_last_seen);
  }
  return statusRows;
}

/** A {@link StatusRow} as the statement sends it: timestamps as ISO-8601 text. */
export type StatusRowText = Omit<StatusRow, 'last_hb' | 'invisible_last_seen'> & {
  last_hb: string | null;
  invisible_last_seen: string | null;
};

/** The statement {@link findStatusRows} runs, unexecuted (for EXPLAIN). */
export function statusRowsQuery(userIds: readonly UserId[], viewer: UserId | null, thresholdSeconds: number): RawBuilder<StatusRowText> {
  // Array parameters: the statement text is the same for 1 id or 1000. The ids
  // are named again in each join (`= any(...)`) so that each table is read by
  // index for exactly those ids: without it, the planner may merge-join a whole
  // primary-key index for a large batch, a cost that grows with the table
  // (docs/users.md shows both plans). On Citus it also keeps each table's part
  // of the read to the shards of those ids (docs/scale-out.md).
  return sql<StatusRowText>`
    select target.user_id::text as user_id,
           ${isoTime(sql`pulse.last_hb`)} as last_hb,
           coalesce(pulse.last_hb >= now() - make_interval(secs => ${thresholdSeconds}), false) as connected,
           coalesce(pulse.idle, false) as idle,
           case when settings.expires_at is null or settings.expires_at > now()
                then coalesce(settings.manual_status, 'AUTO') else 'AUTO' end as manual_status,
           case when settings.expires_at is null or settings.expires_at > now()
                then settings.status_text end as status_text,
           ${isoTime(sql`settings.invisible_last_seen`)} as invisible_last_seen,
           coalesce(settings.visibility, 'EVERYONE') as visibility,
           coalesce(settings.show_last_seen, true) as show_last_seen,
           follows.follower_id is not null as follows_viewer
      from unnest(${userIds}::bigint[]) as target (user_id)
      left join pulse
        on pulse.user_id = target.user_id and pulse.user_id = any(${userIds}::bigint[])
      left join presence_settings as settings
        on settings.user_id = target.user_id and settings.user_id = any(${userIds}::bigint[])
      left join follows
        on follows.follower_id = target.user_id and follows.follower_id = any(${userIds}::bigint[])
       and follows.followee_id = ${viewer}::bigint
  `;
}

/**
 * For each of `userIds` whose status will change with nothing else happening (an
 * online user going offline when the threshold passes, a manual status
 * expiring), the milliseconds until the first such change, by the database
 * clock (a skewed API clock then only shifts when a check runs, not its
 * verdict), by user. Users with nothing pending are left out.
 */
export async function findTimesUntilChange(
  db: Database,
  userIds: readonly UserId[],
  thresholdSeconds: number,
): Promise<Map<UserId, number>> {
  if (userIds.length === 0) return new Map();
  const threshold = sql`make_interval(secs => ${thresholdSeconds})`;
  const { rows } = await sql<{ user_id: string; ms_left: string }>`
    select target.user_id::text as user_id,
           least(
             case when pulse.last_hb >= now() - ${threshold}
                  then extract(epoch from pulse.last_hb + ${threshold} - now()) * 1000 end,
             case when settings.expires_at > now()
                  then extract(epoch from settings.expires_at - now()) * 1000 end
           ) as ms_left
      from unnest(${userIds}::bigint[]) as target (user_id)
      left join pulse
        on pulse.user_id = target.user_id and pulse.user_id = any(${userIds}::bigint[])
      left join presence_settings as settings
        on settings.user_id = target.user_id and settings.user_id = any(${userIds}::bigint[])
     where pulse.last_hb >= now() - ${threshold} or settings.expires_at > now()
  `.execute(db);
  // The ids are the caller's own, sent back as text.
  return new Map(rows.map((row) => [row.user_id as UserId, Number(row.ms_left)]));
}
