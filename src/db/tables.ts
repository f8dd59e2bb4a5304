/**
 * The tables Pulse's queries see, as Kysely types.
 *
 * Migrations do not use these (they are frozen in time and take `Kysely<any>`);
 * repositories do.
 */
import type { ColumnType, Generated } from 'kysely';

/**
 * One row per user who ever sent a heartbeat. `user_id` is a bigint, which
 * node-postgres returns as a decimal string so no id loses precision.
 */
export interface PulseTable {
  user_id: ColumnType<string, string, never>;
  last_hb: ColumnType<Date, Date | string, Date | string>;
  /** The latest heartbeat said the user is idle (connected, not using the app). */
  idle: ColumnType<boolean, boolean | undefined, boolean>;
}

/** People who signed up. `id` is generated (from 9e18 up); names are unique case-insensitively. */
export interface UsersTable {
  id: Generated<string>;
  name: string;
  created_at: Generated<Date>;
}

/** `follower_id` follows `followee_id`. */
export interface FollowsTable {
  follower_id: string;
  followee_id: string;
  created_at: Generated<Date>;
}

/** A user's manual status and privacy; no row means the defaults. */
export interface PresenceSettingsTable {
  user_id: string;
  manual_status: Generated<'AUTO' | 'AWAY' | 'BUSY' | 'INVISIBLE'>;
  status_text: string | null;
  expires_at: Date | null;
  invisible_last_seen: Date | null;
  visibility: Generated<'EVERYONE' | 'CONTACTS' | 'NOBODY'>;
  show_last_seen: Generated<boolean>;
  updated_at: Generated<Date>;
}

export interface PulseDatabase {
  pulse: PulseTable;
  users: UsersTable;
  follows: FollowsTable;
  presence_settings: PresenceSettingsTable;
}
