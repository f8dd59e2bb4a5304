/**
 * Composition root of a running Pulse: config -> database -> migrations ->
 * services -> HTTP. The only place (with tests) that constructs things; every
 * module takes what it needs as arguments.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolveJwtSecret } from './auth/jwt-secret';
import { createTokenIssuer, type TokenIssuer } from './auth/tokens';
import type { Config } from './config';
import { connectDatabase, type DatabaseConnection } from './db/connect';
import type { Database } from './db/database';
import { migrateToLatest } from './db/migrator';
import { createContext } from './graphql/context';
import { createApolloServer } from './graphql/apollo';
import { createRequestHandler } from './http/http-server';
import type { Logger } from './logger';
import { PresenceService } from './presence/presence-service';

export interface Pulse {
  /** Where GraphQL is served, e.g. http://localhost:4000/graphql. */
  readonly graphqlUrl: string;
  readonly port: number;
  readonly db: Database;
  readonly tokens: TokenIssuer;
  /** Stops in reverse order of start: HTTP (draining requests), then the database. */
  stop(): Promise<void>;
}

/** A startup failure whose message is already one clear sentence. */
export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartupError';
  }
}

export interface StartOptions {
  /** Called with every SQL statement sent (tests count them). */
  onStatement?: (sql: string) => void;
}

export async function startPulse(config: Config, logger: Logger, options: StartOptions = {}): Promise<Pulse> {
  const connection = await connectDatabase(config, logger, options);
  logger.info(`database: ${connection.description}`);
  try {
    return await startOnDatabase(config, logger, connection);
  } catch (error) {
    await connection.close().catch(() => {});
    throw error;
  }
}

async function startOnDatabase(config: Config, logger: Logger, connection: DatabaseConnection): Promise<Pulse> {
  const { db } = connection;
  if (config.database.migrateOnStart) {
    await migrateToLatest(db, logger);
  } else {
    logger.info('migrations: skipped (MIGRATE_ON_START=false); run `npm run migrate -- latest`');
  }

  const tokens = createTokenIssuer(resolveJwtSecret(config, logger));
  const presence = new PresenceService({ db, thresholdSeconds: config.presence.thresholdSeconds });

  const httpServer = http.createServer();
  const apollo = createApolloServer({ httpServer, logger, presence, statusesMaxIds: config.presence.statusesMaxIds });
  await apollo.start();
  httpServer.on(
    'request',
    createRequestHandler({
      apollo,
      contextFor: (req) => createContext({ presence, tokens }, req.headers.authorization),
      bodyLimitBytes: config.http.bodyLimitBytes,
      logger,
    }),
  );

  try {
    await listen(httpServer, config.http.host, config.http.port);
  } catch (error) {
    await apollo.stop();
    throw error;
  }
  const { port } = httpServer.address() as AddressInfo;
  const graphqlUrl = `http://localhost:${port}/graphql`;
  logger.info(`Pulse is listening: GraphQL at ${graphqlUrl}`);

  let stopping: Promise<void> | undefined;
  return {
    graphqlUrl,
    port,
    db,
    tokens,
    stop() {
      stopping ??= (async () => {
        logger.info('shutdown: draining HTTP requests');
        await apollo.stop();
        logger.info('shutdown: closing the database');
        await connection.close();
        logger.info('shutdown: done');
      })();
      return stopping;
    },
  };
}

function listen(server: http.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'EADDRINUSE'
          ? new StartupError(`Port ${port} is already in use, so Pulse cannot listen on it: set PORT to a free port, or stop whatever uses ${port}.`)
          : error.code === 'EACCES'
            ? new StartupError(`Pulse may not listen on port ${port} (EACCES): set PORT to a port above 1023.`)
            : error,
      );
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.removeListener('error', onError);
      resolve();
    });
  });
}
