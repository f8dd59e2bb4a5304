/**
 * Which PostgreSQL Pulse talks to: the server in DATABASE_URL, or the embedded
 * one under the data folder. Used by the server and the DBA tools alike, so both
 * always agree on where the data is.
 */
import path from 'node:path';
import type { Config } from '../config';
import type { Logger } from '../logger';
import type pg from 'pg';
import { createDatabase, createPool, redactUrl, type Database } from './database';
import { startEmbeddedPostgres } from './embedded-postgres';

export interface DatabaseConnection {
  db: Database;
  /** The pool behind `db`, for its occupancy. */
  pool: pg.Pool;
  /** For logs: the redacted URL, or "embedded PostgreSQL (...)". */
  description: string;
  /** The connection string, for sessions outside the pool (LISTEN). */
  url: string;
  /** Ends the pool, then stops the embedded server if this process started it. */
  close(): Promise<void>;
}

export async function connectDatabase(
  config: Config,
  logger: Logger,
  options: { onStatement?: (sql: string) => void } = {},
): Promise<DatabaseConnection> {
  const poolOptions = {
    poolMax: config.database.poolMax,
    connectionTimeoutMs: config.database.connectionTimeoutMs,
    statementTimeoutMs: config.database.statementTimeoutMs,
    preparedStatements: config.database.preparedStatements,
    logger,
  };

  if (config.database.url) {
    const pool = createPool({ url: config.database.url, ...poolOptions });
    const db = createDatabase({ pool, onStatement: options.onStatement });
    return { db, pool, url: config.database.url, description: redactUrl(config.database.url), close: () => db.destroy() };
  }

  const clusterDir = path.join(config.dataDir, 'postgres');
  const embedded = await startEmbeddedPostgres({ clusterDir, port: config.database.embeddedPort, logger });
  const pool = createPool({ url: embedded.url, ...poolOptions });
  const db = createDatabase({ pool, onStatement: options.onStatement });
  return {
    db,
    pool,
    url: embedded.url,
    description: `embedded PostgreSQL (${redactUrl(embedded.url)}, data in ${clusterDir})`,
    close: async () => {
      await db.destroy();
      await embedded.stop();
    },
  };
}
