/**
 * The one connection pool of a Pulse process, and the Kysely instance over it.
 *
 * Every SQL statement Pulse runs goes through here, which is what lets a test (and,
 * later, metrics) count them exactly.
 */
import { createHash } from 'node:crypto';
import { Kysely, PostgresDialect, sql } from 'kysely';
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
  /**
   * Send statements marked with {@link preparedStatement} as prepared statements
   * (default true). Off for a pooler that cannot keep a connection's prepared
   * statements across transactions (PgBouncer before 1.21 in transaction mode).
   */
  preparedStatements?: boolean;
  /** How the server lists these connections (pg_stat_activity); default `pulse`. */
  applicationName?: string;
}

export type Database = Kysely<PulseDatabase>;

// Private: how a statement asks to be prepared (see preparedStatement).
const PREPARED_MARK = '/* prepared */';

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
    Client: options.preparedStatements === false ? pg.Client : PreparingClient,
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

/**
 * Put first in a statement whose text never changes (its values are all
 * parameters) and that runs often: on a pool from {@link createPool} it is then
 * prepared once per connection and planned by PostgreSQL's plan cache instead of
 * parsed and planned anew every time. Kysely sends every statement unnamed, so
 * this is the one way to name one. Elsewhere (another pool, or
 * `DB_PREPARED_STATEMENTS=false`) it is only a comment.
 *
 * @example sql`${preparedStatement} select ... where user_id = any(${ids}::bigint[])`
 */
export const preparedStatement = sql.raw(`${PREPARED_MARK} `);

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

// Private: a pg client that sends a statement starting with PREPARED_MARK as a
// named (prepared) statement. pg parses a named statement once per connection and
// then only binds and executes it; the name is a digest of the text, because pg
// refuses one name for two texts. PostgreSQL plans the first executions for their
// values and then settles on a generic plan if it costs no more (plan_cache_mode).
class PreparingClient extends pg.Client {
  readonly #names = new Map<string, string>();

  override query(...args: any[]): any {
    const [text, values] = args;
    if (typeof text === 'string' && text.startsWith(PREPARED_MARK) && (values === undefined || Array.isArray(values))) {
      let name = this.#names.get(text);
      if (name === undefined) {
        name = `pulse_${createHash('sha1').update(text).digest('hex').slice(0, 24)}`;
        this.#names.set(text, name);
      }
      return super.query({ name, text, values }, ...args.slice(2));
    }
    return Reflect.apply(super.query, this, args);
  }
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
