/**
 * The presence bus over Redis pub/sub, used when REDIS_URL is set: every process
 * subscribes to one channel; Redis fans messages out without touching the
 * database, which scales past the single notification queue of PostgreSQL.
 */
import Redis from 'ioredis';
import type { Logger } from '../logger';
import { fromMessage, toMessages, type PresenceBus } from './presence-bus';
import { redactUrl } from '../db/database';

export const REDIS_PRESENCE_CHANNEL = 'pulse:presence';

export function createRedisBus(options: { url: string; logger: Logger }): PresenceBus {
  const { logger } = options;
  // Commands fail fast while Redis is away instead of queueing without bound.
  const publisher = new Redis(options.url, { maxRetriesPerRequest: 1, lazyConnect: false });
  // A subscribed connection may only subscribe: the listener needs its own.
  const subscriber = publisher.duplicate();
  publisher.on('error', (error) => logger.warn('presence bus: Redis publisher error', { error: error.message }));
  subscriber.on('error', (error) => logger.warn('presence bus: Redis subscriber error', { error: error.message }));

  return {
    description: `Redis pub/sub (${redactUrl(options.url)})`,
    notifyChannel: null,
    get connected() {
      return subscriber.status === 'ready';
    },
    async publish(userIds) {
      for (const message of toMessages(userIds)) await publisher.publish(REDIS_PRESENCE_CHANNEL, message);
    },
    listen(onChange, onResync) {
      let ready = subscriber.status === 'ready';
      subscriber.on('message', (channel: string, message: string) => {
        if (channel === REDIS_PRESENCE_CHANNEL) onChange(fromMessage(message));
      });
      // ioredis resubscribes by itself after a reconnect; what was published in
      // between is gone, so listeners resync.
      subscriber.on('ready', () => {
        if (ready) {
          logger.info('presence bus: Redis connection restored');
          onResync();
        }
        ready = true;
      });
      subscriber.subscribe(REDIS_PRESENCE_CHANNEL).catch((error: Error) => {
        logger.warn('presence bus: Redis SUBSCRIBE failed', { error: error.message });
      });
    },
    async close() {
      subscriber.disconnect();
      publisher.disconnect();
    },
  };
}
