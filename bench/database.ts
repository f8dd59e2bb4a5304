/**
 * The database half of Pulse's benchmark: what PostgreSQL itself can do with the
 * pulse table, with no HTTP, GraphQL or batching window in the way.
 *
 *  1. Write ceilings: the single-row heartbeat upsert against the 1000-row batched
 *     upsert, side by side, measured by a Node closed loop (always) and by pgbench
 *     (when it is installed). The Node driver runs everywhere Pulse runs (the
 *     embedded PostgreSQL ships no pgbench), so every machine reports the same
 *     rows; pgbench, a C client, shows whether Node's own CPU limited them.
 *  2. Size per row: the table and its primary key at the small size, freshly loaded
 *     and after one heartbeat for every row (churn), and at the large size.
 *  3. Growth: status read latency and batched heartbeat throughput at the small and
 *     the large size, with the ratio large/small.
 *
 * Everything runs in two databases of its own (one per size), created on the server
 * named by `url`, migrated with Pulse's migrations and dropped at the end, so
 * nothing else on that server is touched. Figures are only comparable within one
 * run: compare the ratios.
 *
 *   const result = await runDatabaseBench({ url, progress: console.log });
 *   fs.writeFileSync('database.md', databaseBenchMarkdown(result));
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createDatabase, type Database } from '../src/db/database';
import { migrateToLatest } from '../src/db/migrator';
import { silentLogger } from '../src/logger';
import { findStatusRows } from '../src/presence/status-repository';
import type { UserId } from '../src/presence/user-id';

export interface DatabaseBenchOptions {
  /**
   * A PostgreSQL the bench may create databases on (`postgres://user@host/db`);
   * the bench's two databases are created next to the one named, then dropped.
   */
  url: string;
  /** Called with one human-readable line per step, while the bench runs. */
  progress: (line: string) => void;
  /** Rows for the write ceilings, the size per row and the first growth point. Default 1,000,000. */
  rowsSmall?: number;
  /** Rows for the second growth point. Default 10,000,000. */
  rowsLarge?: number;
  /** Duration of each timed write run, in seconds. Default 10. */
  seconds?: number;
  /** Concurrent connections for the write runs. Default 8. */
  clients?: number;
  /** Status reads measured at each size in each round. Default 3000. */
  readCalls?: number;
  /** Concurrent connections for the status reads. Default 4. */
  readClients?: number;
  /** How many times every measurement is repeated, alternating with those it is compared to. Default 3. */
  rounds?: number;
  /**
   * The pgbench binary, or null to measure with the Node driver only. Default: the
   * first `pgbench` on PATH, if any.
   */
  pgbench?: string | null;
}

/** One timed write run: one statement, one driver. */
export interface WriteRun {
  statement: 'single' | 'batched';
  driver: 'node-pg' | 'pgbench';
  clients: number;
  seconds: number;
  statements: number;
  statementsPerSecond: number;
  /** Heartbeats (rows written) per second: statements/s x rows per statement. */
  rowsPerSecond: number;
  /** Mean time of the upsert statement itself, in ms. */
  latencyAvgMs: number;
  /** WAL written per heartbeat (server-wide, so anything else running on the server adds to it). */
  walBytesPerRow: number;
  /** Full-page images per heartbeat: the first change to a page after a checkpoint logs the whole 8 kB page. */
  fullPageImagesPerRow: number;
  /** Share of the pages of pulse and its index that were found in shared_buffers. */
  bufferHitRatio: number;
}

/** The pulse table's footprint at one moment. */
export interface SizeSample {
  label: string;
  rows: number;
  heapBytes: number;
  indexBytes: number;
  totalBytes: number;
  /** Share of the updates since the previous sample that were HOT; null without updates. */
  hotRatio: number | null;
}

/** Status reads at one table size, in one round. */
export interface StatusReads {
  p50Ms: number;
  p99Ms: number;
  avgMs: number;
  /** Share of the pages the reads (warm-up included) needed that were in shared_buffers. */
  bufferHitRatio: number;
}

/** Status reads and batched heartbeats at one table size: every round, and their medians. */
export interface GrowthPoint {
  rows: number;
  reads: StatusReads[];
  heartbeats: WriteRun[];
  median: {
    readP50Ms: number;
    readP99Ms: number;
    readAvgMs: number;
    readBufferHitRatio: number;
    heartbeatsPerSecond: number;
    heartbeatLatencyAvgMs: number;
    walBytesPerHeartbeat: number;
    fullPageImagesPerHeartbeat: number;
    heartbeatBufferHitRatio: number;
  };
}

/** One (statement, driver) pair of the write ceilings: every round, and their medians. */
export interface WriteCeiling {
  statement: WriteRun['statement'];
  driver: WriteRun['driver'];
  runs: WriteRun[];
  median: Omit<WriteRun, 'statement' | 'driver' | 'clients'>;
}

export interface DatabaseBenchResult {
  startedAt: string;
  durationSeconds: number;
  server: { version: string; sharedBuffers: string; synchronousCommit: string };
  machine: { cores: number; cpu: string; node: string };
  settings: Required<Omit<DatabaseBenchOptions, 'url' | 'progress' | 'pgbench'>> & { pgbench: string | null; batchSize: number; idsPerRead: number };
  writeCeilings: { rows: number; ceilings: WriteCeiling[] };
  sizes: SizeSample[];
  growth: { small: GrowthPoint; large: GrowthPoint };
}

/** Rows per batched upsert, as Pulse's heartbeat batcher sends them. */
export const BATCH_SIZE = 1000;
/** Ids per status read: a screenful of users. */
export const IDS_PER_READ = 100;
/** The estimate of the original designs, which counted only the two columns' data. */
export const DESIGN_BYTES_PER_ROW = 8;
/** Status latency at the large size may be at most this many times that at the small size. */
export const STATUS_GROWTH_TARGET = 1.2;

// The statements Pulse sends, word for word (Citus-compatible): now() goes in the
// inserted row and `excluded.last_hb` copies it, because Citus refuses
// non-immutable functions in ON CONFLICT DO UPDATE SET.
export const SINGLE_UPSERT =
  'insert into pulse (user_id, last_hb) values ($1, now()) on conflict (user_id) do update set last_hb = excluded.last_hb';
// `order by id`: concurrent batches lock their rows in one global order, so two
// batches that share users wait for each other instead of deadlocking.
export const BATCHED_UPSERT =
  'insert into pulse (user_id, last_hb) select id, now() from unnest($1::bigint[]) as t(id) order by id on conflict (user_id) do update set last_hb = excluded.last_hb';

/**
 * Runs the whole database bench; see the file's header for what it measures.
 *
 * The machine is usually shared and its speed drifts over minutes, so nothing is
 * compared across a long gap: the runs to be compared alternate, `rounds` times,
 * and the medians are reported. For the same reason the two table sizes live in
 * two databases, side by side, rather than one table grown between measurements.
 */
export async function runDatabaseBench(options: DatabaseBenchOptions): Promise<DatabaseBenchResult> {
  const settings = {
    rowsSmall: options.rowsSmall ?? 1_000_000,
    rowsLarge: options.rowsLarge ?? 10_000_000,
    seconds: options.seconds ?? 10,
    clients: options.clients ?? 8,
    readCalls: options.readCalls ?? 3000,
    readClients: options.readClients ?? 4,
    rounds: options.rounds ?? 3,
    pgbench: options.pgbench === undefined ? findOnPath('pgbench') : options.pgbench,
    batchSize: BATCH_SIZE,
    idsPerRead: IDS_PER_READ,
  };
  if (settings.rowsSmall < 10 * BATCH_SIZE) throw new Error(`rowsSmall must be at least ${10 * BATCH_SIZE}, got ${settings.rowsSmall}`);
  if (settings.rowsLarge <= settings.rowsSmall) throw new Error(`rowsLarge must be more than rowsSmall (${settings.rowsSmall}), got ${settings.rowsLarge}`);
  const { progress } = options;
  const started = Date.now();

  const small = await createBenchDatabase(options.url, 'small');
  const large = await createBenchDatabase(options.url, 'large').catch(async (error: unknown) => {
    await small.drop();
    throw error;
  });
  progress(`databases ${small.name} and ${large.name} created; applying Pulse's migrations`);
  const smallAdmin = new pg.Client({ connectionString: small.url, application_name: 'pulse-bench' });
  const largeAdmin = new pg.Client({ connectionString: large.url, application_name: 'pulse-bench' });
  try {
    await migrate(small.url);
    await migrate(large.url);
    await smallAdmin.connect();
    await largeAdmin.connect();
    const server = await serverInfo(smallAdmin);
    progress(`server: ${server.version}, shared_buffers ${server.sharedBuffers}, synchronous_commit ${server.synchronousCommit}`);

    const sizes: SizeSample[] = [];
    const smallStats = new TableStats(smallAdmin);
    await loadRows(smallAdmin, settings.rowsSmall, progress);
    sizes.push(await smallStats.sample(`${count(settings.rowsSmall)} rows, loaded, after VACUUM ANALYZE`, settings.rowsSmall));
    progress(`churn: one batched heartbeat for each of the ${count(settings.rowsSmall)} rows`);
    await heartbeatRound(small.url, settings.rowsSmall, settings.clients);
    sizes.push(await smallStats.sample(`${count(settings.rowsSmall)} rows, after one heartbeat per row`, settings.rowsSmall));
    // Measurements start right after a VACUUM at both sizes, so an autovacuum woken
    // by the churn does not run under one of them only.
    await smallAdmin.query('vacuum analyze pulse');

    await loadRows(largeAdmin, settings.rowsLarge, progress);
    sizes.push(await new TableStats(largeAdmin).sample(`${count(settings.rowsLarge)} rows, loaded, after VACUUM ANALYZE`, settings.rowsLarge));

    const pairs: Array<[WriteRun['statement'], WriteRun['driver']]> = [
      ['single', 'node-pg'],
      ['batched', 'node-pg'],
      ...(settings.pgbench ? [['single', 'pgbench'] as [WriteRun['statement'], WriteRun['driver']], ['batched', 'pgbench'] as [WriteRun['statement'], WriteRun['driver']]] : []),
    ];
    const ceilingRuns = pairs.map((): WriteRun[] => []);
    const reads = { small: [] as StatusReads[], large: [] as StatusReads[] };
    const heartbeats = { small: [] as WriteRun[], large: [] as WriteRun[] };
    for (let round = 1; round <= settings.rounds; round++) {
      progress(`round ${round}/${settings.rounds}`);
      // Every round starts from vacuumed tables, so the dead rows the previous
      // round's writes left (and an autovacuum they would wake) weigh on no size
      // more than on the other; the size measured first alternates; the write
      // ceilings, which churn the small table hardest, come last.
      await smallAdmin.query('vacuum pulse');
      await largeAdmin.query('vacuum pulse');
      const sizesInOrder = [
        ['small', small, smallAdmin, settings.rowsSmall],
        ['large', large, largeAdmin, settings.rowsLarge],
      ] as const;
      const order = round % 2 === 1 ? sizesInOrder : ([...sizesInOrder].reverse() as typeof sizesInOrder[number][]);
      for (const [size, db, admin, rows] of order) {
        const result = await statusReads(db.url, admin, rows, settings.readCalls, settings.readClients);
        reads[size].push(result);
        progress(`  status reads at ${count(rows)}: p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms, ${pct(result.bufferHitRatio)} of pages in shared_buffers`);
      }
      for (const [size, db, admin, rows] of order) {
        const run = await withWal(admin, () => nodeWriteRun(db.url, 'batched', rows, settings.clients, settings.seconds));
        heartbeats[size].push(run);
        progress(`  batched heartbeats at ${count(rows)}: ${n(run.rowsPerSecond)} heartbeats/s, ${pct(run.bufferHitRatio)} of pages in shared_buffers`);
      }
      for (const [index, [statement, driver]] of pairs.entries()) {
        const run = await withWal(smallAdmin, () =>
          driver === 'pgbench'
            ? pgbenchWriteRun(settings.pgbench!, small.url, statement, settings.rowsSmall, settings.clients, settings.seconds)
            : nodeWriteRun(small.url, statement, settings.rowsSmall, settings.clients, settings.seconds),
        );
        ceilingRuns[index]!.push(run);
        progress(`  write ceiling at ${count(settings.rowsSmall)}, ${statement} upsert, ${driver}: ${n(run.statementsPerSecond)} statements/s, ${n(run.rowsPerSecond)} heartbeats/s`);
      }
    }

    return {
      startedAt: new Date(started).toISOString(),
      durationSeconds: (Date.now() - started) / 1000,
      server,
      machine: { cores: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', node: process.version },
      settings,
      writeCeilings: { rows: settings.rowsSmall, ceilings: pairs.map(([statement, driver], i) => writeCeiling(statement, driver, ceilingRuns[i]!)) },
      sizes,
      growth: { small: growthPoint(settings.rowsSmall, reads.small, heartbeats.small), large: growthPoint(settings.rowsLarge, reads.large, heartbeats.large) },
    };
  } finally {
    await smallAdmin.end().catch(() => {});
    await largeAdmin.end().catch(() => {});
    await small.drop();
    await large.drop();
    progress(`databases ${small.name} and ${large.name} dropped`);
  }
}

/** The result as markdown: a few lines of context, then one table per measurement. */
export function databaseBenchMarkdown(result: DatabaseBenchResult): string {
  const { settings, writeCeilings, sizes, growth } = result;
  const ms = (value: number) => value.toFixed(2);
  const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
  const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : 'n/a');
  const range = (values: number[], format: (value: number) => string) => `${format(Math.min(...values))} – ${format(Math.max(...values))}`;
  const S = count(growth.small.rows);
  const L = count(growth.large.rows);
  const gs = growth.small.median;
  const gl = growth.large.median;
  const lines: string[] = [
    `# Database bench: ${S} and ${L} rows`,
    '',
    `${result.startedAt}, ${Math.round(result.durationSeconds)} s. Server: ${result.server.version} (shared_buffers ${result.server.sharedBuffers}, ` +
      `synchronous_commit ${result.server.synchronousCommit}). Client: Node ${result.machine.node}, ${result.machine.cores} cores (${result.machine.cpu}), ` +
      `client and server on the same machine over loopback. Every figure is the median of ${settings.rounds} rounds (each column its own median); ` +
      `the runs compared alternate within each round. Compare figures within this run only.`,
    '',
    `## Write ceilings at ${count(writeCeilings.rows)} rows`,
    '',
    `${settings.clients} clients in a closed loop for ${settings.seconds} s per run. Single: one heartbeat per statement, a random existing user. ` +
      `Batched: ${BATCH_SIZE} heartbeats per statement, ids spread evenly over the table from a random offset, sorted. ` +
      `Both drivers send the statements unprepared over the extended protocol, as pg does for Pulse; ` +
      `pgbench builds each batch's array with one extra small query, not counted in its latency. ` +
      `WAL and shared_buffers figures are server-wide and per heartbeat.`,
    '',
    '| statement | driver | statements/s | heartbeats/s | heartbeats/s, all rounds | latency avg ms | WAL bytes/heartbeat | full-page images/heartbeat | pages in shared_buffers |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
    ...writeCeilings.ceilings.map(
      ({ statement, driver, runs, median: m }) =>
        `| ${statement} | ${driver} | ${n(m.statementsPerSecond)} | ${n(m.rowsPerSecond)} | ${range(runs.map((r) => r.rowsPerSecond), n)} | ${ms(m.latencyAvgMs)} | ` +
        `${m.walBytesPerRow.toFixed(0)} | ${m.fullPageImagesPerRow.toFixed(3)} | ${pct(m.bufferHitRatio)} |`,
    ),
    '',
    '| driver | batched / single, heartbeats/s |',
    '|---|---:|',
    ...(['node-pg', 'pgbench'] as const).flatMap((driver) => {
      const single = writeCeilings.ceilings.find((c) => c.driver === driver && c.statement === 'single');
      const batched = writeCeilings.ceilings.find((c) => c.driver === driver && c.statement === 'batched');
      return single && batched ? [`| ${driver} | ${ratio(batched.median.rowsPerSecond, single.median.rowsPerSecond)} |`] : [];
    }),
    ...(settings.pgbench ? [] : ['', 'pgbench was not found on PATH: the Node driver alone measured these.']),
    '',
    '## Size per row',
    '',
    `Heap is the table (fillfactor 70), index its primary key, total includes both (and the free space map). ` +
      `The designs estimated ${DESIGN_BYTES_PER_ROW} bytes per row. HOT: share of the updates since the previous line that were heap-only.`,
    '',
    '| state | heap MB | index MB | total MB | bytes/row (total) | bytes/row (heap) | x estimate | HOT |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...sizes.map(
      (s) =>
        `| ${s.label} | ${mb(s.heapBytes)} | ${mb(s.indexBytes)} | ${mb(s.totalBytes)} | ${(s.totalBytes / s.rows).toFixed(1)} | ` +
        `${(s.heapBytes / s.rows).toFixed(1)} | ${(s.totalBytes / s.rows / DESIGN_BYTES_PER_ROW).toFixed(1)} | ${s.hotRatio === null ? '-' : pct(s.hotRatio)} |`,
    ),
    '',
    '## Growth with the table',
    '',
    `Two databases side by side, ${S} rows (after one heartbeat per row) and ${L} rows (freshly loaded), measured alternately. ` +
      `Status: Pulse's status read (findStatusRows, anonymous viewer), ${IDS_PER_READ} random existing ids per call, ${n(settings.readCalls)} calls from ${settings.readClients} clients per round ` +
      `(after a tenth as many to warm up). Heartbeats: ${BATCH_SIZE}-row batched upserts, ${settings.clients} clients for ${settings.seconds} s per round.`,
    '',
    `| measure | ${S} rows | ${L} rows | ratio ${L}/${S} |`,
    '|---|---:|---:|---:|',
    `| status p50 ms | ${ms(gs.readP50Ms)} | ${ms(gl.readP50Ms)} | ${ratio(gl.readP50Ms, gs.readP50Ms)} |`,
    `| status p99 ms | ${ms(gs.readP99Ms)} | ${ms(gl.readP99Ms)} | ${ratio(gl.readP99Ms, gs.readP99Ms)} |`,
    `| status avg ms | ${ms(gs.readAvgMs)} | ${ms(gl.readAvgMs)} | ${ratio(gl.readAvgMs, gs.readAvgMs)} |`,
    `| status: pages in shared_buffers | ${pct(gs.readBufferHitRatio)} | ${pct(gl.readBufferHitRatio)} | |`,
    `| batched heartbeats/s | ${n(gs.heartbeatsPerSecond)} | ${n(gl.heartbeatsPerSecond)} | ${ratio(gl.heartbeatsPerSecond, gs.heartbeatsPerSecond)} |`,
    `| batched upsert latency avg ms | ${ms(gs.heartbeatLatencyAvgMs)} | ${ms(gl.heartbeatLatencyAvgMs)} | ${ratio(gl.heartbeatLatencyAvgMs, gs.heartbeatLatencyAvgMs)} |`,
    `| batched: WAL bytes/heartbeat | ${gs.walBytesPerHeartbeat.toFixed(0)} | ${gl.walBytesPerHeartbeat.toFixed(0)} | ${ratio(gl.walBytesPerHeartbeat, gs.walBytesPerHeartbeat)} |`,
    `| batched: full-page images/heartbeat | ${gs.fullPageImagesPerHeartbeat.toFixed(3)} | ${gl.fullPageImagesPerHeartbeat.toFixed(3)} | |`,
    `| batched: pages in shared_buffers | ${pct(gs.heartbeatBufferHitRatio)} | ${pct(gl.heartbeatBufferHitRatio)} | |`,
    '',
    statusVerdict(growth),
    '',
    `shared_buffers holds ${result.server.sharedBuffers}: pages outside it come from the OS cache, at a cost per page. A full-page image (8 kB of WAL) is ` +
      `written the first time a page changes after a checkpoint: a ${settings.seconds} s run over a large table touches mostly such pages, ` +
      `while a steady load that revisits every page within a checkpoint interval pays it once per page and interval.`,
    '',
    `Per round (${S} / ${L}):`,
    '',
    '| round | status p50 ms | status p99 ms | batched heartbeats/s |',
    '|---:|---:|---:|---:|',
    ...growth.small.reads.map((small, i) => {
      const large = growth.large.reads[i]!;
      return (
        `| ${i + 1} | ${ms(small.p50Ms)} / ${ms(large.p50Ms)} | ${ms(small.p99Ms)} / ${ms(large.p99Ms)} | ` +
        `${n(growth.small.heartbeats[i]!.rowsPerSecond)} / ${n(growth.large.heartbeats[i]!.rowsPerSecond)} |`
      );
    }),
    '',
  ];
  return lines.join('\n');
}

// Private: the target line under the growth table.
function statusVerdict(growth: DatabaseBenchResult['growth']): string {
  const p50 = growth.large.median.readP50Ms / growth.small.median.readP50Ms;
  const p99 = growth.large.median.readP99Ms / growth.small.median.readP99Ms;
  const met = (value: number) => (value <= STATUS_GROWTH_TARGET ? 'met' : 'not met');
  return (
    `Target: status latency at ${count(growth.large.rows)} rows within ${STATUS_GROWTH_TARGET}x of ${count(growth.small.rows)}: ` +
    `p50 ${p50.toFixed(2)}x (${met(p50)}), p99 ${p99.toFixed(2)}x (${met(p99)}).`
  );
}

function writeCeiling(statement: WriteRun['statement'], driver: WriteRun['driver'], runs: WriteRun[]): WriteCeiling {
  const m = (pick: (run: WriteRun) => number) => median(runs.map(pick));
  return {
    statement,
    driver,
    runs,
    median: {
      seconds: m((r) => r.seconds),
      statements: m((r) => r.statements),
      statementsPerSecond: m((r) => r.statementsPerSecond),
      rowsPerSecond: m((r) => r.rowsPerSecond),
      latencyAvgMs: m((r) => r.latencyAvgMs),
      walBytesPerRow: m((r) => r.walBytesPerRow),
      fullPageImagesPerRow: m((r) => r.fullPageImagesPerRow),
      bufferHitRatio: m((r) => r.bufferHitRatio),
    },
  };
}

function growthPoint(rows: number, reads: StatusReads[], heartbeats: WriteRun[]): GrowthPoint {
  return {
    rows,
    reads,
    heartbeats,
    median: {
      readP50Ms: median(reads.map((r) => r.p50Ms)),
      readP99Ms: median(reads.map((r) => r.p99Ms)),
      readAvgMs: median(reads.map((r) => r.avgMs)),
      readBufferHitRatio: median(reads.map((r) => r.bufferHitRatio)),
      heartbeatsPerSecond: median(heartbeats.map((r) => r.rowsPerSecond)),
      heartbeatLatencyAvgMs: median(heartbeats.map((r) => r.latencyAvgMs)),
      walBytesPerHeartbeat: median(heartbeats.map((r) => r.walBytesPerRow)),
      fullPageImagesPerHeartbeat: median(heartbeats.map((r) => r.fullPageImagesPerRow)),
      heartbeatBufferHitRatio: median(heartbeats.map((r) => r.bufferHitRatio)),
    },
  };
}

// ---------------------------------------------------------------------------
// The bench database

async function createBenchDatabase(url: string, suffix: string): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `pulse_bench_${process.pid}_${crypto.randomBytes(3).toString('hex')}_${suffix}`;
  const onAdmin = async (work: (client: pg.Client) => Promise<unknown>) => {
    const client = new pg.Client({ connectionString: url, application_name: 'pulse-bench' });
    await client.connect();
    try {
      await work(client);
    } finally {
      await client.end();
    }
  };
  await onAdmin((c) => c.query(`create database ${c.escapeIdentifier(name)}`));
  const benchUrl = new URL(url);
  benchUrl.pathname = `/${name}`;
  return {
    name,
    url: benchUrl.toString(),
    drop: () => onAdmin((c) => c.query(`drop database if exists ${c.escapeIdentifier(name)} with (force)`)),
  };
}

async function migrate(url: string): Promise<void> {
  const db = createDatabase({ url, poolMax: 1, connectionTimeoutMs: 10_000, statementTimeoutMs: 60_000, logger: silentLogger });
  try {
    await migrateToLatest(db, silentLogger);
  } finally {
    await db.destroy();
  }
}

async function serverInfo(client: pg.Client): Promise<DatabaseBenchResult['server']> {
  const { rows } = await client.query<{ version: string; shared_buffers: string; synchronous_commit: string }>(
    `select split_part(version(), ' on ', 1) as version, current_setting('shared_buffers') as shared_buffers,
            current_setting('synchronous_commit') as synchronous_commit`,
  );
  const row = rows[0]!;
  return { version: row.version, sharedBuffers: row.shared_buffers, synchronousCommit: row.synchronous_commit };
}

/**
 * Adds users 1 to `to`, in statements of a million rows (so progress shows
 * and no one transaction grows with the table), then VACUUM ANALYZE: the visibility
 * map and hint bits are set and the planner knows the size, as on a table that has
 * lived for a while, so the first reads measured do not pay for the load.
 */
async function loadRows(client: pg.Client, to: number, progress: (line: string) => void): Promise<void> {
  const started = Date.now();
  for (let low = 0; low < to; low += 1_000_000) {
    const high = Math.min(to, low + 1_000_000);
    await client.query('insert into pulse (user_id, last_hb) select g, now() from generate_series($1::bigint, $2::bigint) as g', [low + 1, high]);
    progress(`  loaded ${count(high)} / ${count(to)} rows`);
  }
  await client.query('vacuum analyze pulse');
  progress(`loaded ${count(to)} rows and vacuumed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

/** Samples the table's size, and the HOT share of the updates since the last sample. */
class TableStats {
  #client: pg.Client;
  #updates = 0;
  #hotUpdates = 0;

  constructor(client: pg.Client) {
    this.#client = client;
  }

  async sample(label: string, rows: number): Promise<SizeSample> {
    // Other sessions report their statistics at most once a second; the write
    // clients have disconnected by now, which flushes theirs.
    await sleep(1500);
    await this.#client.query('select pg_stat_clear_snapshot()');
    const { rows: result } = await this.#client.query<Record<string, string>>(
      `select pg_relation_size('pulse') as heap, pg_indexes_size('pulse') as index, pg_total_relation_size('pulse') as total,
              coalesce(n_tup_upd, 0) as updates, coalesce(n_tup_hot_upd, 0) as hot
         from pg_stat_user_tables where relname = 'pulse'`,
    );
    const row = result[0]!;
    const updates = Number(row.updates) - this.#updates;
    const hot = Number(row.hot) - this.#hotUpdates;
    this.#updates = Number(row.updates);
    this.#hotUpdates = Number(row.hot);
    return {
      label,
      rows,
      heapBytes: Number(row.heap),
      indexBytes: Number(row.index),
      totalBytes: Number(row.total),
      hotRatio: updates > 0 ? hot / updates : null,
    };
  }
}

// ---------------------------------------------------------------------------
// Measurements

/**
 * Status reads through findStatusRows itself, so the statement measured is the one
 * Pulse sends, over a pool of `clients` connections closed at the end (which makes
 * the sessions report their statistics). A tenth as many unmeasured calls first
 * warm the connections and the caches the same way at every size.
 */
async function statusReads(url: string, admin: pg.Client, rows: number, calls: number, clients: number): Promise<StatusReads> {
  const before = await bufferCounts(admin);
  const db = createDatabase({ url, poolMax: clients, connectionTimeoutMs: 10_000, statementTimeoutMs: 60_000, logger: silentLogger });
  let latencies: { p50: number; p99: number; avg: number };
  try {
    latencies = await measureReads(db, rows, calls, clients);
  } finally {
    await db.destroy();
  }
  return { p50Ms: latencies.p50, p99Ms: latencies.p99, avgMs: latencies.avg, bufferHitRatio: hitRatio(before, await bufferCounts(admin)) };
}

async function measureReads(db: Database, rows: number, calls: number, clients: number): Promise<{ p50: number; p99: number; avg: number }> {
  const read = () => findStatusRows(db, [...new Set(randomIds(rows, IDS_PER_READ))], null, 30);
  const run = async (total: number) => {
    const latencies: number[] = [];
    let issued = 0;
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (issued < total) {
          issued++;
          const started = performance.now();
          await read();
          latencies.push(performance.now() - started);
        }
      }),
    );
    return latencies;
  };
  await run(Math.ceil(calls / 10));
  const latencies = (await run(calls)).sort((a, b) => a - b);
  return {
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    avg: latencies.reduce((sum, value) => sum + value, 0) / latencies.length,
  };
}

/**
 * `clients` connections, each sending the upsert again as soon as the previous one
 * committed (a closed loop), until `seconds` have passed.
 */
async function nodeWriteRun(url: string, statement: 'single' | 'batched', rows: number, clients: number, seconds: number): Promise<WalFreeRun> {
  const connections = await Promise.all(
    Array.from({ length: clients }, async () => {
      const client = new pg.Client({ connectionString: url, application_name: 'pulse-bench' });
      await client.connect();
      return client;
    }),
  );
  let statements = 0;
  let busyMs = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  try {
    await Promise.all(
      connections.map(async (client) => {
        while (performance.now() < deadline) {
          const parameter = statement === 'single' ? String(randomInt(rows) + 1) : spreadBatch(rows, BATCH_SIZE);
          const sent = performance.now();
          await client.query(statement === 'single' ? SINGLE_UPSERT : BATCHED_UPSERT, [parameter]);
          busyMs += performance.now() - sent;
          statements++;
        }
      }),
    );
  } finally {
    await Promise.all(connections.map((c) => c.end()));
  }
  const elapsed = (performance.now() - started) / 1000;
  const perStatement = statement === 'single' ? 1 : BATCH_SIZE;
  return {
    statement,
    driver: 'node-pg',
    clients,
    seconds: elapsed,
    statements,
    statementsPerSecond: statements / elapsed,
    rowsPerSecond: (statements * perStatement) / elapsed,
    latencyAvgMs: busyMs / statements,
  };
}

/**
 * The same run with pgbench: a C client that costs less CPU per statement than
 * Node, so on a small machine it leaves more to the server. Both drivers use the
 * extended protocol without prepared statements, which is what pg does for Pulse.
 */
async function pgbenchWriteRun(
  binary: string,
  url: string,
  statement: 'single' | 'batched',
  rows: number,
  clients: number,
  seconds: number,
): Promise<WalFreeRun> {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-pgbench-'));
  // pgbench's variables are numbers or text, so the batch's id array is built by
  // a small query whose result \gset stores in :ids; the upsert then receives it as
  // its one parameter, exactly as Pulse sends it.
  const script =
    statement === 'single'
      ? ['\\set id random(1, :rows)', `${SINGLE_UPSERT.replace('$1', ':id')};`]
      : [
          '\\set offset random(1, :stride)',
          `select array_agg(g) as ids from generate_series(:offset::bigint, :offset::bigint + ${BATCH_SIZE - 1}::bigint * :stride, :stride) as g \\gset`,
          `${BATCHED_UPSERT.replace('$1', ':ids')};`,
        ];
  const file = path.join(folder, `${statement}.sql`);
  fs.writeFileSync(file, `${script.join('\n')}\n`);
  try {
    const args = ['-n', '-M', 'extended', '-r', '-c', String(clients), '-j', String(Math.min(clients, os.cpus().length)), '-T', String(seconds)];
    args.push('-D', `rows=${rows}`, '-D', `stride=${Math.floor(rows / BATCH_SIZE)}`, '-f', file, url);
    const output = await runProcess(binary, args);
    const tps = matchNumber(output, /^tps = ([\d.]+)/m);
    const processed = matchNumber(output, /number of transactions actually processed: (\d+)/);
    // -r prints each statement's mean latency; the upsert's line is the one to report.
    const upsertLine = output.split('\n').find((line) => /^\s+[\d.]+\s+\d+\s+insert into pulse/.test(line));
    if (!upsertLine) throw new Error(`pgbench printed no latency for the upsert:\n${output}`);
    const perStatement = statement === 'single' ? 1 : BATCH_SIZE;
    return {
      statement,
      driver: 'pgbench',
      clients,
      seconds,
      statements: processed,
      statementsPerSecond: tps,
      rowsPerSecond: tps * perStatement,
      latencyAvgMs: Number(upsertLine.trim().split(/\s+/)[0]),
    };
  } finally {
    fs.rmSync(folder, { recursive: true, force: true });
  }
}

/**
 * Churn: one heartbeat for every user, in batched upserts of random users as the
 * heartbeat batcher sends them (a shuffled order cut into batches), so each page
 * is updated a few rows at a time and old versions can be pruned in between,
 * which is what fillfactor 70 reserves room for.
 */
async function heartbeatRound(url: string, rows: number, clients: number): Promise<void> {
  const order = new Float64Array(rows);
  for (let i = 0; i < rows; i++) order[i] = i + 1;
  for (let i = rows - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  let next = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      const client = new pg.Client({ connectionString: url, application_name: 'pulse-bench' });
      await client.connect();
      try {
        while (next < rows) {
          const batch = Array.from(order.subarray(next, next + BATCH_SIZE)).sort((a, b) => a - b);
          next += BATCH_SIZE;
          await client.query(BATCHED_UPSERT, [batch.map(String)]);
        }
      } finally {
        await client.end();
      }
    }),
  );
}

type WalFreeRun = Omit<WriteRun, 'walBytesPerRow' | 'fullPageImagesPerRow' | 'bufferHitRatio'>;

/**
 * Runs `run` and adds what it cost the server: WAL per heartbeat (every commit
 * flushes it, and a full-page image is 8 kB for a change of a few dozen bytes) and
 * how many of the pages it touched were already in shared_buffers.
 */
async function withWal(admin: pg.Client, run: () => Promise<WalFreeRun>): Promise<WriteRun> {
  const [wal, buffers] = [await walCounts(admin), await bufferCounts(admin, false)];
  const result = await run();
  const [walAfter, buffersAfter] = [await walCounts(admin), await bufferCounts(admin, false)];
  const rows = result.statements * (result.statement === 'single' ? 1 : BATCH_SIZE);
  return {
    ...result,
    walBytesPerRow: (walAfter.bytes - wal.bytes) / rows,
    fullPageImagesPerRow: (walAfter.fullPageImages - wal.fullPageImages) / rows,
    bufferHitRatio: hitRatio(buffers, buffersAfter),
  };
}

function hitRatio(before: { hits: number; reads: number }, after: { hits: number; reads: number }): number {
  const hits = after.hits - before.hits;
  return hits / (hits + after.reads - before.reads);
}

// Private: the server's WAL position (exact) and its count of full-page images
// (reported by each session when it ends, or at most a second later, hence the pause).
async function walCounts(admin: pg.Client): Promise<{ bytes: number; fullPageImages: number }> {
  await sleep(1500);
  await admin.query('select pg_stat_clear_snapshot()');
  const { rows } = await admin.query<{ bytes: string; fpi: string }>(
    `select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') as bytes, (select wal_fpi from pg_stat_wal) as fpi`,
  );
  return { bytes: Number(rows[0]!.bytes), fullPageImages: Number(rows[0]!.fpi) };
}

// Private: pages of pulse and its index found in shared_buffers, and read from
// outside them (the OS cache or the disk), so far.
async function bufferCounts(admin: pg.Client, pause = true): Promise<{ hits: number; reads: number }> {
  if (pause) await sleep(1500);
  await admin.query('select pg_stat_clear_snapshot()');
  const { rows } = await admin.query<{ hits: string; reads: string }>(
    `select coalesce(heap_blks_hit, 0) + coalesce(idx_blks_hit, 0) as hits, coalesce(heap_blks_read, 0) + coalesce(idx_blks_read, 0) as reads
       from pg_statio_user_tables where relname = 'pulse'`,
  );
  return { hits: Number(rows[0]!.hits), reads: Number(rows[0]!.reads) };
}

// ---------------------------------------------------------------------------
// Private helpers

/**
 * A batch's ids: `size` users spread evenly over 1..rows from a random offset,
 * ascending. Distinct (an upsert may not touch a row twice) and each on a page of
 * its own, the widest spread a batch of random users can have.
 */
function spreadBatch(rows: number, size: number): string[] {
  const stride = Math.floor(rows / size);
  const offset = randomInt(stride) + 1;
  return Array.from({ length: size }, (_, k) => String(offset + k * stride));
}

/** `size` random existing ids (repeats allowed, as a real screen may show one user twice). */
function randomIds(rows: number, size: number): UserId[] {
  return Array.from({ length: size }, () => String(randomInt(rows) + 1) as UserId);
}

function randomInt(below: number): number {
  return Math.floor(Math.random() * below);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

function n(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

function pct(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}

function count(rows: number): string {
  if (rows >= 1_000_000 && rows % 100_000 === 0) return `${rows / 1_000_000}M`;
  if (rows >= 1000 && rows % 100 === 0) return `${rows / 1000}k`;
  return String(rows);
}

function findOnPath(binary: string): string | null {
  for (const folder of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(folder, binary);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      /* not here */
    }
  }
  return null;
}

function runProcess(binary: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = '';
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(output) : reject(new Error(`${path.basename(binary)} exited with ${code}:\n${output}`))));
  });
}

function matchNumber(output: string, pattern: RegExp): number {
  const match = pattern.exec(output);
  if (!match) throw new Error(`Expected ${pattern} in pgbench's output:\n${output}`);
  return Number(match[1]);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
