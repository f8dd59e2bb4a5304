/**
 * The one connection pool of a Pulse process, and the Kysely instance over it.
 *
 * Every SQL statement Pulse runs goes through here, which is what lets a test (and,
 * later, metrics) count them exactly.
 */
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Logger } from '../logger';
import type { PulseDatabase } from './tables';

export interface DatabaseOptions {
  url: string;
  /** Pool size. Pool max x API instances must stay under the server's max_connections. */
  poolMax: number;
  /** How long to wait for a connection before failing; pg's default waits forever. */
  connectionTimeoutMs: number;
  /** Server-side cap on any one statement, so a stuck query cannot hold a connection. */
  statementTimeoutMs: number;
  logger: Logger;
  /** Called once for every statement sent, with its SQL (after it finishes). */
  onStatement?: (sql: string) => void;
  /** How the server lists these connections (pg_stat_activity); default `pulse`. */
  applicationName?: string;
}

export type Database = Kysely<PulseDatabase>;

/**
 * The process's pool. Pass it to {@link createDatabase}; keep it to read its stats.
 */
export function createPool(options: Omit<DatabaseOptions, 'onStatement'>): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolMax,
    connectionTimeoutMillis: options.connectionTimeoutMs,
    statement_timeout: options.statementTimeoutMs,
    application_name: options.applicationName ?? 'pulse',
  });
  // A pg client emits `error` when its connection is lost (the server restarts,
  // an admin terminates the backend, the network drops), and an `error` event
  // without a listener ends the process. pg-pool listens only while a client is
  // idle: a checked-out client has no listener, and is checked out longer than
  // its queries run (the answer to a query can be followed, in the same network
  // read, by the server's "terminating connection" before the client is released;
  // a session holds its client across statements). So every client gets a
  // listener of its own from the moment it connects until it is gone; the pool
  // drops a broken client when it is released, and the next query opens a fresh one.
  pool.on('connect', (client) => {
    let reported = false;
    client.on('error', (error) => {
      // One loss is often two events (the server's message, then the socket's
      // end): one line is enough.
      if (reported) return;
      reported = true;
      options.logger.warn('database: connection lost', { error });
    });
  });
  // The pool re-emits an idle client's error after discarding the client; the
  // client's own listener above has already logged it.
  pool.on('error', () => {});
  return pool;
}

/** Kysely over a pool the caller made (the process's pool), or over one of its own made from the options. */
export type DatabaseOverPool = { pool: pg.Pool; onStatement?: (sql: string) => void };

export function createDatabase(options: DatabaseOptions | DatabaseOverPool): Database {
  const pool = 'pool' in options ? options.pool : createPool(options);
  const onStatement = options.onStatement;
  return new Kysely<PulseDatabase>({
    dialect: new PostgresDialect({ pool }),
    log: onStatement
      ? (event) => {
          onStatement(event.query.sql);
        }
      : undefined,
  });
}

/** `postgres://user:secret@host/db` -> `postgres://user:***@host/db`, for logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable DATABASE_URL)';
  }
}
