/**
 * The TTL-store comparator: Pulse exactly as `npm start` runs it (same HTTP
 * server, GraphQL pipeline, tokens and limits), except that a heartbeat is
 * `SET presence:<id> <ms> EX <threshold>` in Redis instead of a row in
 * PostgreSQL: the design Pulse weighed and did not choose, measured instead of
 * argued. Benchmark use only (REDIS_URL, e.g. redis://127.0.0.1:6379).
 *
 * It starts Pulse's own two phases (src/app.ts) and hands the HTTP phase a
 * presence whose heartbeats go to Redis, one command each: no rate limit, no
 * batching. Status reads are Pulse's own.
 */
import Redis from 'ioredis';
import { serve, startServices } from '../src/app';
import { CleanupList } from '../src/cleanup-list';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import type { Presence } from '../src/presence/presence-service';
import type { UserId } from '../src/presence/user-id';
import type { UserStatus } from '../src/presence/user-status';

/** Pulse's presence, with every heartbeat written to Redis with an expiry instead. */
function redisTtlPresence(pulse: Presence, redis: Redis, ttlSeconds: number): Presence {
  return {
    async heartbeat(userId: UserId): Promise<UserStatus> {
      const now = new Date();
      // One command per heartbeat, acknowledged by Redis before the caller is.
      await redis.set(`presence:${userId}`, String(now.getTime()), 'EX', ttlSeconds);
      return { userId, state: 'ONLINE', online: true, lastSeen: now, statusText: null, manualStatus: null, idle: false };
    },
    statuses: (userIds, viewer, options) => pulse.statuses(userIds, viewer, options),
    createStatusLoader: (viewer, options) => pulse.createStatusLoader(viewer, options),
    flush: () => pulse.flush(),
    get pendingHeartbeats() {
      return pulse.pendingHeartbeats;
    },
  };
}

async function main(): Promise<void> {
  const redisUrl = process.env.REDIS_URL;
  if (!redisUrl) throw new Error('REDIS_URL is required');
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  const cleanup = new CleanupList(logger);
  try {
    const services = await startServices(config, logger, {}, cleanup);
    const presence = redisTtlPresence(services.presence, redis, Math.ceil(config.presence.thresholdSeconds));
    const pulse = await serve(config, logger, {}, { ...services, presence }, cleanup);
    const stop = () => {
      void pulse.stop().finally(() => {
        redis.disconnect();
        process.exit(0);
      });
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  } catch (error) {
    await cleanup.run('startup failed, undoing').catch(() => {});
    redis.disconnect();
    throw error;
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
