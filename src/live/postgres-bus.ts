/**
 * The presence bus over PostgreSQL LISTEN/NOTIFY: the default, since Pulse
 * already has the database. Heartbeats NOTIFY from inside their own write
 * statement (see recordHeartbeats), so a coming-online event costs no statement
 * of its own; other changes publish with one `pg_notify` per message.
 *
 * LISTEN needs a session of its own, outside the pool (and outside PgBouncer's
 * transaction mode). When that connection drops, it is reopened with backoff and
 * listeners are told to resync.
 */
import pg from 'pg';
import { sql } from 'kysely';
import type { Database } from '../db/database';
import type { Logger } from '../logger';
import type { UserId } from '../presence/user-id';
import { fromMessage, toMessages, type PresenceBus } from './presence-bus';

export const PRESENCE_CHANNEL = 'pulse_presence';

export function createPostgresBus(options: { url: string; db: Database; logger: Logger }): PresenceBus {
  const { logger } = options;
  let client: pg.Client | null = null;
  let closed = false;
  let retryMs = 500;
  let reconnectTimer: NodeJS.Timeout | null = null;
  let handlers: { onChange(ids: UserId[]): void; onResync(): void } | null = null;

  const connect = async (isReconnect: boolean): Promise<void> => {
    const next = new pg.Client({ connectionString: options.url, application_name: 'pulse-listen' });
    next.on('notification', (message) => {
      if (message.channel === PRESENCE_CHANNEL && message.payload) handlers?.onChange(fromMessage(message.payload));
    });
    next.on('error', (error) => {
      logger.warn('presence bus: LISTEN connection lost', { error });
      lost(next);
    });
    next.on('end', () => lost(next));
    try {
      await next.connect();
      await next.query(`listen ${PRESENCE_CHANNEL}`);
    } catch (error) {
      next.removeAllListeners('end');
      await next.end().catch(() => {});
      throw error;
    }
    if (closed) {
      await next.end().catch(() => {});
      return;
    }
    client = next;
    retryMs = 500;
    if (isReconnect) {
      logger.info('presence bus: LISTEN connection restored');
      handlers?.onResync();
    }
  };

  // Private: a dropped LISTEN session misses every NOTIFY until it is back.
  const lost = (which: pg.Client) => {
    if (client !== which || closed) return;
    client = null;
    scheduleReconnect();
  };
  const scheduleReconnect = () => {
    if (reconnectTimer || closed) return;
    reconnectTimer = setTimeout(() => {
      reconnectTimer = null;
      connect(true).catch((error) => {
        logger.warn(`presence bus: reconnecting failed; retrying in ${retryMs / 1000} s`, { error: (error as Error).message });
        retryMs = Math.min(retryMs * 2, 10_000);
        scheduleReconnect();
      });
    }, retryMs);
  };

  return {
    description: 'PostgreSQL LISTEN/NOTIFY',
    notifyChannel: PRESENCE_CHANNEL,
    get connected() {
      return client !== null;
    },
    async publish(userIds) {
      for (const message of toMessages(userIds)) {
        await sql`select pg_notify(${PRESENCE_CHANNEL}, ${message})`.execute(options.db);
      }
    },
    listen(onChange, onResync) {
      handlers = { onChange, onResync };
      connect(false).catch((error) => {
        logger.warn('presence bus: LISTEN connection failed; retrying', { error: (error as Error).message });
        scheduleReconnect();
      });
    },
    async close() {
      closed = true;
      if (reconnectTimer) clearTimeout(reconnectTimer);
      const current = client;
      client = null;
      await current?.end().catch(() => {});
    },
  };
}
