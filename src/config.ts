/**
 * Configuration: the environment, read once, validated in one place and frozen.
 *
 * Every problem is reported at once (a missing secret and a bad port in the same
 * run both show up), so an operator fixes a deployment in one round trip. Nothing
 * else in Pulse reads `process.env`.
 */
import os from 'node:os';
import path from 'node:path';
import cron from 'node-cron';
import { z } from 'zod';
import { parseTrustProxy, type TrustProxy } from './http/client-address';
import type { Rate } from './limits/token-bucket';

export interface Config {
  readonly nodeEnv: string;
  readonly production: boolean;
  readonly http: {
    readonly host: string;
    readonly port: number;
    /** Largest request body accepted, in bytes. */
    readonly bodyLimitBytes: number;
    /**
     * On shutdown, how long to keep serving (with `Connection: close` and /readyz
     * at 503) before the listener closes, so keep-alive clients move away
     * instead of having an idle connection closed under a request.
     */
    readonly shutdownDrainMs: number;
    /** Origins whose pages may call Pulse from a browser; '*': any (bearer tokens, no cookies). */
    readonly corsAllowedOrigins: readonly string[] | '*';
    /** Time a client has to send a request's headers (slow-header attacks), ms. */
    readonly headersTimeoutMs: number;
    /** Time a client has to send a whole request, body included, ms. */
    readonly requestTimeoutMs: number;
    /** How long an idle keep-alive connection stays open; above a load balancer's idle timeout. */
    readonly keepAliveTimeoutMs: number;
    /** How often an idle multipart subscription on /graphql sends a keep-alive part. */
    readonly subscriptionKeepAliveMs: number;
  };
  readonly limits: {
    /** Whether and how far X-Forwarded-For is believed when naming a client's address. */
    readonly trustProxy: TrustProxy;
    /** Open event streams one client (a user, or an address without a token) may hold. */
    readonly streamsPerClient: number;
    /** Open event streams this process holds at most, whoever opens them. */
    readonly streamsMax: number;
    /** A stream whose unsent output has not shrunk for this long is closed, seconds. */
    readonly streamStallSeconds: number;
    /** Sign-ups per client address; null: unlimited. */
    readonly signupRate: Rate | null;
    /** Name searches per client; null: unlimited. */
    readonly searchRate: Rate | null;
  };
  readonly database: {
    /** Unset: Pulse runs its own embedded PostgreSQL under `dataDir`. */
    readonly url: string | null;
    readonly poolMax: number;
    /** Requests allowed to wait for a connection before new ones are shed (503). */
    readonly poolMaxWaiting: number;
    readonly connectionTimeoutMs: number;
    readonly statementTimeoutMs: number;
    /**
     * Send the hottest statements as prepared (named) statements, planned once per
     * connection. Off for a pooler that cannot keep them (PgBouncer before 1.21 in
     * transaction mode).
     */
    readonly preparedStatements: boolean;
    readonly migrateOnStart: boolean;
    /** Connection attempts at startup before giving up (backoff doubles from 0.5 s). */
    readonly startupAttempts: number;
    readonly embeddedPort: number;
    /**
     * Read replicas of the primary (streaming standbys) for status reads; empty:
     * every read goes to the primary.
     */
    readonly readUrls: readonly string[];
    /** A replica further behind than this is skipped until it catches up. */
    readonly readReplicaMaxLagSeconds: number;
    /** How often each replica's lag (and whether it is up) is measured. */
    readonly readReplicaCheckIntervalMs: number;
  };
  readonly presence: {
    readonly thresholdSeconds: number;
    readonly statusesMaxIds: number;
    /** A user's heartbeats closer together than this are answered without work. */
    readonly heartbeatMinIntervalMs: number;
    /**
     * A user whose row was written less than this many seconds ago is not written
     * again (0: always write). Below the threshold, so a skipped user stays online.
     * Unset: the smaller of 5 s and a sixth of the threshold (see
     * {@link defaultMinWriteGapSeconds}).
     */
    readonly minWriteGapSeconds: number;
  };
  readonly heartbeatBatching: {
    /** Off: every heartbeat is its own statement (the Day-0 path). */
    readonly enabled: boolean;
    /** How long the first heartbeat of a batch waits for others (0, adaptive: the rest of this event-loop turn, or until a statement slot frees). */
    readonly windowMs: number;
    /** A batch this large is written at once. */
    readonly maxSize: number;
    /** Batch statements allowed in flight at once; heartbeats queue behind them. */
    readonly maxInFlight: number;
  };
  readonly events: {
    /** Redis for the presence bus (pub/sub); null: PostgreSQL LISTEN/NOTIFY. */
    readonly redisUrl: string | null;
  };
  readonly auth: {
    /** Unset outside production: a development secret is kept in `dataDir`. */
    readonly jwtSecret: string | null;
    /** How long the token that createUser returns stays valid, in seconds. */
    readonly signupTokenTtlSeconds: number;
    /** An identity provider's key set (RS256/ES256/EdDSA tokens); null: HS256 only. */
    readonly jwksUrl: string | null;
    /** Required `iss` of every token, when set. */
    readonly issuer: string | null;
    /** Accepted `aud` values (one must match), when set. */
    readonly audience: readonly string[] | null;
    /** Algorithms accepted from the key set. */
    readonly algorithms: readonly string[];
    /** The key set is fetched again after this long, seconds. */
    readonly jwksCacheSeconds: number;
    /** A token with an unknown key id fetches the key set again at most this often, seconds. */
    readonly jwksCooldownSeconds: number;
    /** Tokens must carry `exp` (always in production). */
    readonly requireExp: boolean;
    /** Tokens issued (`iat`) longer ago than this are refused; null: no limit. */
    readonly maxTokenAgeSeconds: number | null;
    /** Recently verified tokens kept per process, so repeat requests skip verification; 0: none. */
    readonly verifiedTokensKept: number;
  };
  readonly retention: {
    /** When the retention job runs (a cron expression); null: never. */
    readonly cron: string | null;
    readonly retentionSeconds: number;
    readonly batchSize: number;
  };
  readonly cluster: {
    /**
     * Processes serving HTTP on the same port (node:cluster). 1: one process and
     * no primary, as before; more: a primary that forks, restarts and stops them.
     */
    readonly workers: number;
    /** In a worker forked by the primary: its slot, 1..workers (stable across restarts); otherwise null. */
    readonly workerIndex: number | null;
  };
  /** Local state: the embedded database and the development JWT secret. */
  readonly dataDir: string;
  readonly logLevel: LogLevel;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Thrown by {@link loadConfig} with every problem found, one per line. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

// Private: environment values are strings; these turn them into typed values with
// messages that name the expected form.
const integer = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^-?\d+$/, { message: 'expected a whole number' })
    .transform(Number)
    .pipe(z.number().min(min, { message: `expected at least ${min}` }).max(max, { message: `expected at most ${max}` }));

const positiveNumber = z
  .string()
  .trim()
  .regex(/^\d+(\.\d+)?$/, { message: 'expected a positive number' })
  .transform(Number)
  .pipe(z.number().positive({ message: 'expected a positive number' }));

const nonNegativeNumber = z
  .string()
  .trim()
  .regex(/^\d+(\.\d+)?$/, { message: 'expected a number of 0 or more' })
  .transform(Number);

const boolean = z
  .string()
  .trim()
  .toLowerCase()
  .refine((v) => ['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'].includes(v), {
    message: 'expected true or false',
  })
  .transform((v) => ['true', '1', 'yes', 'on'].includes(v));

const databaseUrl = z
  .string()
  .trim()
  .refine((v) => /^postgres(ql)?:\/\//.test(v), { message: 'expected a postgres:// or postgresql:// URL' });

// One schema per concern, as the environment names them.
const serverEnv = z.object({
  NODE_ENV: z.string().default('development'),
  HOST: z.string().trim().min(1).default('0.0.0.0'),
  PORT: integer(0, 65535).default(4000),
  HTTP_BODY_LIMIT_BYTES: integer(1024, 50 * 1024 * 1024).default(100 * 1024),
  SHUTDOWN_DRAIN_MS: integer(0, 20_000).default(1000),
  CORS_ALLOWED_ORIGINS: z
    .string()
    .trim()
    .refine((v) => v === '*' || v.split(',').every((o) => /^https?:\/\/[^/\s]+$/.test(o.trim())), {
      message: 'expected * or a comma-separated list of origins such as https://app.example.com',
    })
    .default('*'),
  PULSE_DATA_DIR: z.string().trim().min(1).default('data'),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  SUBSCRIPTION_KEEPALIVE_SECONDS: positiveNumber.default(5),
});

// Private: a rate such as 5/m (five a minute), 10/s or 100/h; `off` or `0`: no limit.
const RATE_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600 };
const rate = z
  .string()
  .trim()
  .toLowerCase()
  .regex(/^(off|0|\d+(\.\d+)?\/[smh])$/, { message: 'expected a rate such as 5/m, 10/s or 100/h, or off' })
  .transform((v) => (v === 'off' || v === '0' ? null : Number(v.split('/')[0]) / RATE_UNITS[v.split('/')[1]!]!));

const limitsEnv = z.object({
  TRUST_PROXY: z
    .string()
    .optional()
    .transform((v, ctx) => {
      const parsed = parseTrustProxy(v);
      if ('problem' in parsed) {
        ctx.addIssue({ code: 'custom', message: parsed.problem });
        return z.NEVER;
      }
      return parsed;
    }),
  STREAMS_PER_CLIENT: integer(1, 100_000).default(20),
  STREAMS_MAX: integer(1, 10_000_000).default(5_000),
  STREAM_STALL_SECONDS: integer(1, 86_400).default(60),
  SIGNUP_RATE: rate.default(5 / 60),
  SIGNUP_BURST: integer(1, 100_000).default(10),
  SEARCH_RATE: rate.default(5),
  SEARCH_BURST: integer(1, 100_000).default(20),
  HTTP_HEADERS_TIMEOUT_MS: integer(1000, 600_000).default(10_000),
  HTTP_REQUEST_TIMEOUT_MS: integer(1000, 3_600_000).default(30_000),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: integer(1000, 3_600_000).default(65_000),
});

const databaseEnv = z.object({
  DATABASE_URL: databaseUrl.optional(),
  DB_POOL_MAX: integer(1, 1000).default(10),
  DB_POOL_MAX_WAITING: integer(0, 1_000_000).default(100),
  DB_CONNECTION_TIMEOUT_MS: integer(100, 600_000).default(5_000),
  DB_STATEMENT_TIMEOUT_MS: integer(100, 3_600_000).default(5_000),
  DB_PREPARED_STATEMENTS: boolean.default(true),
  MIGRATE_ON_START: boolean.default(true),
  DB_STARTUP_ATTEMPTS: integer(1, 100).default(6),
  EMBEDDED_PG_PORT: integer(1, 65535).default(54329),
  READ_DATABASE_URL: z
    .string()
    .trim()
    .refine((v) => v.split(',').every((u) => /^postgres(ql)?:\/\/\S+$/.test(u.trim())), {
      message: 'expected a postgres:// or postgresql:// URL, or a comma-separated list of them',
    })
    .optional(),
  // Default: a sixth of the threshold (see the cross-field rule below).
  READ_REPLICA_MAX_LAG_SECONDS: positiveNumber.optional(),
  READ_REPLICA_CHECK_INTERVAL_MS: integer(100, 60_000).default(1000),
});

const presenceEnv = z.object({
  PRESENCE_THRESHOLD_SECONDS: positiveNumber.default(30),
  STATUSES_MAX_IDS: integer(1, 100_000).default(1000),
  HEARTBEAT_MIN_INTERVAL_MS: integer(0, 60_000).default(1000),
  // Unset: derived from the threshold (defaultMinWriteGapSeconds).
  HEARTBEAT_MIN_WRITE_GAP_SECONDS: nonNegativeNumber.optional(),
  HEARTBEAT_BATCHING: boolean.default(true),
  HEARTBEAT_BATCH_WINDOW_MS: integer(0, 1000).default(0),
  HEARTBEAT_BATCH_MAX: integer(1, 10_000).default(1000),
  HEARTBEAT_BATCH_MAX_IN_FLIGHT: integer(1, 100).default(2),
});

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };
const duration = z
  .string()
  .trim()
  .regex(/^\d+[smhd]$/, { message: 'expected a duration such as 30d, 12h, 90m or 45s' })
  .transform((v) => Number(v.slice(0, -1)) * DURATION_UNITS[v.slice(-1)]!)
  .pipe(z.number().positive({ message: 'expected a duration above zero' }));

const eventsEnv = z.object({
  REDIS_URL: z
    .string()
    .trim()
    .refine((v) => /^rediss?:\/\//.test(v), { message: 'expected a redis:// or rediss:// URL' })
    .optional(),
});

const jobsEnv = z.object({
  RETENTION_CRON: z
    .string()
    .trim()
    .refine((v) => cron.validate(v), { message: 'expected a cron expression such as "15 3 * * *"' })
    .optional(),
  PULSE_RETENTION: duration.default(30 * 86_400),
  RETENTION_BATCH_SIZE: integer(1, 1_000_000).default(5000),
});

// The algorithms a key set may sign with. HS* is not among them: with a public
// key as an HMAC secret, anyone could forge tokens.
const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

// `auto`: one worker per core the process may use, as os.availableParallelism()
// reports it (CPU affinity counts; a container's CPU quota may not).
const clusterEnv = z.object({
  PULSE_WORKERS: z
    .string()
    .trim()
    .toLowerCase()
    .refine((v) => v === 'auto' || /^\d+$/.test(v), { message: 'expected a whole number of workers, or auto' })
    .transform((v) => (v === 'auto' ? os.availableParallelism() : Number(v)))
    .pipe(z.number().min(1, { message: 'expected at least 1' }).max(256, { message: 'expected at most 256' }))
    .default(1),
  // Set by the primary for the workers it forks; not an operator's setting.
  PULSE_WORKER_INDEX: integer(1, 256).optional(),
});

const authEnv = z.object({
  // HS256 is only as strong as its secret: 32 characters is the floor RFC 7518
  // asks for (a key at least as long as the hash output).
  JWT_SECRET: z.string().min(32, { message: 'expected at least 32 characters' }).optional(),
  SIGNUP_TOKEN_TTL_SECONDS: integer(60, 366 * 86_400).default(30 * 86_400),
  JWT_JWKS_URL: z
    .string()
    .trim()
    .refine(
      (v) => {
        try {
          const url = new URL(v);
          // Keys over plain HTTP could be swapped by anyone on the path; loopback
          // only (a provider on this machine, or a test's key server).
          return url.protocol === 'https:' || (url.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname));
        } catch {
          return false;
        }
      },
      { message: 'expected an https:// URL of a JSON Web Key Set (http:// only for localhost)' },
    )
    .optional(),
  JWT_ISSUER: z.string().trim().min(1).optional(),
  JWT_AUDIENCE: z.string().trim().min(1).optional(),
  JWT_ALGORITHMS: z
    .string()
    .trim()
    .refine((v) => v.split(',').every((a) => ASYMMETRIC_ALGORITHMS.includes(a.trim())), {
      message: `expected a comma-separated list of ${ASYMMETRIC_ALGORITHMS.join(', ')} (never none, never HS* with a key set)`,
    })
    .default('RS256,ES256,EdDSA'),
  JWT_JWKS_CACHE_SECONDS: integer(1, 86_400).default(600),
  JWT_JWKS_COOLDOWN_SECONDS: integer(0, 3600).default(30),
  JWT_REQUIRE_EXP: boolean.optional(),
  JWT_MAX_TOKEN_AGE_SECONDS: integer(1, 366 * 86_400).optional(),
  JWT_VERIFIED_TOKENS_KEPT: integer(0, 10_000_000).default(50_000),
});

/**
 * Reads the environment into a frozen {@link Config}. `forServer: false` is for
 * tools (migrations) that need the database settings but not the JWT secret.
 *
 * @throws ConfigError listing every invalid or missing variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, options: { forServer?: boolean } = {}): Config {
  const forServer = options.forServer ?? true;
  // An empty variable (`PORT=`) means "not set", as it does in most shells' eyes.
  const values: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && value !== '') values[key] = value;
  }

  const problems: string[] = [];
  const parse = <T extends z.ZodType>(schema: T): z.output<T> | undefined => {
    const result = schema.safeParse(values);
    if (result.success) return result.data;
    for (const issue of result.error.issues) {
      const name = issue.path.join('.');
      problems.push(`${name}: ${issue.message}${name in values ? ` (got "${values[name]}")` : ''}`);
    }
    return undefined;
  };

  const server = parse(serverEnv);
  const database = parse(databaseEnv);
  const presence = parse(presenceEnv);
  const auth = parse(authEnv);
  const jobs = parse(jobsEnv);
  const events = parse(eventsEnv);
  const limits = parse(limitsEnv);
  const cluster = parse(clusterEnv);

  const production = (server?.NODE_ENV ?? values.NODE_ENV) === 'production';
  // Only the server signs and verifies tokens; DBA tools run without the secret.
  if (production && forServer && !values.JWT_SECRET && !values.JWT_JWKS_URL) {
    problems.push(
      'JWT_SECRET: required when NODE_ENV=production (a random string of at least 32 characters, e.g. `openssl rand -hex 32`), unless JWT_JWKS_URL names an identity provider\'s keys',
    );
  }
  // A token without an expiry is valid forever once leaked.
  if (production && auth?.JWT_REQUIRE_EXP === false) {
    problems.push('JWT_REQUIRE_EXP: cannot be false when NODE_ENV=production (a token without exp would never expire)');
  }
  // Node refuses a request whose headers take longer than the whole request may.
  if (limits && limits.HTTP_HEADERS_TIMEOUT_MS > limits.HTTP_REQUEST_TIMEOUT_MS) {
    problems.push(
      `HTTP_HEADERS_TIMEOUT_MS: expected at most HTTP_REQUEST_TIMEOUT_MS (${limits.HTTP_REQUEST_TIMEOUT_MS}), since the headers are part of the request (got "${limits.HTTP_HEADERS_TIMEOUT_MS}")`,
    );
  }

  // A skipped write leaves last_hb up to the gap old; at or past the threshold a
  // user who keeps sending heartbeats would flicker offline. Only a gap the
  // operator chose can be wrong: the derived one is always below the threshold.
  const minWriteGapSeconds = presence
    ? (presence.HEARTBEAT_MIN_WRITE_GAP_SECONDS ?? defaultMinWriteGapSeconds(presence.PRESENCE_THRESHOLD_SECONDS))
    : 0;
  if (presence?.HEARTBEAT_MIN_WRITE_GAP_SECONDS !== undefined && presence.HEARTBEAT_MIN_WRITE_GAP_SECONDS >= presence.PRESENCE_THRESHOLD_SECONDS) {
    problems.push(
      `HEARTBEAT_MIN_WRITE_GAP_SECONDS: expected less than PRESENCE_THRESHOLD_SECONDS (${presence.PRESENCE_THRESHOLD_SECONDS}), or a user who keeps sending heartbeats could show as offline (got "${presence.HEARTBEAT_MIN_WRITE_GAP_SECONDS}")`,
    );
  }

  if (database?.READ_DATABASE_URL && !database.DATABASE_URL) {
    problems.push(
      'READ_DATABASE_URL: needs DATABASE_URL too (replicas stream from a primary you run; the embedded PostgreSQL has none)',
    );
  }
  // A replica shows a user's last heartbeat as it was `lag` seconds ago, and that
  // row may itself be a write gap old: past the threshold, a user who keeps
  // sending heartbeats would read as offline from a replica.
  if (presence && database?.READ_REPLICA_MAX_LAG_SECONDS !== undefined) {
    const room = presence.PRESENCE_THRESHOLD_SECONDS - minWriteGapSeconds;
    if (database.READ_REPLICA_MAX_LAG_SECONDS >= room) {
      problems.push(
        `READ_REPLICA_MAX_LAG_SECONDS: expected less than PRESENCE_THRESHOLD_SECONDS minus HEARTBEAT_MIN_WRITE_GAP_SECONDS (${room}), or a replica could show users who keep sending heartbeats as offline (got "${database.READ_REPLICA_MAX_LAG_SECONDS}")`,
      );
    }
  }

  if (problems.length > 0 || !server || !database || !presence || !auth || !jobs || !events || !limits || !cluster) {
    throw new ConfigError(problems);
  }

  const config: Config = {
    nodeEnv: server.NODE_ENV,
    production,
    http: {
      host: server.HOST,
      port: server.PORT,
      bodyLimitBytes: server.HTTP_BODY_LIMIT_BYTES,
      shutdownDrainMs: server.SHUTDOWN_DRAIN_MS,
      corsAllowedOrigins: server.CORS_ALLOWED_ORIGINS === '*' ? '*' : server.CORS_ALLOWED_ORIGINS.split(',').map((o) => o.trim()),
      headersTimeoutMs: limits.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: limits.HTTP_REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: limits.HTTP_KEEP_ALIVE_TIMEOUT_MS,
      subscriptionKeepAliveMs: Math.max(1, Math.round(server.SUBSCRIPTION_KEEPALIVE_SECONDS * 1000)),
    },
    limits: {
      trustProxy: limits.TRUST_PROXY,
      streamsPerClient: limits.STREAMS_PER_CLIENT,
      streamsMax: limits.STREAMS_MAX,
      streamStallSeconds: limits.STREAM_STALL_SECONDS,
      signupRate: limits.SIGNUP_RATE === null ? null : { perSecond: limits.SIGNUP_RATE, burst: limits.SIGNUP_BURST },
      searchRate: limits.SEARCH_RATE === null ? null : { perSecond: limits.SEARCH_RATE, burst: limits.SEARCH_BURST },
    },
    database: {
      url: database.DATABASE_URL ?? null,
      poolMax: database.DB_POOL_MAX,
      poolMaxWaiting: database.DB_POOL_MAX_WAITING,
      connectionTimeoutMs: database.DB_CONNECTION_TIMEOUT_MS,
      statementTimeoutMs: database.DB_STATEMENT_TIMEOUT_MS,
      preparedStatements: database.DB_PREPARED_STATEMENTS,
      migrateOnStart: database.MIGRATE_ON_START,
      startupAttempts: database.DB_STARTUP_ATTEMPTS,
      embeddedPort: database.EMBEDDED_PG_PORT,
      readUrls: database.READ_DATABASE_URL ? database.READ_DATABASE_URL.split(',').map((u) => u.trim()) : [],
      readReplicaMaxLagSeconds: database.READ_REPLICA_MAX_LAG_SECONDS ?? presence.PRESENCE_THRESHOLD_SECONDS / 6,
      readReplicaCheckIntervalMs: database.READ_REPLICA_CHECK_INTERVAL_MS,
    },
    presence: {
      thresholdSeconds: presence.PRESENCE_THRESHOLD_SECONDS,
      statusesMaxIds: presence.STATUSES_MAX_IDS,
      heartbeatMinIntervalMs: presence.HEARTBEAT_MIN_INTERVAL_MS,
      minWriteGapSeconds,
    },
    heartbeatBatching: {
      enabled: presence.HEARTBEAT_BATCHING,
      windowMs: presence.HEARTBEAT_BATCH_WINDOW_MS,
      maxSize: presence.HEARTBEAT_BATCH_MAX,
      maxInFlight: presence.HEARTBEAT_BATCH_MAX_IN_FLIGHT,
    },
    events: { redisUrl: events.REDIS_URL ?? null },
    auth: {
      jwtSecret: auth.JWT_SECRET ?? null,
      signupTokenTtlSeconds: auth.SIGNUP_TOKEN_TTL_SECONDS,
      jwksUrl: auth.JWT_JWKS_URL ?? null,
      issuer: auth.JWT_ISSUER ?? null,
      audience: auth.JWT_AUDIENCE ? auth.JWT_AUDIENCE.split(',').map((a) => a.trim()) : null,
      algorithms: auth.JWT_ALGORITHMS.split(',').map((a) => a.trim()),
      jwksCacheSeconds: auth.JWT_JWKS_CACHE_SECONDS,
      jwksCooldownSeconds: auth.JWT_JWKS_COOLDOWN_SECONDS,
      requireExp: auth.JWT_REQUIRE_EXP ?? production,
      maxTokenAgeSeconds: auth.JWT_MAX_TOKEN_AGE_SECONDS ?? null,
      verifiedTokensKept: auth.JWT_VERIFIED_TOKENS_KEPT,
    },
    retention: {
      cron: jobs.RETENTION_CRON ?? null,
      retentionSeconds: jobs.PULSE_RETENTION,
      batchSize: jobs.RETENTION_BATCH_SIZE,
    },
    cluster: { workers: cluster.PULSE_WORKERS, workerIndex: cluster.PULSE_WORKER_INDEX ?? null },
    dataDir: path.resolve(server.PULSE_DATA_DIR),
    logLevel: server.LOG_LEVEL,
  };
  return deepFreeze(config);
}

/**
 * The minimum write gap when HEARTBEAT_MIN_WRITE_GAP_SECONDS is not set: the
 * smaller of 5 s and a sixth of the presence threshold (5 s at the default 30 s;
 * 0.5 s at a threshold of 3 s).
 *
 * Why a sixth: clients send a heartbeat every third of the threshold (the browser
 * client's interval), and a skipped write leaves last_hb up to the gap old, so a
 * user stays online through one lost heartbeat while gap + 2 intervals is below
 * the threshold, that is while the gap is below a third of it. A sixth keeps half
 * of that as room for network delay. Past 30 s, 5 s is already a sixth of the
 * write load of writing every heartbeat; a longer gap saves little.
 */
export function defaultMinWriteGapSeconds(thresholdSeconds: number): number {
  return Math.min(5, thresholdSeconds / 6);
}

// Private: configuration is shared by every module; freezing it makes an accidental
// write fail loudly instead of changing behaviour somewhere far away.
function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (child && typeof child === 'object') deepFreeze(child);
  }
  return Object.freeze(value);
}
