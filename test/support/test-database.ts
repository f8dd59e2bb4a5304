/**
 * A database of its own for each test file: created from the run's PostgreSQL,
 * migrated, and dropped at the end. Statements sent through `db` are recorded in
 * `statements`, so tests can count them.
 */
import crypto from 'node:crypto';
import pg from 'pg';
import { sql } from 'kysely';
import { createDatabase, type Database } from '../../src/db/database';
import { migrateToLatest } from '../../src/db/migrator';
import { silentLogger } from '../../src/logger';

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

export function databaseUrl(name: string): string {
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  return url.toString();
}

async function admin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl() });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export async function createEmptyDatabase(): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `pulse_test_${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
  await admin((c) => c.query(`create database ${c.escapeIdentifier(name)}`));
  return {
    name,
    url: databaseUrl(name),
    drop: () => admin((c) => c.query(`drop database if exists ${c.escapeIdentifier(name)} with (force)`)).then(() => undefined),
  };
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const empty = await createEmptyDatabase();
  const statements: string[] = [];
  const db = createDatabase({
    url: empty.url,
    poolMax: 5,
    connectionTimeoutMs: 5_000,
    statementTimeoutMs: 10_000,
    logger: silentLogger,
    onStatement: (text) => statements.push(text),
  });
  await migrateToLatest(db, silentLogger);
  statements.length = 0;
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
