/**
 * `npm run bench:live-memory`: does live presence give back what subscribers
 * held once they leave? Runs Pulse in this process (so it can force garbage
 * collection and read the heap exactly), then, round after round, opens
 * LIVE_MEMORY_STREAMS event streams of 10 users each, reads the heap, closes them
 * all, and reads the heap again. Flat "after closing" figures across rounds mean
 * nothing is left behind; "open" minus "after" is the cost per stream (client
 * side included, since both live in this process).
 *
 *   npm run bench:live-memory          # needs --expose-gc, which the script passes
 *
 * Settings: LIVE_MEMORY_STREAMS (2000), LIVE_MEMORY_ROUNDS (4), DATABASE_URL.
 */
import { Agent, fetch as undiciFetch } from 'undici';
import { startPulse } from '../src/app';
import { loadConfig } from '../src/config';
import { silentLogger } from '../src/logger';
import { benchDatabase, log, sleep } from './support';

const STREAMS = Number(process.env.LIVE_MEMORY_STREAMS ?? 2000);
const ROUNDS = Number(process.env.LIVE_MEMORY_ROUNDS ?? 4);
const QUERY = 'subscription ($ids: [ID!]) { presenceChanged(ids: $ids) { userId state } }';

async function main(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc (npm run bench:live-memory does)');
  const heapMb = () => {
    gc();
    gc();
    return process.memoryUsage().heapUsed / 2 ** 20;
  };
  const database = await benchDatabase('pulse_live_memory');
  const config = loadConfig({ DATABASE_URL: database.url, PORT: '0', HOST: '127.0.0.1', JWT_SECRET: 'x'.repeat(40), NODE_ENV: 'test', SHUTDOWN_DRAIN_MS: '0', STREAMS_PER_CLIENT: String(STREAMS + 10), STREAMS_MAX: String(STREAMS + 10) });
  const pulse = await startPulse(config, silentLogger);
  const lines = ['| round | heap MB, streams open | heap MB, all closed | subscriptions left |', '|---:|---:|---:|---:|'];
  try {
    const baseline = heapMb();
    log(`heap before any stream: ${baseline.toFixed(1)} MB; ${ROUNDS} rounds of ${STREAMS} streams`);
    for (let round = 1; round <= ROUNDS; round++) {
      const agent = new Agent({ connections: STREAMS + 10 });
      const aborts: AbortController[] = [];
      for (let opened = 0; opened < STREAMS; opened += 100) {
        await Promise.all(
          Array.from({ length: Math.min(100, STREAMS - opened) }, async (_, k) => {
            const abort = new AbortController();
            aborts.push(abort);
            const ids = Array.from({ length: 10 }, (_, j) => String((((opened + k) * 10 + j) % 1000) + 1));
            const response = await undiciFetch(`${pulse.graphqlUrl}/stream`, {
              method: 'POST',
              headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
              body: JSON.stringify({ query: QUERY, variables: { ids } }),
              signal: abort.signal,
              dispatcher: agent,
            });
            const reader = response.body!.getReader();
            void (async () => {
              try {
                while (!(await reader.read()).done);
              } catch {
                /* closed */
              }
            })();
          }),
        );
      }
      await sleep(1000);
      const open = heapMb();
      for (const abort of aborts) abort.abort();
      await agent.destroy();
      await sleep(2000);
      const closed = heapMb();
      lines.push(`| ${round} | ${open.toFixed(1)} | ${closed.toFixed(1)} | ${pulse.live.size.subscriptions} |`);
      log(`round ${round}: ${open.toFixed(1)} MB with ${STREAMS} open, ${closed.toFixed(1)} MB after closing, ${pulse.live.size.subscriptions} subscriptions left`);
    }
    log(`\nheap before any stream: ${baseline.toFixed(1)} MB\n\n${lines.join('\n')}`);
  } finally {
    await pulse.stop();
    await database.stop();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
