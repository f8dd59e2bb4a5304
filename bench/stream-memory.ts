/**
 * `npm run bench:stream-memory`: what one open event stream watching many users
 * costs the server. Runs Pulse in this process (so it can force garbage
 * collection and read the heap exactly) and opens STREAM_MEMORY_STREAMS streams
 * of STREAM_MEMORY_IDS users each from plain sockets, in two shapes of client:
 *
 *  - "reads nothing": the socket is paused after the request, as a hostile client
 *    that never reads would leave it; what Pulse queued for it stays with Pulse;
 *  - "reads": the socket reads and discards everything, as a browser does.
 *
 * and two shapes of what they watch: every stream the same ids (the cost of a
 * stream), or each stream ids of its own (plus the cost of each watched user).
 * Figures are heap used (after forced GC) and RSS, per stream. The clients are
 * bare sockets in this process too; a socket is about 1-2 KB of that.
 *
 * Settings: STREAM_MEMORY_STREAMS (200), STREAM_MEMORY_IDS (1000), DATABASE_URL.
 */
import net from 'node:net';
import { sql } from 'kysely';
import { startPulse, type Pulse } from '../src/app';
import { loadConfig } from '../src/config';
import { silentLogger } from '../src/logger';
import { benchDatabase, log, sleep } from './support';

const STREAMS = Number(process.env.STREAM_MEMORY_STREAMS ?? 200);
const IDS = Number(process.env.STREAM_MEMORY_IDS ?? 1000);
const QUERY = 'subscription ($ids: [ID!]) { presenceChanged(ids: $ids) { userId state lastSeen } }';

type Shape = { reads: boolean; sharedIds: boolean };

async function main(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc (npm run bench:stream-memory does)');
  const memory = () => {
    gc();
    gc();
    const usage = process.memoryUsage();
    return { heap: usage.heapUsed, rss: usage.rss };
  };
  const database = await benchDatabase('pulse_stream_memory');
  const config = loadConfig({
    DATABASE_URL: database.url,
    PORT: '0',
    HOST: '127.0.0.1',
    JWT_SECRET: 'x'.repeat(40),
    NODE_ENV: 'test',
    SHUTDOWN_DRAIN_MS: '0',
    // The bench opens more streams than a client may; lift the caps for it.
    STREAMS_PER_CLIENT: String(STREAMS + 10),
    STREAMS_MAX: String(STREAMS + 10),
    // Its paused clients read nothing on purpose: keep their streams open.
    STREAM_STALL_SECONDS: '3600',
    STATUSES_MAX_IDS: String(Math.max(1000, IDS)),
  });
  const pulse = await startPulse(config, silentLogger);
  const lines = [
    `| client | ids | heap per stream (KB) | RSS per stream (KB) |`,
    '|---|---|---:|---:|',
  ];
  try {
    // Half of the watched users have a row (seen a while ago: offline with a
    // lastSeen, the costliest status to describe), half were never seen.
    await seed(pulse, IDS * STREAMS);
    const shapes: Shape[] = [
      { reads: false, sharedIds: true },
      { reads: true, sharedIds: true },
      { reads: false, sharedIds: false },
    ];
    for (const shape of shapes) {
      await sleep(500);
      const before = memory();
      const sockets = await openStreams(pulse, shape);
      const open = memory();
      const heapKb = (open.heap - before.heap) / STREAMS / 1024;
      const rssKb = (open.rss - before.rss) / STREAMS / 1024;
      const client = shape.reads ? 'reads' : 'reads nothing';
      const ids = shape.sharedIds ? `the same ${IDS}` : `${IDS} of its own`;
      lines.push(`| ${client} | ${ids} | ${heapKb.toFixed(1)} | ${rssKb.toFixed(1)} |`);
      log(`${STREAMS} streams, ${client}, ${ids} ids: ${heapKb.toFixed(1)} KB heap and ${rssKb.toFixed(1)} KB RSS per stream`);
      for (const socket of sockets) socket.destroy();
      await until(() => pulse.live.size.subscriptions === 0);
    }
    log(`\n${STREAMS} streams of ${IDS} ids each (${database.label})\n\n${lines.join('\n')}`);
  } finally {
    await pulse.stop();
    await database.stop();
  }
}

// Private: opens the streams 50 at a time and resolves once the server holds all
// of them and has sent each its first statuses (or filled what the socket takes).
async function openStreams(pulse: Pulse, shape: Shape): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  const base = pulse.live.size.subscriptions;
  for (let opened = 0; opened < STREAMS; opened += 50) {
    const batch = Array.from({ length: Math.min(50, STREAMS - opened) }, (_, k) => {
      const first = shape.sharedIds ? 1 : (opened + k) * IDS + 1;
      const ids = Array.from({ length: IDS }, (_, j) => String(first + j));
      return openStream(pulse.port, ids, shape.reads);
    });
    sockets.push(...(await Promise.all(batch)));
  }
  await until(() => pulse.live.size.subscriptions - base >= STREAMS);
  // Time for what was queued to move to the sockets, as far as they take it.
  await sleep(2000);
  return sockets;
}

function openStream(port: number, ids: string[], reads: boolean): Promise<net.Socket> {
  const body = JSON.stringify({ query: QUERY, variables: { ids } });
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(
        `POST /graphql/stream HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\naccept: text/event-stream\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      // The response starts once the first statuses are read; from then on a
      // client that reads nothing leaves everything unread.
      socket.once('data', () => {
        if (!reads) socket.pause();
        resolve(socket);
      });
      if (reads) socket.on('data', () => {});
    });
    socket.on('error', reject);
  });
}

async function seed(pulse: Pulse, users: number): Promise<void> {
  await sql`insert into pulse (user_id, last_hb)
    select g, now() - interval '1 hour' from generate_series(1, ${users}::bigint) g where g % 2 = 0
    on conflict do nothing`.execute(pulse.db);
}

async function until(done: () => boolean): Promise<void> {
  while (!done()) await sleep(50);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
