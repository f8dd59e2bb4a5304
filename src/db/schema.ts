/**
 * The tables Pulse's queries see, as Kysely types.
 *
 * Migrations do not use these (they are frozen in time and take `Kysely<any>`);
 * repositories do.
 */
import type { ColumnType } from 'kysely';

/**
 * One row per user who ever sent a heartbeat. `user_id` is a bigint, which
 * node-postgres returns as a decimal string so no id loses precision.
 */
export interface PulseTable {
  user_id: ColumnType<string, string, never>;
  last_hb: ColumnType<Date, Date | string, Date | string>;
}

export interface PulseDatabase {
  pulse: PulseTable;
}
