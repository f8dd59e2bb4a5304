/**
 * Read replicas: which database a status read goes to.
 *
 * Status reads are most of what Pulse answers, and they can be served by
 * streaming standbys of the primary (READ_DATABASE_URL). Writes, and every answer
 * that must show the caller's own write, stay on the primary; the services
 * decide which is which and hand the reads that may go elsewhere to
 * {@link ReadReplicas.read}.
 *
 * A replica is used only while it is in good standing:
 *  1. It answers. One that refuses connections, or fails under a read, is
 *     skipped (logged, counted) until a check reaches it again.
 *  2. It is a standby (`pg_is_in_recovery()`). A promoted replica no longer
 *     follows this primary, so it would serve a frozen past.
 *  3. It is at most `maxLagSeconds` behind. A lagging replica shows users who
 *     are online as offline (their newest heartbeat has not reached it), so it
 *     is skipped until it catches up.
 * Lag is measured every `checkIntervalMs`: a replica that has replayed
 * everything the primary had inserted into its WAL when the check began is 0 s behind (an
 * idle primary writes nothing new, and `now() - pg_last_xact_replay_timestamp()`
 * alone would grow forever there); otherwise it is
 * `now() - pg_last_xact_replay_timestamp()`, the age of the newest transaction
 * it has applied.
 *
 * No read fails because a replica did: a read that fails on a replica with a
 * connection-class error, or is cancelled by a recovery conflict, is run again on
 * the primary. With no replica in good standing, reads go to the primary.
 */
import { sql } from 'kysely';
import type pg from 'pg';
import { toPulseError } from '../errors';
import type { Logger } from '../logger';
import { createDatabase, createPool, type Database } from './database';

/** Where reads were sent: a replica; the primary (no replica usable); the primary after a replica failed under the read. */
export type ReadRoute = 'replica' | 'primary' | 'fallback';

/** Why a replica is or is not serving reads. */
export type ReplicaState = 'starting' | 'serving' | 'lagging' | 'down' | 'not-standby';

export interface ReplicaHealth {
  /** host:port/database, as in logs and metric labels (no credentials). */
  readonly name: string;
  readonly state: ReplicaState;
  /** Seconds behind the primary at the last check; null when unknown (down, never measured). */
  readonly lagSeconds: number | null;
}

export interface ReadReplicaOptions {
  /** Where writes go, and every read when no replica can take it. */
  primary: Database;
  /** Connection strings of the replicas. */
  urls: readonly string[];
  maxLagSeconds: number;
  checkIntervalMs: number;
  /** Each replica gets a pool of its own, sized like the primary's. */
  poolMax: number;
  connectionTimeoutMs: number;
  statementTimeoutMs: number;
  /** See DatabaseOptions.preparedStatements. */
  preparedStatements?: boolean;
  logger: Logger;
  /** Called with every statement sent to a replica. */
  onStatement?: (sql: string) => void;
  /** Counts reads by route, and replicas found down. */
  onRead?: (route: ReadRoute) => void;
  onReplicaDown?: (name: string) => void;
}

/**
 * A way to run a read that may be served by a replica: runs `read` on a database
 * and returns its result. Services take one of these next to the primary.
 */
export type ReplicaReads = <T>(read: (db: Database) => Promise<T>) => Promise<T>;

interface Replica {
  name: string;
  pool: pg.Pool;
  db: Database;
  state: ReplicaState;
  lagSeconds: number | null;
}

export class ReadReplicas {
  readonly #options: ReadReplicaOptions;
  readonly #replicas: Replica[];
  #next = 0;
  #timer: NodeJS.Timeout | null = null;
  #checking: Promise<void> | null = null;

  constructor(options: ReadReplicaOptions) {
    this.#options = options;
    this.#replicas = options.urls.map((url) => {
      const pool = createPool({
        url,
        poolMax: options.poolMax,
        connectionTimeoutMs: options.connectionTimeoutMs,
        statementTimeoutMs: options.statementTimeoutMs,
        preparedStatements: options.preparedStatements,
        logger: options.logger,
        applicationName: 'pulse-read',
      });
      const db = createDatabase({ pool, onStatement: options.onStatement });
      return { name: replicaName(url), pool, db, state: 'starting' as ReplicaState, lagSeconds: null };
    });
  }

  /** Each replica's standing at the last check, in configuration order. */
  get health(): ReplicaHealth[] {
    return this.#replicas.map(({ name, state, lagSeconds }) => ({ name, state, lagSeconds }));
  }

  /** The replicas' pools, for their occupancy. */
  get pools(): Array<{ name: string; pool: pg.Pool }> {
    return this.#replicas.map(({ name, pool }) => ({ name, pool }));
  }

  /**
   * Measures every replica once, then keeps measuring every `checkIntervalMs`
   * until {@link close}. Resolves after the first round, so reads go to replicas
   * from the first request; a replica that is down does not fail the start.
   */
  async start(): Promise<void> {
    await this.check();
    this.#timer = setInterval(() => void this.check(), this.#options.checkIntervalMs);
    this.#timer.unref();
  }

  /**
   * Runs `read` on a replica in good standing (each in turn), or on the primary
   * when there is none. If the replica fails under it, the read runs again on the
   * primary: the caller never sees a replica's failure.
   */
  readonly read: ReplicaReads = async (read) => {
    const replica = this.#pick();
    if (!replica) {
      this.#options.onRead?.('primary');
      return read(this.#options.primary);
    }
    try {
      const result = await read(replica.db);
      this.#options.onRead?.('replica');
      return result;
    } catch (error) {
      const failure = replicaFailure(error);
      if (!failure) throw error;
      if (failure === 'down') this.#markDown(replica, error);
      this.#options.onRead?.('fallback');
      return read(this.#options.primary);
    }
  };

  /**
   * One round of measurements: the primary's WAL position, then each replica's
   * standing against it. Rounds never overlap; a call during one waits for it.
   */
  check(): Promise<void> {
    this.#checking ??= this.#checkAll().finally(() => {
      this.#checking = null;
    });
    return this.#checking;
  }

  /** Stops the checks and closes the replicas' pools. */
  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    await this.#checking;
    await Promise.all(this.#replicas.map((replica) => replica.db.destroy()));
  }

  // Private: round-robin over the replicas in good standing.
  #pick(): Replica | null {
    const count = this.#replicas.length;
    for (let i = 0; i < count; i++) {
      const replica = this.#replicas[(this.#next + i) % count]!;
      if (replica.state === 'serving') {
        this.#next = (this.#next + i + 1) % count;
        return replica;
      }
    }
    return null;
  }

  async #checkAll(): Promise<void> {
    // Where the primary's WAL was before any replica is asked: a replica that has
    // replayed up to here has everything committed before the check began. The
    // insert position, not pg_current_wal_lsn() (the write position): with
    // synchronous_commit off, a commit is answered once its record is inserted,
    // before it is written, so a replica could reach the write position without
    // it and be judged caught up a moment early (serving a heartbeat's user as
    // offline). The insert position errs the safe way: a replica may wait for a
    // WAL flush (wal_writer_delay) to count as caught up, and meanwhile is judged
    // by the age of the newest transaction it has applied. An unreachable primary
    // leaves it unknown; replicas then judge by what they have received.
    let primaryLsn: string | null = null;
    try {
      const { rows } = await sql<{ lsn: string }>`select pg_current_wal_insert_lsn()::text as lsn`.execute(this.#options.primary);
      primaryLsn = rows[0]!.lsn;
    } catch {
      primaryLsn = null;
    }
    await Promise.all(this.#replicas.map((replica) => this.#checkOne(replica, primaryLsn)));
  }

  async #checkOne(replica: Replica, primaryLsn: string | null): Promise<void> {
    let row: { in_recovery: boolean; caught_up: boolean | null; behind_seconds: number | null };
    try {
      const { rows } = await sql<typeof row>`
        select pg_is_in_recovery() as in_recovery,
               coalesce(pg_last_wal_replay_lsn() >= ${primaryLsn}::pg_lsn,
                        pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn()) as caught_up,
               extract(epoch from now() - pg_last_xact_replay_timestamp())::float8 as behind_seconds
      `.execute(replica.db);
      row = rows[0]!;
    } catch (error) {
      this.#markDown(replica, error);
      return;
    }
    const { logger, maxLagSeconds } = this.#options;
    const previous = replica.state;
    if (!row.in_recovery) {
      replica.state = 'not-standby';
      replica.lagSeconds = null;
      if (previous !== 'not-standby') {
        logger.warn(`read replica ${replica.name}: not a standby (pg_is_in_recovery() is false), so it may not follow the primary; skipped`);
      }
      return;
    }
    // Behind by position with no transaction replayed yet (a standby that just
    // started): unknown, so treated as too far behind.
    replica.lagSeconds = row.caught_up ? 0 : (row.behind_seconds ?? Infinity);
    replica.state = replica.lagSeconds <= maxLagSeconds ? 'serving' : 'lagging';
    if (replica.state === previous) return;
    if (replica.state === 'lagging') {
      logger.warn(
        `read replica ${replica.name}: ${formatLag(replica.lagSeconds)} behind the primary (more than READ_REPLICA_MAX_LAG_SECONDS, ${maxLagSeconds} s); reads go elsewhere until it catches up`,
      );
    } else if (previous === 'starting') {
      logger.info(`read replica ${replica.name}: serving reads (${formatLag(replica.lagSeconds)} behind)`);
    } else {
      logger.info(`read replica ${replica.name}: serving reads again (was ${previous}; ${formatLag(replica.lagSeconds)} behind)`);
    }
  }

  #markDown(replica: Replica, error: unknown): void {
    replica.lagSeconds = null;
    if (replica.state === 'down') return;
    replica.state = 'down';
    this.#options.onReplicaDown?.(replica.name);
    this.#options.logger.warn(`read replica ${replica.name}: unreachable, reads go to the other replicas or the primary until it answers again`, {
      error: error instanceof Error ? error.message : String(error),
    });
  }
}

/**
 * Private: what a read's failure on a replica means.
 *  - 'retry': this read was cancelled, the replica is fine: by a recovery
 *    conflict (the standby had to apply WAL removing rows the read could see:
 *    40001, or 40P01 for a lock) or by the statement timeout (57014) on a busy
 *    replica. Run it on the primary.
 *  - 'down': the replica cannot serve (connection lost or refused, shutting
 *    down, starting up): skip it until a check reaches it, and run the read on
 *    the primary.
 *  - null: the read itself is wrong, and would be on the primary too.
 */
function replicaFailure(error: unknown): 'down' | 'retry' | null {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  if (code === '40001' || code === '40P01' || code === '57014') return 'retry';
  if (toPulseError(error)?.code === 'UNAVAILABLE') return 'down';
  return null;
}

/** host:port/database of a connection string: what logs and metrics call a replica. */
export function replicaName(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || '5432'}${parsed.pathname}`;
  } catch {
    return '(unparseable READ_DATABASE_URL)';
  }
}

function formatLag(seconds: number | null): string {
  if (seconds === null) return 'unknown';
  if (!Number.isFinite(seconds)) return 'an unknown time (nothing replayed yet)';
  return `${seconds.toFixed(3)} s`;
}
