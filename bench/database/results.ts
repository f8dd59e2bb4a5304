/**
 * What the database bench (run.ts) measures and returns: its options, one type
 * per measurement, and the fixed shape of its statements. report.ts turns a
 * {@link DatabaseBenchResult} into markdown; database-cli.ts writes both.
 */

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

/**
 * The write statements the bench compares (statements.ts has their text):
 *  - `single`: the Day-0 upsert, one heartbeat per statement;
 *  - `floor`: a bare batched upsert over unnest, the cheapest a batch can be
 *    written, which Pulse's statement is measured against;
 *  - `pulse`: Pulse's own batched heartbeat statement, sent by recordHeartbeats.
 */
export type WriteStatement = 'single' | 'floor' | 'pulse';

/** One timed write run: one statement, one driver. */
export interface WriteRun {
  statement: WriteStatement;
  driver: 'node-pg' | 'pgbench';
  clients: number;
  seconds: number;
  statements: number;
  statementsPerSecond: number;
  /** Heartbeats (rows written) per second: statements/s x rows per statement. */
  rowsPerSecond: number;
  /** Mean time of the statement itself, in ms. */
  latencyAvgMs: number;
  /** WAL written per heartbeat (server-wide, so anything else running on the server adds to it). */
  walBytesPerRow: number;
  /** Full-page images per heartbeat: the first change to a page after a checkpoint logs the whole 8 kB page. */
  fullPageImagesPerRow: number;
  /** Share of the pages of pulse and its index that were found in shared_buffers. */
  bufferHitRatio: number;
}

/** A write run before the server's side of it (WAL, buffers) is added. */
export type WalFreeRun = Omit<WriteRun, 'walBytesPerRow' | 'fullPageImagesPerRow' | 'bufferHitRatio'>;

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

/** Status reads and Pulse's batched heartbeats at one table size: every round, and their medians. */
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
  statement: WriteStatement;
  driver: WriteRun['driver'];
  runs: WriteRun[];
  median: Omit<WriteRun, 'statement' | 'driver' | 'clients'>;
}

export interface ServerInfo {
  version: string;
  sharedBuffers: string;
  synchronousCommit: string;
}

export interface DatabaseBenchResult {
  startedAt: string;
  durationSeconds: number;
  server: ServerInfo;
  machine: { cores: number; cpu: string; node: string };
  settings: Required<Omit<DatabaseBenchOptions, 'url' | 'progress' | 'pgbench'>> & { pgbench: string | null; batchSize: number; idsPerRead: number };
  writeCeilings: { rows: number; ceilings: WriteCeiling[] };
  sizes: SizeSample[];
  growth: { small: GrowthPoint; large: GrowthPoint };
}

/** Rows per batched statement: the most Pulse's heartbeat batcher puts in one (HEARTBEAT_BATCH_MAX's default). */
export const BATCH_SIZE = 1000;
/** Ids per status read: a screenful of users. */
export const IDS_PER_READ = 100;
/** The estimate of the original designs, which counted only the two columns' data. */
export const DESIGN_BYTES_PER_ROW = 8;
/** Status latency at the large size may be at most this many times that at the small size. */
export const STATUS_GROWTH_TARGET = 1.2;

/** Heartbeats one statement of `statement` writes. */
export function rowsPerStatement(statement: WriteStatement): number {
  return statement === 'single' ? 1 : BATCH_SIZE;
}
