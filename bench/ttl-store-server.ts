/**
 * The TTL-store comparator: Pulse exactly as `npm start` runs it (same HTTP
 * server, GraphQL pipeline, tokens and limits), except that a heartbeat is
 * `SET presence:<id> <ms> EX <threshold>` in Redis instead of a row in
 * PostgreSQL: the design Pulse weighed and did not choose, measured instead of
 * argued. Benchmark use only (REDIS_URL, e.g. redis://127.0.0.1:6379).
 */
import Redis from 'ioredis';
import { startPulse } from '../src/app';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { PresenceService, type PresenceServiceOptions } from '../src/presence/presence-service';
import type { UserId } from '../src/presence/user-id';
import type { UserStatus } from '../src/presence/user-status';

/** Heartbeats go to Redis with an expiry; status reads are Pulse's own. */
class RedisTtlPresence extends PresenceService {
  readonly #redis: Redis;
  readonly #ttlSeconds: number;

  constructor(options: PresenceServiceOptions, redis: Redis) {
    super(options);
    this.#redis = redis;
    this.#ttlSeconds = Math.ceil(options.thresholdSeconds);
  }

  override async heartbeat(userId: UserId): Promise<UserStatus> {
    const now = new Date();
    // One command per heartbeat, acknowledged by Redis before the caller is.
    await this.#redis.set(`presence:${userId}`, String(now.getTime()), 'EX', this.#ttlSeconds);
    return { userId, state: 'ONLINE', online: true, lastSeen: now, statusText: null, manualStatus: null, idle: false };
  }
}

async function main(): Promise<void> {
  const redisUrl = process.env.REDIS_URL;
  if (!redisUrl) throw new Error('REDIS_URL is required');
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  const pulse = await startPulse(config, logger, { createPresence: (options) => new RedisTtlPresence(options, redis) });
  const stop = () => {
    void pulse.stop().finally(() => {
      redis.disconnect();
      process.exit(0);
    });
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
