/**
 * PostgreSQL to throw away, for the tests and the benches alike: an embedded
 * server in a temporary folder, and databases of one's own created next to a
 * database a connection string names. Both go with everything in them.
 *
 * The test run (global-setup.ts, test-database.ts) and the benches
 * (bench/support.ts) make theirs here, so the rules below have one home.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createDatabase } from '../../src/db/database';
import { startEmbeddedPostgres } from '../../src/db/embedded-postgres';
import { migrateToLatest } from '../../src/db/migrator';
import { silentLogger } from '../../src/logger';
import { freePort } from './free-port';

export interface ScratchPostgres {
  /** Connection string of `database` on the server, on 127.0.0.1. */
  url: string;
  /** Stops the server and removes its folder. */
  stop(): Promise<void>;
}

/**
 * Starts an embedded PostgreSQL on a free port, its cluster in a new temporary
 * folder named after `prefix`.
 */
export async function startScratchPostgres(prefix: string, database = 'postgres'): Promise<ScratchPostgres> {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
  const removeFolder = () => fs.rmSync(folder, { recursive: true, force: true });
  // mkdtemp makes the folder 0700; as root, PostgreSQL runs as the `postgres` OS
  // user, which must be able to enter it.
  fs.chmodSync(folder, 0o755);
  try {
    const server = await startEmbeddedPostgres({ clusterDir: path.join(folder, 'postgres'), port: await freePort(), logger: silentLogger, database });
    return { url: server.url, stop: () => server.stop().finally(removeFolder) };
  } catch (error) {
    removeFolder();
    throw error;
  }
}

export interface ScratchDatabase {
  name: string;
  /** Connection string of the new database. */
  url: string;
  /** Drops it, ending any session still connected. */
  drop(): Promise<void>;
}

/**
 * Creates a database named `<prefix>_<pid>_<random>` on the server `serverUrl`
 * points at (connecting to the database it names), empty or copied from
 * `template`. Nothing else on that server is touched.
 */
export async function createScratchDatabase(serverUrl: string, prefix: string, options: { template?: string } = {}): Promise<ScratchDatabase> {
  const name = `${prefix}_${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
  const onServer = async (statement: (client: pg.Client) => string) => {
    const client = new pg.Client({ connectionString: serverUrl });
    await client.connect();
    try {
      await client.query(statement(client));
    } finally {
      await client.end();
    }
  };
  await onServer((c) => `create database ${c.escapeIdentifier(name)}${options.template ? ` template ${c.escapeIdentifier(options.template)}` : ''}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    drop: () => onServer((c) => `drop database if exists ${c.escapeIdentifier(name)} with (force)`),
  };
}

/** Applies every Pulse migration to the database at `url`, over a connection of its own. */
export async function migrateDatabase(url: string): Promise<void> {
  const db = createDatabase({ url, poolMax: 1, connectionTimeoutMs: 10_000, statementTimeoutMs: 60_000, logger: silentLogger });
  try {
    await migrateToLatest(db, silentLogger);
  } finally {
    // Closed at once: a database cannot serve as a template while anyone is connected to it.
    await db.destroy();
  }
}
