/**
 * The database half of Pulse's benchmark: what PostgreSQL itself can do with the
 * pulse table, with no HTTP, GraphQL or batching window in the way.
 *
 *  1. Write ceilings: the single-row heartbeat upsert against the 1000-row batched
 *     upsert, side by side, measured by a Node closed loop (always) and by pgbench
 *     (when it is installed).
 *  2. Size per row: the table and its primary key at the small size, freshly loaded
 *     and after one heartbeat for every row (churn), and at the large size.
 *  3. Growth: status read latency and batched heartbeat throughput at the small and
 *     the large size, with the ratio large/small.
 *
 * Everything runs in a database of its own, created on the server named by `url`,
 * migrated with Pulse's migrations and dropped at the end, so nothing else on that
 * server is touched. Figures are only comparable within one run: compare the ratios.
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
import { findPulses } from '../src/presence/pulse-repository';
import type { UserId } from '../src/presence/user-id';

export interface DatabaseBenchOptions {
  /**
   * A PostgreSQL the bench may create a database on (`postgres://user@host/db`);
   * the bench database is created next to the one named, then dropped.
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
  /** Status reads measured at each growth point. Default 4000. */
  readCalls?: number;
  /** Concurrent connections for the status reads. Default 4. */
  readClients?: number;
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

/** Status reads and batched heartbeats at one table size. */
export interface GrowthPoint {
  rows: number;
  readCalls: number;
  readClients: number;
  readP50Ms: number;
  readP99Ms: number;
  readAvgMs: number;
  heartbeats: WriteRun;
}

export interface DatabaseBenchResult {
  startedAt: string;
  durationSeconds: number;
  server: { version: string; sharedBuffers: string; synchronousCommit: string };
  machine: { cores: number; cpu: string; node: string };
  settings: Required<Omit<DatabaseBenchOptions, 'url' | 'progress' | 'pgbench'>> & { pgbench: string | null; batchSize: number; idsPerRead: number };
  writeCeilings: { rows: number; runs: WriteRun[] };
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

/** Runs the whole database bench; see the file's header for what it measures. */
export async function runDatabaseBench(options: DatabaseBenchOptions): Promise<DatabaseBenchResult> {
  const settings = {
    rowsSmall: options.rowsSmall ?? 1_000_000,
    rowsLarge: options.rowsLarge ?? 10_000_000,
    seconds: options.seconds ?? 10,
    clients: options.clients ?? 8,
    readCalls: options.readCalls ?? 4000,
    readClients: options.readClients ?? 4,
    pgbench: options.pgbench === undefined ? findOnPath('pgbench') : options.pgbench,
    batchSize: BATCH_SIZE,
    idsPerRead: IDS_PER_READ,
  };
  if (settings.rowsSmall < 10 * BATCH_SIZE) throw new Error(`rowsSmall must be at least ${10 * BATCH_SIZE}, got ${settings.rowsSmall}`);
  if (settings.rowsLarge <= settings.rowsSmall) throw new Error(`rowsLarge must be more than rowsSmall (${settings.rowsSmall}), got ${settings.rowsLarge}`);
  const { progress } = options;
  const started = Date.now();

  const bench = await createBenchDatabase(options.url);
  progress(`database ${bench.name} created; applying Pulse's migrations`);
  // The Kysely instance the status reads go through, so they send exactly what
  // findPulses sends; its pool is sized for the read clients.
  const db = createDatabase({ url: bench.url, poolMax: settings.readClients, connectionTimeoutMs: 10_000, statementTimeoutMs: 120_000, logger: silentLogger });
  const admin = new pg.Client({ connectionString: bench.url, application_name: 'pulse-bench' });
  try {
    await migrateToLatest(db, silentLogger);
    await admin.connect();
    const server = await serverInfo(admin);
    progress(`server: ${server.version}, shared_buffers ${server.sharedBuffers}, synchronous_commit ${server.synchronousCommit}`);

    const sizes: SizeSample[] = [];
    const stats = new TableStats(admin);

    await loadRows(admin, 0, settings.rowsSmall, progress);
    sizes.push(await stats.sample(`${count(settings.rowsSmall)} rows, loaded, after VACUUM ANALYZE`, settings.rowsSmall));

    progress(`churn: one batched heartbeat for each of the ${count(settings.rowsSmall)} rows`);
    await heartbeatRound(bench.url, settings.rowsSmall, settings.clients);
    sizes.push(await stats.sample(`${count(settings.rowsSmall)} rows, after one heartbeat per row`, settings.rowsSmall));
    // Both growth points are measured right after a VACUUM, so an autovacuum woken
    // by the churn does not run under one of them only.
    await admin.query('vacuum analyze pulse');

    const small = await growthPoint(bench.url, db, settings.rowsSmall, settings, progress);

    const runs: WriteRun[] = [];
    for (const statement of ['single', 'batched'] as const) {
      progress(`write ceiling, ${statement} upsert, node-pg: ${settings.clients} clients for ${settings.seconds} s`);
      runs.push(await nodeWriteRun(bench.url, statement, settings.rowsSmall, settings.clients, settings.seconds));
      if (settings.pgbench) {
        progress(`write ceiling, ${statement} upsert, pgbench: ${settings.clients} clients for ${settings.seconds} s`);
        runs.push(await pgbenchWriteRun(settings.pgbench, bench.url, statement, settings.rowsSmall, settings.clients, settings.seconds));
      }
    }
    for (const run of runs) progress(`  ${run.statement} ${run.driver}: ${run.statementsPerSecond.toFixed(0)} statements/s, ${run.rowsPerSecond.toFixed(0)} heartbeats/s`);
    await stats.sample('(after the write ceilings)', settings.rowsSmall);

    await loadRows(admin, settings.rowsSmall, settings.rowsLarge, progress);
    sizes.push(await stats.sample(`${count(settings.rowsLarge)} rows, loaded, after VACUUM ANALYZE`, settings.rowsLarge));
    const large = await growthPoint(bench.url, db, settings.rowsLarge, settings, progress);

    return {
      startedAt: new Date(started).toISOString(),
      durationSeconds: (Date.now() - started) / 1000,
      server,
      machine: { cores: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', node: process.version },
      settings,
      writeCeilings: { rows: settings.rowsSmall, runs },
      sizes,
      growth: { small, large },
    };
  } finally {
    await admin.end().catch(() => {});
    await db.destroy().catch(() => {});
    await bench.drop();
    progress(`database ${bench.name} dropped`);
  }
}

/** The result as markdown: a few lines of context, then one table per measurement. */
export function databaseBenchMarkdown(result: DatabaseBenchResult): string {
  const { settings, writeCeilings, sizes, growth } = result;
  const ms = (value: number) => value.toFixed(2);
  const n = (value: number) => Math.round(value).toLocaleString('en-US');
  const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
  const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : 'n/a');
  const lines: string[] = [
    `# Database bench: ${count(settings.rowsSmall)} and ${count(settings.rowsLarge)} rows`,
    '',
    `${result.startedAt}, ${Math.round(result.durationSeconds)} s. Server: ${result.server.version} (shared_buffers ${result.server.sharedBuffers}, ` +
      `synchronous_commit ${result.server.synchronousCommit}). Client: Node ${result.machine.node}, ${result.machine.cores} cores (${result.machine.cpu}), ` +
      `client and server on the same machine over loopback. Compare figures within this run only.`,
    '',
    `## Write ceilings at ${count(writeCeilings.rows)} rows`,
    '',
    `${settings.clients} clients in a closed loop for ${settings.seconds} s per run. Single: one heartbeat per statement, a random existing user. ` +
      `Batched: ${BATCH_SIZE} heartbeats per statement, ids spread evenly over the table from a random offset, sorted. ` +
      `Both drivers send the statements unprepared over the extended protocol, as pg does for Pulse. ` +
      `pgbench builds each batch's array with one extra small query (not counted in the latency below).`,
    '',
    '| statement | driver | statements/s | heartbeats/s | latency avg ms |',
    '|---|---|---:|---:|---:|',
    ...writeCeilings.runs.map((r) => `| ${r.statement} | ${r.driver} | ${n(r.statementsPerSecond)} | ${n(r.rowsPerSecond)} | ${ms(r.latencyAvgMs)} |`),
    '',
    '| driver | batched / single, heartbeats/s |',
    '|---|---:|',
    ...(['node-pg', 'pgbench'] as const).flatMap((driver) => {
      const single = writeCeilings.runs.find((r) => r.driver === driver && r.statement === 'single');
      const batched = writeCeilings.runs.find((r) => r.driver === driver && r.statement === 'batched');
      return single && batched ? [`| ${driver} | ${ratio(batched.rowsPerSecond, single.rowsPerSecond)} |`] : [];
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
        `${(s.heapBytes / s.rows).toFixed(1)} | ${(s.totalBytes / s.rows / DESIGN_BYTES_PER_ROW).toFixed(1)} | ${s.hotRatio === null ? '-' : `${(s.hotRatio * 100).toFixed(1)}%`} |`,
    ),
    '',
    '## Growth with the table',
    '',
    `Status: the statement of findPulses (${IDS_PER_READ} random existing ids per call), ${n(settings.readCalls)} calls from ${settings.readClients} clients. ` +
      `Heartbeats: ${BATCH_SIZE}-row batched upserts, ${settings.clients} clients for ${settings.seconds} s. ` +
      `At ${count(growth.small.rows)} rows every row has had one heartbeat since the load; at ${count(growth.large.rows)}, the rows added since are freshly loaded.`,
    '',
    `| measure | ${count(growth.small.rows)} rows | ${count(growth.large.rows)} rows | ratio |`,
    '|---|---:|---:|---:|',
    `| status p50 ms | ${ms(growth.small.readP50Ms)} | ${ms(growth.large.readP50Ms)} | ${ratio(growth.large.readP50Ms, growth.small.readP50Ms)} |`,
    `| status p99 ms | ${ms(growth.small.readP99Ms)} | ${ms(growth.large.readP99Ms)} | ${ratio(growth.large.readP99Ms, growth.small.readP99Ms)} |`,
    `| status avg ms | ${ms(growth.small.readAvgMs)} | ${ms(growth.large.readAvgMs)} | ${ratio(growth.large.readAvgMs, growth.small.readAvgMs)} |`,
    `| batched heartbeats/s | ${n(growth.small.heartbeats.rowsPerSecond)} | ${n(growth.large.heartbeats.rowsPerSecond)} | ${ratio(growth.large.heartbeats.rowsPerSecond, growth.small.heartbeats.rowsPerSecond)} |`,
    `| batched upsert latency avg ms | ${ms(growth.small.heartbeats.latencyAvgMs)} | ${ms(growth.large.heartbeats.latencyAvgMs)} | ${ratio(growth.large.heartbeats.latencyAvgMs, growth.small.heartbeats.latencyAvgMs)} |`,
    '',
    statusVerdict(growth),
    '',
  ];
  return lines.join('\n');
}

// Private: the target line under the growth table.
function statusVerdict(growth: DatabaseBenchResult['growth']): string {
  const p50 = growth.large.readP50Ms / growth.small.readP50Ms;
  const p99 = growth.large.readP99Ms / growth.small.readP99Ms;
  const met = (value: number) => (value <= STATUS_GROWTH_TARGET ? 'met' : 'not met');
  return `Target: status latency at ${count(growth.large.rows)} rows within ${STATUS_GROWTH_TARGET}x of ${count(growth.small.rows)}: p50 ${p50.toFixed(2)}x (${met(p50)}), p99 ${p99.toFixed(2)}x (${met(p99)}).`;
}

// ---------------------------------------------------------------------------
// The bench database

async function createBenchDatabase(url: string): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `pulse_bench_${process.pid}_${crypto.randomBytes(3).toString('hex')}`;
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

async function serverInfo(client: pg.Client): Promise<DatabaseBenchResult['server']> {
  const { rows } = await client.query<{ version: string; shared_buffers: string; synchronous_commit: string }>(
    `select split_part(version(), ' on ', 1) as version, current_setting('shared_buffers') as shared_buffers,
            current_setting('synchronous_commit') as synchronous_commit`,
  );
  const row = rows[0]!;
  return { version: row.version, sharedBuffers: row.shared_buffers, synchronousCommit: row.synchronous_commit };
}

/**
 * Adds users `from + 1` to `to`, in statements of a million rows (so progress shows
 * and no one transaction grows with the table), then VACUUM ANALYZE: the visibility
 * map and hint bits are set and the planner knows the size, as on a table that has
 * lived for a while, so the first reads measured do not pay for the load.
 */
async function loadRows(client: pg.Client, from: number, to: number, progress: (line: string) => void): Promise<void> {
  const started = Date.now();
  for (let low = from; low < to; low += 1_000_000) {
    const high = Math.min(to, low + 1_000_000);
    await client.query('insert into pulse (user_id, last_hb) select g, now() from generate_series($1::bigint, $2::bigint) as g', [low + 1, high]);
    progress(`  loaded ${count(high)} / ${count(to)} rows`);
  }
  await client.query('vacuum analyze pulse');
  progress(`loaded ${count(to - from)} rows and vacuumed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
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

async function growthPoint(
  url: string,
  db: Database,
  rows: number,
  settings: { readCalls: number; readClients: number; clients: number; seconds: number },
  progress: (line: string) => void,
): Promise<GrowthPoint> {
  progress(`status reads at ${count(rows)} rows: ${count(settings.readCalls)} calls of ${IDS_PER_READ} ids from ${settings.readClients} clients`);
  const reads = await statusReads(db, rows, settings.readCalls, settings.readClients);
  progress(`  p50 ${reads.p50.toFixed(2)} ms, p99 ${reads.p99.toFixed(2)} ms`);
  progress(`batched heartbeats at ${count(rows)} rows: ${settings.clients} clients for ${settings.seconds} s`);
  const heartbeats = await nodeWriteRun(url, 'batched', rows, settings.clients, settings.seconds);
  progress(`  ${heartbeats.rowsPerSecond.toFixed(0)} heartbeats/s`);
  return {
    rows,
    readCalls: settings.readCalls,
    readClients: settings.readClients,
    readP50Ms: reads.p50,
    readP99Ms: reads.p99,
    readAvgMs: reads.avg,
    heartbeats,
  };
}

/**
 * Status reads through findPulses itself, so the statement measured is the one
 * Pulse sends. A tenth as many unmeasured calls first warm the connections and
 * the caches the same way at every size.
 */
async function statusReads(db: Database, rows: number, calls: number, clients: number): Promise<{ p50: number; p99: number; avg: number }> {
  const read = () => findPulses(db, randomIds(rows, IDS_PER_READ), 30);
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
async function nodeWriteRun(url: string, statement: 'single' | 'batched', rows: number, clients: number, seconds: number): Promise<WriteRun> {
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
): Promise<WriteRun> {
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

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
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
