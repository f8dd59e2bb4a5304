/**
 * Retention: deletes pulse rows whose last heartbeat is older than the retention
 * period, to bound storage. Optional: presence is correct without it (expiry is
 * in the read), and every row it deletes loses that user's "last seen".
 *
 * Without an index on last_hb (which would end HOT updates), old rows can only be
 * found by walking the table, so a run costs a pass over the primary key. It is
 * made harmless instead: bounded steps, each its own short statement, and one
 * process at a time across all instances (a session advisory lock).
 */
import { sql } from 'kysely';
import type { Database } from '../db/database';
import { deletePulsesOlderThan } from '../presence/pulse-repository';

// Arbitrary, fixed: the advisory lock that says "a retention run is in progress".
export const RETENTION_LOCK_KEY = 7_236_110_001;

export interface RetentionOptions {
  /** Rows whose last heartbeat is older than this many seconds are deleted. */
  retentionSeconds: number;
  /** Rows looked at per statement. */
  batchSize: number;
}

export type RetentionResult =
  | { ran: true; deleted: number; steps: number }
  /** Another process holds the lock: it is running retention right now. */
  | { ran: false; reason: 'locked' };

/** One retention run as of `now`. A plain function: schedule it however you like. */
export async function runRetention(db: Database, now: Date, options: RetentionOptions): Promise<RetentionResult> {
  const cutoff = new Date(now.getTime() - options.retentionSeconds * 1000);
  // The lock belongs to a session, so the whole run happens on one connection.
  return db.connection().execute(async (connection) => {
    const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_lock(${RETENTION_LOCK_KEY}) as locked`.execute(connection);
    if (!rows[0]?.locked) return { ran: false, reason: 'locked' } as const;
    try {
      let after = '0';
      let deleted = 0;
      let steps = 0;
      for (;;) {
        const step = await deletePulsesOlderThan(connection, cutoff, after, options.batchSize);
        steps += 1;
        deleted += step.deleted;
        if (step.lastUserId === null) break;
        after = step.lastUserId;
      }
      return { ran: true, deleted, steps } as const;
    } finally {
      await sql`select pg_advisory_unlock(${RETENTION_LOCK_KEY})`.execute(connection);
    }
  });
}
