/**
 * A database of its own for each test file: copied from the run's migrated
 * template database (cheaper than migrating each one), and dropped at the end.
 * Statements sent through `db` are recorded in `statements`, so tests can count them.
 */
import { sql } from 'kysely';
import { createDatabase, type Database } from '../../src/db/database';
import { silentLogger } from '../../src/logger';
import { createScratchDatabase, migrateDatabase, type ScratchDatabase } from './scratch-postgres';

export interface TestDatabase {
  /** Connection string of this test file's database. */
  url: string;
  db: Database;
  /** SQL of every statement sent through `db` (tests may clear it). */
  statements: string[];
  /** Sets a user's last heartbeat to `secondsAgo` before the database's now(). */
  setLastHeartbeat(userId: string, secondsAgo: number): Promise<void>;
  destroy(): Promise<void>;
}

export function adminUrl(): string {
  const url = process.env.PULSE_TEST_ADMIN_URL;
  if (!url) throw new Error('PULSE_TEST_ADMIN_URL is not set: run the tests with `npm test` (jest global setup sets it)');
  return url;
}

/** An empty database of the test file's own (no migrations), dropped with `drop()`. */
export function createEmptyDatabase(): Promise<ScratchDatabase> {
  return createScratchDatabase(adminUrl(), 'pulse_test');
}

/**
 * The run's migrated template (made once by the global setup): a test file's
 * database is a copy of it, so no file runs the migrations again.
 */
export const TEMPLATE_DATABASE_ENV = 'PULSE_TEST_TEMPLATE_DATABASE';

// Private: a new database copied from the migrated template.
function createMigratedDatabase(): Promise<ScratchDatabase> {
  const template = process.env[TEMPLATE_DATABASE_ENV];
  if (!template) throw new Error(`${TEMPLATE_DATABASE_ENV} is not set: run the tests with \`npm test\` (jest global setup sets it)`);
  return createScratchDatabase(adminUrl(), 'pulse_test', { template });
}

/** Makes the run's template: an empty database with every migration applied. */
export async function createTemplateDatabase(): Promise<{ name: string; drop(): Promise<void> }> {
  const empty = await createEmptyDatabase();
  await migrateDatabase(empty.url).catch(async (error: unknown) => {
    await empty.drop();
    throw error;
  });
  return { name: empty.name, drop: empty.drop };
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const empty = await createMigratedDatabase();
  const statements: string[] = [];
  const db = createDatabase({
    url: empty.url,
    poolMax: 5,
    connectionTimeoutMs: 5_000,
    statementTimeoutMs: 10_000,
    logger: silentLogger,
    onStatement: (text) => statements.push(text),
  });
  return {
    url: empty.url,
    db,
    statements,
    async setLastHeartbeat(userId, secondsAgo) {
      await sql`
        insert into pulse (user_id, last_hb) values (${userId}, now() - make_interval(secs => ${secondsAgo}))
        on conflict (user_id) do update set last_hb = excluded.last_hb
      `.execute(db);
    },
    async destroy() {
      await db.destroy();
      await empty.drop();
    },
  };
}
