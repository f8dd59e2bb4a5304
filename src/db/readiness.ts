/**
 * Readiness: the database answers and its schema is the one this code expects.
 * Served at /readyz, so a load balancer sends traffic only to instances that can
 * serve it (and not to one started before its migrations were applied). The
 * start waits on the same question's first half: {@link pingDatabase}.
 */
import { sql } from 'kysely';
import type { Database } from './database';
import { createMigrator } from './migrator';

export interface Readiness {
  ready: boolean;
  database: 'ok' | 'unreachable';
  /** Names of migrations this code has that the database has not applied. */
  pendingMigrations: string[];
  error?: string;
}

/** Resolves once the database has answered a trivial query; rejects with why it did not. */
export async function pingDatabase(db: Database): Promise<void> {
  await sql`select 1`.execute(db);
}

export async function checkReadiness(db: Database): Promise<Readiness> {
  try {
    await pingDatabase(db);
  } catch (error) {
    return { ready: false, database: 'unreachable', pendingMigrations: [], error: (error as Error).message };
  }
  try {
    const pending = (await createMigrator(db).getMigrations()).filter((m) => !m.executedAt).map((m) => m.name);
    return { ready: pending.length === 0, database: 'ok', pendingMigrations: pending };
  } catch (error) {
    return { ready: false, database: 'ok', pendingMigrations: [], error: (error as Error).message };
  }
}
