/**
 * The sustained mode of the database bench (`npm run bench:db -- --sustained`):
 * heartbeats at a fixed rate, for minutes, through Pulse's own batched statement,
 * over a table of a fixed number of users; what the table and the server do,
 * minute by minute. The database side of "1M users online": 100k heartbeats/s
 * over 1M rows is every user once every 10 s.
 *
 * The driver is Pulse's write path without HTTP: heartbeats arrive in an open
 * loop (on a schedule, whether or not earlier ones are answered), each is
 * submitted to Pulse's HeartbeatBatcher with Pulse's default settings (adaptive
 * group commit, at most HEARTBEAT_BATCH_MAX users a statement, HEARTBEAT_BATCH_MAX_IN_FLIGHT
 * statements at once), whose write calls recordHeartbeats as PresenceService's
 * does. So the batches are exactly those the batcher makes at that rate. Every
 * user sends one heartbeat a cycle (rows / rate seconds), each at its own
 * place in the cycle, as clients that started at random moments do.
 *
 * The open loop never queues without bound: while a second's worth of arrivals
 * is already waiting for a statement, new arrivals are dropped and counted, so a
 * rate the server cannot take shows as achieved < offered in the report.
 */
import os from 'node:os';
import type pg from 'pg';
import { HeartbeatBatcher } from '../../src/presence/heartbeat-batcher';
import type { UserId } from '../../src/presence/user-id';
import { migrateDatabase } from '../../test/support/scratch-postgres';
import { benchScratchDatabase, percentile } from '../support';
import { count, n, pct } from './format';
import { benchClient, benchPool } from './node-driver';
import type { ServerInfo } from './results';
import { pulseTableCounters, serverInfo, type PulseTableCounters } from './server-stats';
import { pulseDefaults, writePulseBatch, type PulseStatementSettings } from './statements';
import { loadRows, shuffledUsers } from './user-ids';

export interface SustainedOptions {
  /** A PostgreSQL the bench may create a database on; it is dropped at the end. */
  url: string;
  progress: (line: string) => void;
  /** How long heartbeats are sent, in minutes (a fraction ends with a short last interval). */
  minutes: number;
  /** Heartbeats offered per second. */
  rate: number;
  /** Users, each with a row in pulse before the clock starts. */
  rows: number;
  /** PRESENCE_* and HEARTBEAT_* settings, as for Pulse itself; Pulse's defaults otherwise. */
  env?: NodeJS.ProcessEnv;
}

/** One interval (a minute, or the run's shorter last part) of a sustained run. */
export interface SustainedInterval {
  /** End of the interval, in seconds since the clock started. */
  endSeconds: number;
  seconds: number;
  /** Heartbeats the schedule offered, and those dropped because a second's worth was already waiting. */
  offered: number;
  dropped: number;
  /** Heartbeats the statements that finished in this interval wrote, or skipped inside the write gap. */
  written: number;
  skipped: number;
  statements: number;
  failedStatements: number;
  statementP50Ms: number;
  statementP99Ms: number;
  /** The pulse table and its index at the end of the interval. */
  heapBytes: number;
  indexBytes: number;
  updates: number;
  hotUpdates: number;
  inserts: number;
  /** Dead row versions at the end of the interval (n_dead_tup, an estimate). */
  deadTuples: number;
  autovacuums: number;
  walBytes: number;
  fullPageImages: number;
  /** CPU the bench's own process used (the driver and Pulse's batcher), as a share of one core. */
  driverCpuShare: number;
}

export interface SustainedResult {
  mode: 'sustained';
  startedAt: string;
  durationSeconds: number;
  server: ServerInfo;
  machine: { cores: number; cpu: string; node: string };
  settings: {
    minutes: number;
    rate: number;
    rows: number;
    /** Seconds between two heartbeats of one user: rows / rate. */
    cycleSeconds: number;
    batchMax: number;
    batchesInFlight: number;
    /** Arrivals waiting beyond which new ones are dropped. */
    backlogLimit: number;
    statement: PulseStatementSettings;
  };
  /** The table right after loading and VACUUM ANALYZE, before the clock started. */
  loaded: { heapBytes: number; indexBytes: number };
  intervals: SustainedInterval[];
}

/** Runs the sustained mode; see the file's header. */
export async function runSustained(options: SustainedOptions): Promise<SustainedResult> {
  const { progress, rate, rows, minutes } = options;
  if (!(rate > 0) || !(rows > 0) || !(minutes > 0)) throw new Error(`rate, rows and minutes must be positive, got ${rate}, ${rows} and ${minutes}`);
  const defaults = pulseDefaults(options.env);
  const statement: PulseStatementSettings = { thresholdSeconds: defaults.thresholdSeconds, minWriteGapSeconds: defaults.minWriteGapSeconds, notifyChannel: defaults.notifyChannel };
  const settings: SustainedResult['settings'] = {
    minutes,
    rate,
    rows,
    cycleSeconds: rows / rate,
    batchMax: defaults.batchMax,
    batchesInFlight: defaults.batchesInFlight,
    backlogLimit: Math.max(rate, defaults.batchMax),
    statement,
  };
  const started = Date.now();
  const database = await benchScratchDatabase(options.url, 'pulse_bench_sustained');
  const admin = benchClient(database.url);
  try {
    await migrateDatabase(database.url);
    await admin.connect();
    const server = await serverInfo(admin);
    progress(`server: ${server.version}, shared_buffers ${server.sharedBuffers}, synchronous_commit ${server.synchronousCommit}`);
    await loadRows(admin, rows, progress);
    const atLoad = await pulseTableCounters(admin);
    progress(
      `sustained: ${n(rate)} heartbeats/s over ${count(rows)} users (each every ${settings.cycleSeconds.toFixed(1)} s) for ${minutes} min, ` +
        `through recordHeartbeats and the heartbeat batcher (at most ${settings.batchMax} users a statement, ${settings.batchesInFlight} statements at once, ` +
        `threshold ${statement.thresholdSeconds} s, write gap ${statement.minWriteGapSeconds} s, NOTIFY on ${statement.notifyChannel})`,
    );
    const intervals = await drive(database.url, settings, admin, atLoad, progress);
    return {
      mode: 'sustained',
      startedAt: new Date(started).toISOString(),
      durationSeconds: (Date.now() - started) / 1000,
      server,
      machine: { cores: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', node: process.version },
      settings,
      loaded: { heapBytes: atLoad.heapBytes, indexBytes: atLoad.indexBytes },
      intervals,
    };
  } finally {
    await admin.end().catch(() => {});
    await database.drop();
    progress(`database ${database.name} dropped`);
  }
}

// Private: what the statements did since the last interval ended.
interface StatementTally {
  latencies: number[];
  written: number;
  skipped: number;
  failed: number;
}

// Private: the open loop and the per-interval samples.
async function drive(
  url: string,
  settings: SustainedResult['settings'],
  admin: pg.Client,
  atLoad: PulseTableCounters,
  progress: (line: string) => void,
): Promise<SustainedInterval[]> {
  const db = benchPool(url, settings.batchesInFlight);
  let tally: StatementTally = { latencies: [], written: 0, skipped: 0, failed: 0 };
  const batcher = new HeartbeatBatcher<true>({
    windowMs: 0,
    maxSize: settings.batchMax,
    maxInFlight: settings.batchesInFlight,
    write: async (userIds) => {
      const sent = performance.now();
      const counted = tally;
      try {
        const outcome = await writePulseBatch(db, userIds, settings.statement);
        counted.latencies.push(performance.now() - sent);
        counted.skipped += outcome.skipped.length;
        counted.written += userIds.length - outcome.skipped.length - outcome.missing.length;
      } catch (error) {
        counted.failed++;
        throw error;
      }
      // The driver waits for nothing but the commit: every user gets the same answer.
      return new Map(userIds.map((id) => [id, true as const]));
    },
  });
  const users = shuffledUsers(settings.rows);
  const ignore = () => {};
  let cursor = 0;
  let offered = 0;
  let dropped = 0;

  const intervals: SustainedInterval[] = [];
  let previous = atLoad;
  let cpu = process.cpuUsage();
  let offeredBefore = 0;
  let droppedBefore = 0;
  const start = performance.now();
  const totalMs = settings.minutes * 60_000;
  let intervalStart = start;

  const sample = async (): Promise<void> => {
    const now = performance.now();
    const finished = tally;
    tally = { latencies: [], written: 0, skipped: 0, failed: 0 };
    const counters = await pulseTableCounters(admin);
    const cpuUsed = process.cpuUsage(cpu);
    cpu = process.cpuUsage();
    const seconds = (now - intervalStart) / 1000;
    const interval: SustainedInterval = {
      endSeconds: (now - start) / 1000,
      seconds,
      offered: offered - offeredBefore,
      dropped: dropped - droppedBefore,
      written: finished.written,
      skipped: finished.skipped,
      statements: finished.latencies.length + finished.failed,
      failedStatements: finished.failed,
      statementP50Ms: percentile(finished.latencies, 0.5),
      statementP99Ms: percentile(finished.latencies, 0.99),
      heapBytes: counters.heapBytes,
      indexBytes: counters.indexBytes,
      updates: counters.updates - previous.updates,
      hotUpdates: counters.hotUpdates - previous.hotUpdates,
      inserts: counters.inserts - previous.inserts,
      deadTuples: counters.deadTuples,
      autovacuums: counters.autovacuums - previous.autovacuums,
      walBytes: counters.walBytes - previous.walBytes,
      fullPageImages: counters.fullPageImages - previous.fullPageImages,
      driverCpuShare: (cpuUsed.user + cpuUsed.system) / 1000 / (now - intervalStart),
    };
    intervals.push(interval);
    previous = counters;
    offeredBefore = offered;
    droppedBefore = dropped;
    intervalStart = now;
    progress(
      `  ${interval.endSeconds.toFixed(0)} s: ${n(interval.written / seconds)} of ${n(interval.offered / seconds)} heartbeats/s written, ` +
        `${n(interval.dropped)} dropped, ${n(interval.statements / seconds)} statements/s, p99 ${interval.statementP99Ms.toFixed(1)} ms, ` +
        `HOT ${interval.updates > 0 ? pct(interval.hotUpdates / interval.updates) : '-'}, ${n(interval.deadTuples)} dead, ` +
        `${((interval.heapBytes + interval.indexBytes) / 2 ** 20).toFixed(1)} MB, WAL ${interval.written > 0 ? n(interval.walBytes / interval.written) : '-'} B/heartbeat`,
    );
  };

  try {
    await new Promise<void>((resolve, reject) => {
      let sampling: Promise<void> = Promise.resolve();
      let nextSampleMs = 60_000;
      // Every few milliseconds, offer the heartbeats that have fallen due since
      // the last tick (a late tick offers more: the schedule, not the tick, sets the rate).
      const timer = setInterval(() => {
        const elapsed = Math.min(performance.now() - start, totalMs);
        const due = Math.floor((elapsed * settings.rate) / 1000);
        for (; offered < due; offered++) {
          const user = users[cursor]!;
          cursor = (cursor + 1) % users.length;
          if (batcher.pending >= settings.backlogLimit) dropped++;
          else batcher.submit(String(user) as UserId).catch(ignore);
        }
        if (elapsed >= nextSampleMs || elapsed >= totalMs) {
          nextSampleMs += 60_000;
          sampling = sampling.then(sample);
        }
        if (elapsed >= totalMs) {
          clearInterval(timer);
          sampling.then(resolve, reject);
        }
      }, 5);
    });
  } finally {
    // Heartbeats offered are written before the pool closes: the run ends as Pulse stops.
    await batcher.flush().catch(() => {});
    await db.destroy();
  }
  return intervals;
}
