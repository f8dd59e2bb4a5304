/**
 * Composition root of a running Pulse: config -> database -> migrations ->
 * services -> HTTP. The only place (with tests and benches) that constructs
 * things; every module takes what it needs as arguments.
 *
 * Two phases, each exported: {@link startServices} (the database and everything
 * that serves on it) and {@link serve} (HTTP in front of them, and the scheduled
 * jobs). {@link startPulse} runs both; the TTL comparator of `npm run bench`
 * runs them with another heartbeat path in between.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolveJwtSecret } from './auth/jwt-secret';
import { createTokenIssuer, type TokenIssuer } from './auth/tokens';
import type { Config } from './config';
import { CleanupList } from './cleanup-list';
import { connectDatabase, type DatabaseConnection } from './db/connect';
import type { Database } from './db/database';
import { findDistribution } from './db/distribute';
import { migrateToLatest } from './db/migrator';
import { ReadReplicas } from './db/read-replicas';
import { checkReadiness, pingDatabase } from './db/readiness';
import type { ClusterWorker } from './cluster/worker';
import { createContext } from './graphql/context';
import { createApolloServer } from './graphql/apollo';
import { createSchema } from './graphql/schema';
import { createRequestHandler } from './http/http-server';
import { createPresenceStream } from './http/presence-stream';
import { createMultipartSubscriptions } from './http/multipart-subscriptions';
import { createSubscriptionOperations } from './http/subscription-operations';
import { createRestRoutes } from './http/rest';
import { createWebAssets } from './http/web-assets';
import { createClientAddress } from './http/client-address';
import { StreamSlots } from './limits/stream-slots';
import { TokenBucket } from './limits/token-bucket';
import { LivePresence } from './live/live-presence';
import type { UserId } from './presence/user-id';
import { createPostgresBus } from './live/postgres-bus';
import { createRedisBus } from './live/redis-bus';
import { toPulseError } from './errors';
import { startScheduler, type Scheduler } from './jobs/scheduler';
import { createMetrics, type Metrics } from './observability/metrics';
import type { Logger } from './logger';
import { PresenceService, type Presence } from './presence/presence-service';
import { SettingsService } from './users/settings-service';
import { UserService } from './users/user-service';

export interface Pulse {
  /** Where GraphQL is served, e.g. http://localhost:4000/graphql. */
  readonly graphqlUrl: string;
  readonly port: number;
  readonly db: Database;
  readonly tokens: TokenIssuer;
  readonly scheduler: Scheduler;
  readonly metrics: Metrics;
  /** Live presence: open subscriptions and what they watch. */
  readonly live: LivePresence;
  /** This process's readiness (false once shutdown has begun), whatever /readyz answers for. */
  readiness(): Promise<{ ready: boolean }>;
  /** The read replicas from READ_DATABASE_URL; null without any. */
  readonly readReplicas: ReadReplicas | null;
  /**
   * Stops in reverse order of start (the cleanup list each part joined as it
   * started): scheduled jobs, then HTTP (the drain period, event streams, the
   * listener with in-flight requests and buffered heartbeats), then live
   * presence's timers, the last buffered heartbeats, the presence bus, the read
   * replicas and the database. Each step is logged (`shutdown: ...`).
   */
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
  /**
   * In a worker of a cluster (PULSE_WORKERS > 1): its link to the primary. Then
   * /metrics and /readyz answer for the whole instance, metrics carry the
   * worker's label where it matters, and responses name the worker that served them.
   */
  cluster?: ClusterWorker;
}

/**
 * Starts every part of Pulse, in order, registering each part's cleanup as soon
 * as the part runs; if a later part fails to start, what had started is undone
 * (in reverse) before the error is thrown.
 */
export async function startPulse(config: Config, logger: Logger, options: StartOptions = {}): Promise<Pulse> {
  const cleanup = new CleanupList(logger);
  try {
    const services = await startServices(config, logger, options, cleanup);
    return await serve(config, logger, options, services, cleanup);
  } catch (error) {
    await cleanup.run('startup failed, undoing').catch(() => {});
    throw error;
  }
}

/** What {@link serve} puts behind HTTP: the services, and the database they use. */
export interface PulseServices {
  readonly connection: DatabaseConnection;
  /** The read replicas from READ_DATABASE_URL; null without any. */
  readonly readReplicas: ReadReplicas | null;
  readonly metrics: Metrics;
  readonly tokens: TokenIssuer;
  /** Heartbeats and statuses, as the transports see them. */
  readonly presence: Presence;
  readonly live: LivePresence;
  readonly users: UserService;
  readonly settings: SettingsService;
}

/**
 * The first phase: the database (waited for, migrated, with its read replicas),
 * then tokens, the presence bus and the services. Each part joins `cleanup` as
 * it starts.
 */
export async function startServices(config: Config, logger: Logger, options: StartOptions, cleanup: CleanupList): Promise<PulseServices> {
  const metrics = createMetrics({ worker: options.cluster?.index });
  const connection = await connectDatabase(config, logger, {
    onStatement: (text) => {
      metrics.statements.inc();
      options.onStatement?.(text);
    },
  });
  cleanup.add('closing the database', () => connection.close());
  metrics.observePool(connection.pool);
  logger.info(`database: ${connection.description}`);
  const { db } = connection;
  await waitForDatabase(db, connection.description, config.database.startupAttempts, logger);
  const distribution = await findDistribution(db);
  if (distribution.citus) {
    logger.info(`database: Citus, pulse distributed over ${distribution.workers} worker node(s)`);
    // A NOTIFY is heard only by listeners on the node that ran it. On the
    // coordinator every instance's heartbeat statement notifies there (see
    // recordHeartbeats); instances connected to different nodes would not hear
    // each other.
    // (Checked before migrations, which must run on the coordinator too.)
    if (!distribution.coordinator && !config.events.redisUrl) {
      throw new StartupError(
        'DATABASE_URL points at a Citus worker, where live events (LISTEN/NOTIFY) reach only the instances connected to that same node: point DATABASE_URL at the coordinator, or set REDIS_URL.',
      );
    }
  }

  if (config.database.migrateOnStart) {
    await migrateToLatest(db, logger);
  } else {
    logger.info('migrations: skipped (MIGRATE_ON_START=false); run `npm run migrate -- latest`');
  }

  // Read replicas: status reads and searches go to them while they are up and
  // close enough behind; writes and reads of one's own writes stay here.
  const readReplicas = config.database.readUrls.length > 0 ? await startReadReplicas(config, logger, db, metrics, options) : null;
  if (readReplicas) cleanup.add('closing the read replicas', () => readReplicas.close());
  const replicaReads = readReplicas?.read;

  const tokens = createTokenIssuer(resolveJwtSecret(config, logger), {
    keySet: config.auth.jwksUrl
      ? {
          url: config.auth.jwksUrl,
          algorithms: config.auth.algorithms,
          cacheSeconds: config.auth.jwksCacheSeconds,
          cooldownSeconds: config.auth.jwksCooldownSeconds,
        }
      : null,
    rules: {
      issuer: config.auth.issuer,
      audience: config.auth.audience,
      requireExp: config.auth.requireExp,
      maxTokenAgeSeconds: config.auth.maxTokenAgeSeconds,
    },
    verifiedTokensKept: config.auth.verifiedTokensKept,
  });
  if (config.auth.jwksUrl) logger.info(`auth: tokens from the key set at ${config.auth.jwksUrl}${tokens.canSign ? ', and HS256 tokens signed with JWT_SECRET' : ''}`);
  const bus = config.events.redisUrl
    ? createRedisBus({ url: config.events.redisUrl, logger })
    : createPostgresBus({ url: connection.url, db, logger });
  cleanup.add('closing the presence bus', () => bus.close());
  logger.info(`presence events: ${bus.description}`);
  // Tells every process that these users' presence may have changed (a manual
  // status, privacy or follow change, or coming online on a bus other than
  // PostgreSQL's); each re-reads them for its subscribers.
  const presenceChanged = (userIds: UserId[]) => {
    bus.publish(userIds).catch((error: unknown) => logger.warn('presence events: publish failed', { error: (error as Error).message }));
  };
  const presence = new PresenceService({
    db,
    replicaReads,
    thresholdSeconds: config.presence.thresholdSeconds,
    heartbeatMinIntervalMs: config.presence.heartbeatMinIntervalMs,
    minWriteGapSeconds: config.presence.minWriteGapSeconds,
    batching: config.heartbeatBatching.enabled ? config.heartbeatBatching : null,
    metrics,
    // PostgreSQL's bus is told by the heartbeat statement itself; another bus
    // is told once the statement has committed.
    notifyChannel: bus.notifyChannel,
    citus: distribution.citus,
    onCameOnline: bus.notifyChannel ? undefined : (userIds) => presenceChanged(userIds),
  });
  // Whatever arrived on keep-alive connections while the listener was closing.
  cleanup.add('writing the last buffered heartbeats', () => presence.flush());
  const live = new LivePresence({
    bus,
    logger,
    readStatuses: (userIds, viewer, readOptions) => presence.statuses(userIds, viewer, readOptions),
    readTimesUntilChange: (userIds, readOptions) => presence.timesUntilChange(userIds, readOptions),
    // A replica in use is at most the lag limit behind, as of its last check.
    replicaStalenessMs: readReplicas
      ? config.database.readReplicaMaxLagSeconds * 1000 + config.database.readReplicaCheckIntervalMs
      : 0,
    onEventsSent: (delayMs, events) => {
      metrics.liveEventDelay.observe(delayMs / 1000);
      metrics.liveEvents.inc(events);
    },
  });
  // Its timers and bus subscription run from here on (stop() is idempotent: once
  // listening, the streams are ended earlier, see below).
  cleanup.add('stopping live-presence timers', () => live.stop());
  metrics.observeLive(live);
  metrics.observeBus(bus);
  const users = new UserService(db, { onPresenceChange: presenceChanged, replicaReads });
  const settings = new SettingsService(db, { onPresenceChange: presenceChanged });
  return { connection, readReplicas, metrics, tokens, presence, live, users, settings };
}

/**
 * The second phase: the HTTP server (GraphQL, REST, event streams, health,
 * metrics, the live page) in front of `services`, listening; then the scheduled
 * jobs. Each part joins `cleanup` as it starts; the Pulse returned stops them all.
 */
export async function serve(config: Config, logger: Logger, options: StartOptions, services: PulseServices, cleanup: CleanupList): Promise<Pulse> {
  const { connection, readReplicas, metrics, tokens, presence, live, users, settings } = services;
  const { db } = connection;
  let draining = false;
  metrics.observeReadiness(() => {
    if (draining) return Promise.resolve(false);
    // With every connection busy, a check would queue among requests (and count
    // toward shedding them); a pool that busy reaches its database: keep the last answer.
    if (connection.pool.idleCount === 0 && connection.pool.totalCount >= config.database.poolMax) return null;
    return checkReadiness(db).then((readiness) => readiness.ready);
  });
  const httpServer = http.createServer({
    // Set on purpose rather than left to Node's defaults: a client has this long
    // to send its headers, and its whole request; an idle keep-alive connection
    // outlives a load balancer's (often 60 s), so the balancer closes it first
    // and never sends a request on a socket Pulse is closing.
    headersTimeout: config.http.headersTimeoutMs,
    requestTimeout: config.http.requestTimeoutMs,
    keepAliveTimeout: config.http.keepAliveTimeoutMs,
    // Node looks for requests past those timeouts every 30 s by default, which
    // would let a slow client hold a socket up to 30 s longer than configured.
    connectionsCheckingInterval: Math.min(1000, config.http.headersTimeoutMs),
  });
  const { cluster } = options;
  // Which worker served a response: for operators reading a trace, and for tests
  // that must see both workers serve.
  if (cluster) httpServer.on('request', (_req, res: http.ServerResponse) => res.setHeader('x-pulse-worker', String(cluster.index)));
  const ownReadiness = () => (draining ? Promise.resolve({ ready: false, reason: 'shutting down' }) : checkReadiness(db));
  const schema = createSchema({
    presence,
    live,
    settings,
    users,
    tokens,
    signupTokenTtlSeconds: config.auth.signupTokenTtlSeconds,
    statusesMaxIds: config.presence.statusesMaxIds,
    metrics,
    signupRate: config.limits.signupRate ? new TokenBucket(config.limits.signupRate) : null,
    searchRate: config.limits.searchRate ? new TokenBucket(config.limits.searchRate) : null,
  });
  const apollo = createApolloServer({
    schema,
    httpServer,
    logger,
    statusesMaxIds: config.presence.statusesMaxIds,
    production: config.production,
    metrics,
  });
  await apollo.start();
  // In-flight heartbeat requests wait for their batch: write the buffer now
  // rather than let them wait out the window.
  cleanup.add(
    () => `closing the listener, finishing in-flight requests, writing buffered heartbeats (${presence.pendingHeartbeats})`,
    () => Promise.all([apollo.stop(), presence.flush()]).then(() => {}),
  );
  // One set of rules for subscriptions, whichever protocol carries them.
  const subscriptionOperations = createSubscriptionOperations({
    schema,
    contextFor: (request) => createContext({ presence, tokens }, request),
    statusesMaxIds: config.presence.statusesMaxIds,
  });
  // One set of places for open streams, whichever protocol carries them.
  const streamAdmission = {
    slots: new StreamSlots({ perClient: config.limits.streamsPerClient, max: config.limits.streamsMax }),
    metrics,
  };
  httpServer.on(
    'request',
    createRequestHandler({
      apollo,
      contextFor: (request) => createContext({ presence, tokens }, request),
      bodyLimitBytes: config.http.bodyLimitBytes,
      logger,
      readiness: cluster ? () => cluster.instanceReadiness() : () => checkReadiness(db),
      overloaded: () => connection.pool.waitingCount > config.database.poolMaxWaiting,
      draining: () => draining,
      metrics: cluster
        ? { registry: { contentType: metrics.registry.contentType, metrics: () => cluster.instanceMetrics() }, shedRequests: metrics.shedRequests }
        : metrics,
      rest: createRestRoutes({ presence, tokens, statusesMaxIds: config.presence.statusesMaxIds, metrics }),
      stream: createPresenceStream({
        operations: subscriptionOperations,
        admission: streamAdmission,
        stallSeconds: config.limits.streamStallSeconds,
        keepAliveMs: config.http.subscriptionKeepAliveMs,
      }),
      multipartSubscriptions: createMultipartSubscriptions({
        operations: subscriptionOperations,
        admission: streamAdmission,
        keepAliveMs: config.http.subscriptionKeepAliveMs,
      }),
      clientAddress: createClientAddress(config.limits.trustProxy),
      corsAllowedOrigins: config.http.corsAllowedOrigins,
      // Three heartbeats per threshold: one lost heartbeat never shows a user offline.
      web: createWebAssets({ heartbeatIntervalMs: Math.min(10_000, (config.presence.thresholdSeconds * 1000) / 3) }),
    }),
  );

  await listen(httpServer, config.http.host, config.http.port);
  // Open event streams would hold the listener open: end them before it closes.
  cleanup.add('ending event streams', () => live.stop());
  if (config.http.shutdownDrainMs > 0) {
    // Closing the listener at once would close idle keep-alive connections under
    // requests clients are already sending on them.
    cleanup.add(`serving with Connection: close for ${config.http.shutdownDrainMs} ms`, () => {
      draining = true;
      return new Promise((resolve) => setTimeout(resolve, config.http.shutdownDrainMs));
    });
  }
  const { port } = httpServer.address() as AddressInfo;
  const graphqlUrl = `http://localhost:${port}/graphql`;
  logger.info(`Pulse is listening: GraphQL at ${graphqlUrl}, the live page at http://localhost:${port}/`);

  const scheduler = startScheduler({
    db,
    logger,
    metrics,
    retention: config.retention.cron ? { ...config.retention, cron: config.retention.cron } : null,
  });
  cleanup.add('stopping scheduled jobs', () => scheduler.stop());

  cluster?.serve({ metrics, readiness: ownReadiness });
  return {
    graphqlUrl,
    port,
    db,
    tokens,
    scheduler,
    metrics,
    live,
    readiness: ownReadiness,
    readReplicas,
    stop() {
      // /readyz answers 503 from the first step on, whatever the drain period.
      draining = true;
      return cleanup.run('shutdown');
    },
  };
}

// Private: the replicas' pools, their first lag check and their metrics. A
// replica that is down does not stop the start: reads go to the primary.
async function startReadReplicas(
  config: Config,
  logger: Logger,
  primary: Database,
  metrics: Metrics,
  options: StartOptions,
): Promise<ReadReplicas> {
  const replicas = new ReadReplicas({
    primary,
    urls: config.database.readUrls,
    maxLagSeconds: config.database.readReplicaMaxLagSeconds,
    checkIntervalMs: config.database.readReplicaCheckIntervalMs,
    poolMax: config.database.poolMax,
    connectionTimeoutMs: config.database.connectionTimeoutMs,
    statementTimeoutMs: config.database.statementTimeoutMs,
    preparedStatements: config.database.preparedStatements,
    logger,
    onStatement: (text) => {
      metrics.statements.inc();
      options.onStatement?.(text);
    },
    onRead: (route) => metrics.replicaReads.inc({ route }),
    onReplicaDown: (replica) => metrics.readReplicaDown.inc({ replica }),
  });
  metrics.observeReadReplicas(replicas);
  logger.info(
    `read replicas: ${replicas.health.map((r) => r.name).join(', ')} (skipped beyond ${config.database.readReplicaMaxLagSeconds} s of lag)`,
  );
  await replicas.start();
  return replicas;
}

// Private: a database that is still starting (a container booting next to Pulse)
// gets a few tries with doubling pauses; one that stays away ends the start with
// a sentence, not a stack trace.
async function waitForDatabase(db: Database, description: string, attempts: number, logger: Logger): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await pingDatabase(db);
      return;
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      if (attempt >= attempts || toPulseError(error)?.code !== 'UNAVAILABLE') {
        throw new StartupError(
          `the database at ${description} cannot be reached (${reason}): check DATABASE_URL and that the server is up.`,
          { cause: error },
        );
      }
      const delayMs = 500 * 2 ** (attempt - 1);
      logger.warn(`database: not reachable yet (${reason}); retrying in ${delayMs / 1000} s (attempt ${attempt} of ${attempts})`);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
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
