/**
 * What live presence keeps per subscriber, without HTTP or GraphQL:
 * SUBSCRIBER_MEMORY_WATCHERS (100) subscribers of the same 1,000 users, each
 * user offline with a lastSeen (the costliest status to describe), heap after
 * forced garbage collection, with every first status read by the subscriber
 * (`drain`) or none read.
 *
 *   node --expose-gc --import tsx bench/subscriber-memory.ts [drain]
 */
import { LivePresence } from '../src/live/live-presence';
import type { PresenceBus } from '../src/live/presence-bus';
import { silentLogger } from '../src/logger';
import type { UserId } from '../src/presence/user-id';
import { log } from './support';

const WATCHERS = Number(process.env.SUBSCRIBER_MEMORY_WATCHERS ?? 100);

async function main(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc');
  const heap = () => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };
  const drain = process.argv[2] === 'drain';
  const bus = { listen() {}, publish: async () => {}, close: async () => {}, description: 'none', notifyChannel: null } as unknown as PresenceBus;
  const live = new LivePresence({
    bus,
    logger: silentLogger,
    readStatuses: async (ids) =>
      ids.map((userId) => ({ userId, state: 'OFFLINE' as const, online: false, lastSeen: new Date(Date.now() - Number(userId) * 1000), statusText: null, manualStatus: null, idle: false })),
    readTimesUntilChange: async () => new Map(),
  });
  const before = heap();
  const held: AsyncIterableIterator<unknown>[] = [];
  for (let i = 0; i < WATCHERS; i++) {
    const ids = Array.from({ length: 1000 }, (_, j) => String(j + 1) as UserId);
    const stream = await live.watch(ids, null);
    if (drain) for (let k = 0; k < 1000; k++) await stream.next();
    held.push(stream);
  }
  const after = heap();
  log(`${WATCHERS} subscribers of 1,000 users, ${drain ? 'all read' : 'none read'}: ${((after - before) / WATCHERS / 1024).toFixed(1)} KB each`);
  await live.stop();
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
