/**
 * The database half of Pulse's benchmark: what PostgreSQL itself can do with the
 * pulse table, with no HTTP, GraphQL or batching window in the way.
 *
 *  1. Write ceilings: the single-row upsert, the bare batched upsert (the floor)
 *     and Pulse's own batched heartbeat statement (recordHeartbeats, 1000 users a
 *     statement, as the heartbeat batcher sends it), side by side, measured by a
 *     Node closed loop (always) and, for the bare upserts, by pgbench (when it is
 *     installed). The Node driver runs everywhere Pulse runs (the embedded
 *     PostgreSQL ships no pgbench), so every machine reports the same rows;
 *     pgbench, a C client, shows whether Node's own CPU limited them.
 *  2. Size per row: the table and its primary key at the small size, freshly loaded
 *     and after one heartbeat for every row (churn), and at the large size.
 *  3. Growth: status read latency and Pulse's batched heartbeat throughput at the
 *     small and the large size, with the ratio large/small.
 *
 * Everything runs in two databases of its own (one per size), created on the server
 * named by `url`, migrated with Pulse's migrations and dropped at the end (or when
 * the bench is interrupted), so nothing else on that server is touched. Figures
 * are only comparable within one run: compare the ratios. sustained.ts is the
 * other mode: one statement at a fixed rate for minutes.
 *
 *   const result = await runDatabaseBench({ url, progress: console.log });
 *   fs.writeFileSync('database.md', databaseBenchMarkdown(result));
 */
import os from 'node:os';
import { migrateDatabase } from '../../test/support/scratch-postgres';
import { benchScratchDatabase, median } from '../support';
import { count, n, pct } from './format';
import { benchClient, heartbeatRound, nodeWriteRun, statusReads } from './node-driver';
import { findOnPath, pgbenchWriteRun } from './pgbench-driver';
import {
  BATCH_SIZE,
  IDS_PER_READ,
  type DatabaseBenchOptions,
  type DatabaseBenchResult,
  type GrowthPoint,
  type SizeSample,
  type StatusReads,
  type WriteCeiling,
  type WriteRun,
} from './results';
import { serverInfo, TableStats, withWal } from './server-stats';
import { loadRows } from './user-ids';

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

  const small = await benchScratchDatabase(options.url, 'pulse_bench_small');
  const large = await benchScratchDatabase(options.url, 'pulse_bench_large').catch(async (error: unknown) => {
    await small.drop();
    throw error;
  });
  progress(`databases ${small.name} and ${large.name} created; applying Pulse's migrations`);
  const smallAdmin = benchClient(small.url);
  const largeAdmin = benchClient(large.url);
  try {
    await migrateDatabase(small.url);
    await migrateDatabase(large.url);
    await smallAdmin.connect();
    await largeAdmin.connect();
    const server = await serverInfo(smallAdmin);
    progress(`server: ${server.version}, shared_buffers ${server.sharedBuffers}, synchronous_commit ${server.synchronousCommit}`);

    const sizes: SizeSample[] = [];
    const smallStats = new TableStats(smallAdmin);
    await loadRows(smallAdmin, settings.rowsSmall, progress);
    sizes.push(await smallStats.sample(`${count(settings.rowsSmall)} rows, loaded, after VACUUM ANALYZE`, settings.rowsSmall));
    progress(`churn: one heartbeat through Pulse's statement for each of the ${count(settings.rowsSmall)} rows`);
    await heartbeatRound(small.url, settings.rowsSmall, settings.clients);
    sizes.push(await smallStats.sample(`${count(settings.rowsSmall)} rows, after one heartbeat per row`, settings.rowsSmall));
    // Measurements start right after a VACUUM at both sizes, so an autovacuum woken
    // by the churn does not run under one of them only.
    await smallAdmin.query('vacuum analyze pulse');

    await loadRows(largeAdmin, settings.rowsLarge, progress);
    sizes.push(await new TableStats(largeAdmin).sample(`${count(settings.rowsLarge)} rows, loaded, after VACUUM ANALYZE`, settings.rowsLarge));

    const pairs: Array<Pick<WriteRun, 'statement' | 'driver'>> = [
      { statement: 'single', driver: 'node-pg' },
      { statement: 'floor', driver: 'node-pg' },
      { statement: 'pulse', driver: 'node-pg' },
      ...(settings.pgbench
        ? ([
            { statement: 'single', driver: 'pgbench' },
            { statement: 'floor', driver: 'pgbench' },
          ] as const)
        : []),
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
      const order = round % 2 === 1 ? sizesInOrder : ([...sizesInOrder].reverse() as (typeof sizesInOrder)[number][]);
      for (const [size, db, admin, rows] of order) {
        const result = await statusReads(db.url, admin, rows, settings.readCalls, settings.readClients);
        reads[size].push(result);
        progress(`  status reads at ${count(rows)}: p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms, ${pct(result.bufferHitRatio)} of pages in shared_buffers`);
      }
      for (const [size, db, admin, rows] of order) {
        const run = await withWal(admin, () => nodeWriteRun(db.url, 'pulse', rows, settings.clients, settings.seconds));
        heartbeats[size].push(run);
        progress(`  Pulse's batched heartbeats at ${count(rows)}: ${n(run.rowsPerSecond)} heartbeats/s, ${pct(run.bufferHitRatio)} of pages in shared_buffers`);
      }
      for (const [index, { statement, driver }] of pairs.entries()) {
        const run = await withWal(smallAdmin, () =>
          driver === 'pgbench' && statement !== 'pulse'
            ? pgbenchWriteRun(settings.pgbench!, small.url, statement, settings.rowsSmall, settings.clients, settings.seconds)
            : nodeWriteRun(small.url, statement, settings.rowsSmall, settings.clients, settings.seconds),
        );
        ceilingRuns[index]!.push(run);
        progress(`  write ceiling at ${count(settings.rowsSmall)}, ${statement} statement, ${driver}: ${n(run.statementsPerSecond)} statements/s, ${n(run.rowsPerSecond)} heartbeats/s`);
      }
    }

    return {
      startedAt: new Date(started).toISOString(),
      durationSeconds: (Date.now() - started) / 1000,
      server,
      machine: { cores: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', node: process.version },
      settings,
      writeCeilings: { rows: settings.rowsSmall, ceilings: pairs.map(({ statement, driver }, i) => writeCeiling(statement, driver, ceilingRuns[i]!)) },
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

// Private: a (statement, driver) pair's runs and their medians.
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

// Private: one size's rounds and their medians.
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
