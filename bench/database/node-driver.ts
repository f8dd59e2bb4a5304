/**
 * The Node driver of the database bench: statements sent with pg, as Pulse sends
 * them, from closed loops (each connection sends again as soon as its previous
 * statement committed). It runs wherever Pulse runs; pgbench-driver.ts measures
 * the bare statements with a C client where pgbench is installed.
 */
import { sql } from 'kysely';
import pg from 'pg';
import { createDatabase, type Database } from '../../src/db/database';
import { silentLogger } from '../../src/logger';
import { PRESENCE_CHANNEL } from '../../src/live/postgres-bus';
import { findStatusRows } from '../../src/presence/status-repository';
import type { UserId } from '../../src/presence/user-id';
import { percentile } from '../support';
import { BATCH_SIZE, IDS_PER_READ, rowsPerStatement, type StatusReads, type WalFreeRun, type WriteStatement } from './results';
import { bufferCounts, hitRatio } from './server-stats';
import { BATCHED_UPSERT, SINGLE_UPSERT, writePulseBatch, type PulseStatementSettings } from './statements';
import { randomIds, randomInt, shuffledUsers, spreadBatch } from './user-ids';

/**
 * Pulse's statement as the write ceilings send it: every user already online (a
 * day's threshold counts every loaded row as online, however long ago it was
 * loaded), so nothing comes online and nothing is notified, the common case;
 * and no write gap, so every heartbeat is written, as the bare upserts write it.
 */
export const CEILING_SETTINGS: PulseStatementSettings = { thresholdSeconds: 86_400, minWriteGapSeconds: 0, notifyChannel: PRESENCE_CHANNEL };

/**
 * Status reads through findStatusRows itself, so the statement measured is the one
 * Pulse sends, over a pool of `clients` connections closed at the end (which makes
 * the sessions report their statistics). A tenth as many unmeasured calls first
 * warm the connections and the caches the same way at every size.
 */
export async function statusReads(url: string, admin: pg.Client, rows: number, calls: number, clients: number): Promise<StatusReads> {
  const before = await bufferCounts(admin);
  const db = benchPool(url, clients);
  let latencies: number[];
  try {
    const read = () => findStatusRows(db, [...new Set(randomIds(rows, IDS_PER_READ))], null, 30);
    await closedLoop(clients, Math.ceil(calls / 10), read);
    latencies = await closedLoop(clients, calls, read);
  } finally {
    await db.destroy();
  }
  return {
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    avgMs: latencies.reduce((sum, value) => sum + value, 0) / latencies.length,
    bufferHitRatio: hitRatio(before, await bufferCounts(admin)),
  };
}

/**
 * `clients` connections, each sending `statement` again as soon as the previous
 * one committed, until `seconds` have passed. Pulse's statement goes through
 * recordHeartbeats over a pool of `clients` connections (one per loop, as
 * the batcher's statements each hold one); the bare upserts go through pg.
 */
export async function nodeWriteRun(url: string, statement: WriteStatement, rows: number, clients: number, seconds: number): Promise<WalFreeRun> {
  const send = await writer(url, statement, rows, clients);
  let statements = 0;
  let busyMs = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  try {
    await Promise.all(
      Array.from({ length: clients }, async (_, loop) => {
        while (performance.now() < deadline) {
          const sent = performance.now();
          await send.write(loop);
          busyMs += performance.now() - sent;
          statements++;
        }
      }),
    );
  } finally {
    await send.close();
  }
  const elapsed = (performance.now() - started) / 1000;
  return {
    statement,
    driver: 'node-pg',
    clients,
    seconds: elapsed,
    statements,
    statementsPerSecond: statements / elapsed,
    rowsPerSecond: (statements * rowsPerStatement(statement)) / elapsed,
    latencyAvgMs: busyMs / statements,
  };
}

/**
 * Churn: one heartbeat for every user through Pulse's statement, in batches of
 * random users as the heartbeat batcher sends them (a shuffled order cut into
 * batches), so each page is updated a few rows at a time and old versions can be
 * pruned in between, which is what fillfactor 70 reserves room for.
 */
export async function heartbeatRound(url: string, rows: number, clients: number): Promise<void> {
  const order = shuffledUsers(rows);
  const db = benchPool(url, clients);
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (next < rows) {
          const batch = Array.from(order.subarray(next, next + BATCH_SIZE), (id) => String(id) as UserId);
          next += BATCH_SIZE;
          await writePulseBatch(db, batch, CEILING_SETTINGS);
        }
      }),
    );
  } finally {
    await db.destroy();
  }
}

/**
 * A connection of the bench's own (not yet connected), named `pulse-bench` on the
 * server. A lost connection fails the query waiting on it; an idle one lost (the
 * bench's database dropped when it is interrupted) must not end the process
 * before the rest is undone, so its `error` event is heard and let go.
 */
export function benchClient(url: string): pg.Client {
  const client = new pg.Client({ connectionString: url, application_name: 'pulse-bench' });
  client.on('error', () => {});
  return client;
}

/** A Kysely pool of `size` connections, as Pulse's own, named `pulse-bench` on the server. */
export function benchPool(url: string, size: number): Database {
  return createDatabase({ url, poolMax: size, connectionTimeoutMs: 10_000, statementTimeoutMs: 60_000, logger: silentLogger, applicationName: 'pulse-bench' });
}

// Private: `total` calls of `call` from `clients` loops; each call's time in ms.
async function closedLoop(clients: number, total: number, call: () => Promise<unknown>): Promise<number[]> {
  const latencies: number[] = [];
  let issued = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (issued < total) {
        issued++;
        const started = performance.now();
        await call();
        latencies.push(performance.now() - started);
      }
    }),
  );
  return latencies;
}

// Private: how loop number `loop` sends one statement of `statement`, over
// connections opened up front and closed by `close`.
async function writer(url: string, statement: WriteStatement, rows: number, clients: number): Promise<{ write(loop: number): Promise<unknown>; close(): Promise<void> }> {
  if (statement === 'pulse') {
    const db = benchPool(url, clients);
    // Every connection opened before the clock starts, as the bare upserts' are.
    await Promise.all(Array.from({ length: clients }, () => sql`select 1`.execute(db)));
    return { write: () => writePulseBatch(db, spreadBatch(rows, BATCH_SIZE), CEILING_SETTINGS), close: () => db.destroy() };
  }
  const connections = await Promise.all(
    Array.from({ length: clients }, async () => {
      const client = benchClient(url);
      await client.connect();
      return client;
    }),
  );
  return {
    write: (loop) =>
      statement === 'single'
        ? connections[loop]!.query(SINGLE_UPSERT, [String(randomInt(rows) + 1)])
        : connections[loop]!.query(BATCHED_UPSERT, [spreadBatch(rows, BATCH_SIZE)]),
    close: async () => {
      await Promise.all(connections.map((c) => c.end()));
    },
  };
}
