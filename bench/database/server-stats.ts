/**
 * What the server says about the bench's work: its settings, the pulse table's
 * size and update counters, the WAL written and the pages found in
 * shared_buffers. Read over the bench's admin connection.
 *
 * PostgreSQL's cumulative statistics are reported by each session at most once a
 * second (and when it ends), and a transaction sees them as of its first read
 * unless it clears its snapshot: hence the pauses and pg_stat_clear_snapshot().
 */
import type pg from 'pg';
import { sleep } from '../support';
import type { ServerInfo, SizeSample, WalFreeRun, WriteRun } from './results';
import { rowsPerStatement } from './results';

/** How long a session may keep its statistics before reporting them, and a margin. */
export const STATS_DELAY_MS = 1500;

export async function serverInfo(client: pg.Client): Promise<ServerInfo> {
  const { rows } = await client.query<{ version: string; shared_buffers: string; synchronous_commit: string }>(
    `select split_part(version(), ' on ', 1) as version, current_setting('shared_buffers') as shared_buffers,
            current_setting('synchronous_commit') as synchronous_commit`,
  );
  const row = rows[0]!;
  return { version: row.version, sharedBuffers: row.shared_buffers, synchronousCommit: row.synchronous_commit };
}

/** The pulse table's counters and the server's WAL position at one moment. */
export interface PulseTableCounters {
  heapBytes: number;
  indexBytes: number;
  totalBytes: number;
  /** Rows updated so far (n_tup_upd), of which HOT (n_tup_hot_upd). */
  updates: number;
  hotUpdates: number;
  /** Rows inserted so far (a heartbeat of a user never seen). */
  inserts: number;
  deadTuples: number;
  liveTuples: number;
  autovacuums: number;
  /** The WAL position (pg_current_wal_lsn) as a byte count, and full-page images so far. */
  walBytes: number;
  fullPageImages: number;
}

/**
 * Reads the counters now, without waiting for sessions to report: callers that
 * compare two readings over minutes accept that each is up to a second behind.
 */
export async function pulseTableCounters(admin: pg.Client): Promise<PulseTableCounters> {
  await admin.query('select pg_stat_clear_snapshot()');
  const { rows } = await admin.query<Record<string, string>>(
    `select pg_relation_size('pulse') as heap, pg_indexes_size('pulse') as index, pg_total_relation_size('pulse') as total,
            coalesce(n_tup_upd, 0) as updates, coalesce(n_tup_hot_upd, 0) as hot, coalesce(n_tup_ins, 0) as inserts,
            coalesce(n_dead_tup, 0) as dead, coalesce(n_live_tup, 0) as live, coalesce(autovacuum_count, 0) as autovacuums,
            pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') as wal, (select wal_fpi from pg_stat_wal) as fpi
       from pg_stat_user_tables where relname = 'pulse'`,
  );
  const row = rows[0]!;
  return {
    heapBytes: Number(row.heap),
    indexBytes: Number(row.index),
    totalBytes: Number(row.total),
    updates: Number(row.updates),
    hotUpdates: Number(row.hot),
    inserts: Number(row.inserts),
    deadTuples: Number(row.dead),
    liveTuples: Number(row.live),
    autovacuums: Number(row.autovacuums),
    walBytes: Number(row.wal),
    fullPageImages: Number(row.fpi),
  };
}

/** Samples the table's size, and the HOT share of the updates since the last sample. */
export class TableStats {
  #client: pg.Client;
  #updates = 0;
  #hotUpdates = 0;

  constructor(client: pg.Client) {
    this.#client = client;
  }

  async sample(label: string, rows: number): Promise<SizeSample> {
    // The write clients have disconnected by now, which flushes their statistics.
    await sleep(STATS_DELAY_MS);
    const now = await pulseTableCounters(this.#client);
    const updates = now.updates - this.#updates;
    const hot = now.hotUpdates - this.#hotUpdates;
    this.#updates = now.updates;
    this.#hotUpdates = now.hotUpdates;
    return {
      label,
      rows,
      heapBytes: now.heapBytes,
      indexBytes: now.indexBytes,
      totalBytes: now.totalBytes,
      hotRatio: updates > 0 ? hot / updates : null,
    };
  }
}

/**
 * Runs `run` and adds what it cost the server: WAL per heartbeat (every commit
 * flushes it, and a full-page image is 8 kB for a change of a few dozen bytes) and
 * how many of the pages it touched were already in shared_buffers.
 */
export async function withWal(admin: pg.Client, run: () => Promise<WalFreeRun>): Promise<WriteRun> {
  const [wal, buffers] = [await walCounts(admin), await bufferCounts(admin, false)];
  const result = await run();
  const [walAfter, buffersAfter] = [await walCounts(admin), await bufferCounts(admin, false)];
  const rows = result.statements * rowsPerStatement(result.statement);
  return {
    ...result,
    walBytesPerRow: (walAfter.bytes - wal.bytes) / rows,
    fullPageImagesPerRow: (walAfter.fullPageImages - wal.fullPageImages) / rows,
    bufferHitRatio: hitRatio(buffers, buffersAfter),
  };
}

/** Share of the page requests between two {@link bufferCounts} that shared_buffers served. */
export function hitRatio(before: { hits: number; reads: number }, after: { hits: number; reads: number }): number {
  const hits = after.hits - before.hits;
  return hits / (hits + after.reads - before.reads);
}

/**
 * Pages of pulse and its index found in shared_buffers, and read from outside
 * them (the OS cache or the disk), so far; after the statistics delay unless
 * `pause` is false.
 */
export async function bufferCounts(admin: pg.Client, pause = true): Promise<{ hits: number; reads: number }> {
  if (pause) await sleep(STATS_DELAY_MS);
  await admin.query('select pg_stat_clear_snapshot()');
  const { rows } = await admin.query<{ hits: string; reads: string }>(
    `select coalesce(heap_blks_hit, 0) + coalesce(idx_blks_hit, 0) as hits, coalesce(heap_blks_read, 0) + coalesce(idx_blks_read, 0) as reads
       from pg_statio_user_tables where relname = 'pulse'`,
  );
  return { hits: Number(rows[0]!.hits), reads: Number(rows[0]!.reads) };
}

// Private: the server's WAL position (exact) and its count of full-page images
// (reported by each session when it ends, or at most a second later, hence the pause).
async function walCounts(admin: pg.Client): Promise<{ bytes: number; fullPageImages: number }> {
  await sleep(STATS_DELAY_MS);
  await admin.query('select pg_stat_clear_snapshot()');
  const { rows } = await admin.query<{ bytes: string; fpi: string }>(
    `select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') as bytes, (select wal_fpi from pg_stat_wal) as fpi`,
  );
  return { bytes: Number(rows[0]!.bytes), fullPageImages: Number(rows[0]!.fpi) };
}
