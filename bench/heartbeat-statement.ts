/**
 * `npm run bench:statement`: what the heartbeat statement costs PostgreSQL, per
 * row, measured as the CPU time of the database backend that runs it (read from
 * /proc, so the server must run on this machine) rather than as wall time, which
 * on a shared machine measures the neighbours too.
 *
 * Compares, side by side and alternating for `ROUNDS` rounds (medians reported):
 *  - Pulse's statement (recordHeartbeats, with the NOTIFY of users who came online)
 *    for the common case, every user already online, and for users coming online;
 *  - a plain unnest upsert of the same rows (bench/database/statements.ts's BATCHED_UPSERT),
 *    the floor: what writing the rows costs with nothing learnt about them.
 *
 * Settings (environment): STATEMENT_ROWS (table size, 200000), STATEMENT_BATCH
 * (rows per statement, 1000), STATEMENT_CALLS (statements per measurement, 100),
 * STATEMENT_ROUNDS (3). DATABASE_URL: another server (a database of its own is
 * created and dropped), else an embedded PostgreSQL.
 */
import pg from 'pg';
import { sql } from 'kysely';
import { createDatabase, type Database } from '../src/db/database';
import { migrateToLatest } from '../src/db/migrator';
import { silentLogger } from '../src/logger';
import { recordHeartbeats, sortUserIds } from '../src/presence/pulse-repository';
import type { UserId } from '../src/presence/user-id';
import { BATCHED_UPSERT } from './database/statements';
import { benchDatabase, log, processCpuMs } from './support';

const ROWS = Number(process.env.STATEMENT_ROWS ?? 200_000);
const BATCH = Number(process.env.STATEMENT_BATCH ?? 1000);
const CALLS = Number(process.env.STATEMENT_CALLS ?? 100);
const ROUNDS = Number(process.env.STATEMENT_ROUNDS ?? 3);
const THRESHOLD_SECONDS = 30;
const GAP_SECONDS = 5;

interface Variant {
  name: string;
  /** Puts the rows of `ids` in the state the variant measures (outside the measurement). */
  prepare(ids: UserId[]): Promise<void>;
  run(ids: UserId[]): Promise<void>;
}

async function main(): Promise<void> {
  const database = await benchDatabase('pulse_statement');
  const db = createDatabase({ url: database.url, poolMax: 1, connectionTimeoutMs: 10_000, statementTimeoutMs: 600_000, logger: silentLogger });
  try {
    await migrateToLatest(db, silentLogger);
    await sql`insert into pulse (user_id, last_hb) select g, now() - interval '1 hour' from generate_series(1, ${ROWS}::bigint) g`.execute(db);
    await sql`vacuum analyze pulse`.execute(db);
    // A listener, as every Pulse process has, so NOTIFY does its real work.
    const listener = new pg.Client({ connectionString: database.url });
    await listener.connect();
    await listener.query('listen pulse_presence');
    let notified = 0;
    listener.on('notification', () => notified++);

    const age = (ids: UserId[], seconds: number) =>
      sql`update pulse set last_hb = now() - make_interval(secs => ${seconds}) where user_id = any(${ids}::bigint[])`.execute(db);
    const variants: Variant[] = [
      {
        name: "Pulse's statement, users already online (the common case)",
        prepare: (ids) => age(ids, GAP_SECONDS + 5).then(() => undefined),
        run: (ids) => recordHeartbeats(db, ids, THRESHOLD_SECONDS, GAP_SECONDS, 'pulse_presence').then(() => undefined),
      },
      {
        name: "Pulse's statement, users coming online (NOTIFY)",
        prepare: (ids) => age(ids, 3600).then(() => undefined),
        run: (ids) => recordHeartbeats(db, ids, THRESHOLD_SECONDS, GAP_SECONDS, 'pulse_presence').then(() => undefined),
      },
      {
        name: 'plain unnest upsert (the floor)',
        prepare: (ids) => age(ids, GAP_SECONDS + 5).then(() => undefined),
        run: (ids) => sql.raw(BATCHED_UPSERT.replace('$1', `'{${ids.join(',')}}'`)).execute(db).then(() => undefined),
      },
    ];

    const results = new Map<string, number[]>();
    let batchNo = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      for (const variant of variants) {
        // Each statement writes its own rows, set up beforehand, so no
        // statement finds its rows within the write gap of an earlier one.
        const batches = Array.from({ length: CALLS }, () => {
          const first = ((batchNo++ * BATCH) % (ROWS - BATCH)) + 1;
          return sortUserIds(Array.from({ length: BATCH }, (_, i) => String(first + i) as UserId));
        });
        for (const ids of batches) await variant.prepare(ids);
        await sql`checkpoint`.execute(db);
        const before = await backendCpuMs(db);
        for (const ids of batches) await variant.run(ids);
        const after = await backendCpuMs(db);
        const perRowUs = ((after - before) * 1000) / (CALLS * BATCH);
        results.set(variant.name, [...(results.get(variant.name) ?? []), perRowUs]);
        log(`round ${round}: ${variant.name}: ${perRowUs.toFixed(2)} µs of backend CPU per row`);
      }
    }
    await listener.end();

    const floor = median(results.get(variants[2]!.name)!);
    log(`\n${ROWS} rows, ${BATCH} rows per statement, ${CALLS} statements per measurement, medians of ${ROUNDS} rounds. ${database.label}. NOTIFY messages received: ${notified}.\n`);
    log('| statement | backend CPU per row, µs | / plain upsert |\n|---|---:|---:|');
    for (const variant of variants) {
      const perRow = median(results.get(variant.name)!);
      log(`| ${variant.name} | ${perRow.toFixed(2)} | ${(perRow / floor).toFixed(2)} |`);
    }
  } finally {
    await db.destroy();
    await database.stop();
  }
}

// Private: CPU time of the connection's backend process, in ms (the pool holds
// one connection, so every statement runs in that backend).
async function backendCpuMs(db: Database): Promise<number> {
  const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(db);
  const ms = processCpuMs(rows[0]!.pid);
  if (ms === null) throw new Error('The database server must run on this machine: its backend CPU is read from /proc');
  return ms;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
