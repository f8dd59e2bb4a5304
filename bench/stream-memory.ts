/**
 * `npm run bench:stream-memory`: what one open event stream watching many users
 * costs the server. Runs Pulse in this process (so it can force garbage
 * collection and read the heap exactly) and opens STREAM_MEMORY_STREAMS streams
 * of STREAM_MEMORY_IDS users each from plain sockets, in two shapes of client:
 *
 *  - "reads nothing": the socket is paused after the response's first bytes, as
 *    a hostile client that never reads would leave it; what Pulse queued for it
 *    stays with Pulse;
 *  - "reads": the socket reads and discards everything, as a browser does.
 *
 * and two shapes of what they watch: every stream the same ids (the cost of a
 * stream), or each stream ids of its own (plus the cost of each watched user).
 * Figures are heap used (after forced GC) and RSS, per stream, against the same
 * process with no stream open just before. The clients are bare sockets in this
 * process too; a socket is about 1-2 KB of that.
 *
 * The run is bounded: every wait has a deadline that ends the run with what it
 * was waiting for and how far it got, and STREAM_MEMORY_TIMEOUT_SECONDS ends the
 * whole run (sockets closed, Pulse stopped, the database dropped) whatever it is
 * doing, so a machine under load gets an error line, never a hung bench.
 *
 * Settings: STREAM_MEMORY_STREAMS (200), STREAM_MEMORY_IDS (1000),
 * STREAM_MEMORY_TIMEOUT_SECONDS (300), STREAM_MEMORY_SNAPSHOTS (a folder: writes
 * a V8 heap snapshot with no stream and one with the streams of the first shape
 * open, to compare in Chrome DevTools' Comparison view), DATABASE_URL.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import v8 from 'node:v8';
import { sql } from 'kysely';
import { startPulse, type Pulse } from '../src/app';
import { loadConfig } from '../src/config';
import { silentLogger } from '../src/logger';
import { benchDatabase, log, sleep, type BenchDatabase } from './support';

const STREAMS = Number(process.env.STREAM_MEMORY_STREAMS ?? 200);
const IDS = Number(process.env.STREAM_MEMORY_IDS ?? 1000);
const TIMEOUT_MS = Number(process.env.STREAM_MEMORY_TIMEOUT_SECONDS ?? 300) * 1000;
const SNAPSHOTS = process.env.STREAM_MEMORY_SNAPSHOTS;
const QUERY = 'subscription ($ids: [ID!]) { presenceChanged(ids: $ids) { userId state lastSeen } }';
/** Streams opened at once: enough to be quick, few enough not to queue on the pool. */
const BATCH = 25;

type Shape = { reads: boolean; sharedIds: boolean };

/** Everything the run must close, whichever way it ends. */
const open: { sockets: Set<net.Socket>; pulse: Pulse | null; database: BenchDatabase | null } = { sockets: new Set(), pulse: null, database: null };

async function main(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc (npm run bench:stream-memory does)');
  for (const [name, value] of Object.entries({ STREAM_MEMORY_STREAMS: STREAMS, STREAM_MEMORY_IDS: IDS, STREAM_MEMORY_TIMEOUT_SECONDS: TIMEOUT_MS })) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`${name}: expected a positive integer, got ${JSON.stringify(process.env[name])}`);
  }
  const memory = () => {
    gc();
    gc();
    const usage = process.memoryUsage();
    return { heap: usage.heapUsed, rss: usage.rss };
  };
  const database = (open.database = await benchDatabase('pulse_stream_memory'));
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
  const pulse = (open.pulse = await startPulse(config, silentLogger));
  const lines = [`| client | ids | heap per stream (KB) | RSS per stream (KB) |`, '|---|---|---:|---:|'];
  // Half of the watched users have a row (seen a while ago: offline with a
  // lastSeen, the costliest status to describe), half were never seen.
  await seed(pulse, IDS * STREAMS);
  log(`seeded ${IDS * STREAMS} users; ${STREAMS} streams of ${IDS} ids per shape`);
  const shapes: Shape[] = [
    { reads: false, sharedIds: true },
    { reads: true, sharedIds: true },
    { reads: false, sharedIds: false },
  ];
  for (const [index, shape] of shapes.entries()) {
    const client = shape.reads ? 'reads' : 'reads nothing';
    const ids = shape.sharedIds ? `the same ${IDS}` : `${IDS} of its own`;
    // One stream first, closed again: what the first stream of a process builds
    // once (code, caches) is not a stream's cost.
    closeAll(await openStreams(pulse, shape, 1));
    await until('the warm-up stream to end', () => pulse.live.size.subscriptions === 0, 30_000);
    await sleep(500);
    const before = memory();
    if (SNAPSHOTS && index === 0) snapshot('0-streams');
    const sockets = await openStreams(pulse, shape, STREAMS);
    const after = memory();
    if (SNAPSHOTS && index === 0) snapshot(`${STREAMS}-streams`);
    const heapKb = (after.heap - before.heap) / STREAMS / 1024;
    const rssKb = (after.rss - before.rss) / STREAMS / 1024;
    lines.push(`| ${client} | ${ids} | ${heapKb.toFixed(1)} | ${rssKb.toFixed(1)} |`);
    log(`${STREAMS} streams, ${client}, ${ids} ids: ${heapKb.toFixed(1)} KB heap and ${rssKb.toFixed(1)} KB RSS per stream`);
    closeAll(sockets);
    await until('every stream to end after its client left', () => pulse.live.size.subscriptions === 0, 60_000);
  }
  log(`\n${STREAMS} streams of ${IDS} ids each (${database.label}, Node ${process.version})\n\n${lines.join('\n')}`);
}

// Private: opens `count` streams, BATCH at a time, and resolves once the server
// holds all of them and has sent each its first statuses (or filled what the
// socket takes).
async function openStreams(pulse: Pulse, shape: Shape, count: number): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  const base = pulse.live.size.subscriptions;
  for (let opened = 0; opened < count; opened += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, count - opened) }, (_, k) => {
      const first = shape.sharedIds ? 1 : (opened + k) * IDS + 1;
      const ids = Array.from({ length: IDS }, (_, j) => String(first + j));
      return openStream(pulse.port, ids, shape.reads);
    });
    sockets.push(...(await Promise.all(batch)));
  }
  await until(`${count} streams to be open`, () => pulse.live.size.subscriptions - base >= count, 60_000, () => `${pulse.live.size.subscriptions - base} open`);
  // Time for what was queued to move to the sockets, as far as they take it.
  await sleep(2000);
  return sockets;
}

// Private: resolves with the socket once the response's first bytes arrived;
// rejects if the server answers anything but an event stream, or not in time.
function openStream(port: number, ids: string[], reads: boolean): Promise<net.Socket> {
  const body = JSON.stringify({ query: QUERY, variables: { ids } });
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    open.sockets.add(socket);
    socket.once('close', () => open.sockets.delete(socket));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('a stream did not answer within 30 s'));
    }, 30_000);
    socket.once('connect', () => {
      socket.write(
        `POST /graphql/stream HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\naccept: text/event-stream\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    });
    // The response starts once the first statuses are read; from then on a
    // client that reads nothing leaves everything unread.
    socket.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      const head = chunk.toString('latin1', 0, 200);
      if (!head.startsWith('HTTP/1.1 200') || !/text\/event-stream/i.test(head)) {
        socket.destroy();
        reject(new Error(`a stream was refused: ${head.split('\r\n')[0]}`));
        return;
      }
      if (reads) socket.on('data', () => {});
      else socket.pause();
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

function closeAll(sockets: Iterable<net.Socket>): void {
  for (const socket of [...sockets]) socket.destroy();
}

function snapshot(name: string): void {
  fs.mkdirSync(SNAPSHOTS!, { recursive: true });
  const file = v8.writeHeapSnapshot(path.join(SNAPSHOTS!, `stream-memory-${name}.heapsnapshot`));
  log(`heap snapshot: ${file}`);
}

async function seed(pulse: Pulse, users: number): Promise<void> {
  await sql`insert into pulse (user_id, last_hb)
    select g, now() - interval '1 hour' from generate_series(1, ${users}::bigint) g where g % 2 = 0
    on conflict do nothing`.execute(pulse.db);
}

// Private: waits for `done`, checking every 50 ms; after `timeoutMs` throws,
// naming what it waited for and, from `progress`, how far it got.
async function until(what: string, done: () => boolean, timeoutMs: number, progress?: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`gave up after ${timeoutMs / 1000} s waiting for ${what}${progress ? ` (${progress()})` : ''}`);
    await sleep(50);
  }
}

// Private: closes what the run opened, in reverse order; each step bounded, so
// that ending the run cannot hang either.
async function cleanUp(): Promise<void> {
  closeAll(open.sockets);
  const bounded = (work: Promise<void>) => Promise.race([work.catch(() => {}), sleep(15_000)]);
  if (open.pulse) await bounded(open.pulse.stop());
  if (open.database) await bounded(open.database.stop());
}

// Private: ends the run now, closing what it opened first.
function stop(reason: string): void {
  process.stderr.write(`stream-memory: ${reason}; stopping\n`);
  void cleanUp().finally(() => process.exit(1));
}
const watchdog = setTimeout(() => stop(`still running after ${TIMEOUT_MS / 1000} s (STREAM_MEMORY_TIMEOUT_SECONDS)`), TIMEOUT_MS);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => stop(signal));

main()
  .then(cleanUp, async (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
    process.exitCode = 1;
    await cleanUp();
  })
  .finally(() => process.exit());
