/**
 * Group commit against a real PostgreSQL: heartbeats that arrive together share
 * one statement, every one of them lands, none is answered before its write has
 * committed, a failed batch fails only its own heartbeats, and the minimum write
 * gap skips exactly the rows written too recently.
 */
import pg from 'pg';
import { sql } from 'kysely';
import { createDatabase, type Database } from '../src/db/database';
import { toPulseError } from '../src/errors';
import { silentLogger } from '../src/logger';
import { createMetrics, type Metrics } from '../src/observability/metrics';
import { PresenceService, type PresenceServiceOptions } from '../src/presence/presence-service';
import { recordHeartbeats, sortUserIds } from '../src/presence/pulse-repository';
import { parseUserId, type UserId } from '../src/presence/user-id';
import { createTestDatabase, type TestDatabase } from './support/test-database';

const id = parseUserId;
const ids = (from: number, count: number): UserId[] => Array.from({ length: count }, (_, i) => id(String(from + i)));
const writes = (statements: string[]) => statements.filter((s) => /insert into pulse/i.test(s) && !/pg_stat_activity/.test(s));

let t: TestDatabase;
let metrics: Metrics;

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(() => t.destroy());
beforeEach(async () => {
  await sql`truncate pulse`.execute(t.db);
  t.statements.length = 0;
  metrics = createMetrics();
});

function service(options: Partial<PresenceServiceOptions> = {}, db: Database = t.db): PresenceService {
  return new PresenceService({
    db,
    thresholdSeconds: 30,
    minWriteGapSeconds: 0,
    batching: { windowMs: 5, maxSize: 1000, maxInFlight: 2 },
    metrics,
    ...options,
  });
}

async function counter(outcome: string): Promise<number> {
  const { values } = await metrics.heartbeats.get();
  return values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
}

// Private: until a heartbeat statement is blocked on a row lock (polled, no fixed
// sleep; asked outside the locker's transaction, whose view of the statistics is
// fixed at its start).
async function waitForBlockedWrite(): Promise<void> {
  await waitForBlockedWrites(1);
}

// Private: until `count` heartbeat statements are blocked on row locks.
async function waitForBlockedWrites(count: number): Promise<void> {
  for (;;) {
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from pg_stat_activity
      where datname = current_database() and wait_event_type = 'Lock' and query like '%insert into pulse%'
    `.execute(t.db);
    if (rows[0]!.n >= count) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function lastHeartbeats(userIds: readonly string[]): Promise<Map<string, Date>> {
  const { rows } = await sql<{ user_id: string; last_hb: Date }>`
    select user_id::text as user_id, last_hb from pulse where user_id = any(${userIds}::bigint[])
  `.execute(t.db);
  return new Map(rows.map((r) => [r.user_id, r.last_hb]));
}

describe('group commit', () => {
  it('writes heartbeats that arrive together in one statement, and answers each with its own status', async () => {
    const presence = service();
    const users = ids(1000, 200);
    const statuses = await Promise.all(users.map((u) => presence.heartbeat(u)));

    expect(writes(t.statements)).toHaveLength(1);
    expect(statuses.map((s) => s.userId)).toEqual(users);
    expect(statuses.every((s) => s.online && s.lastSeen instanceof Date)).toBe(true);
    expect((await lastHeartbeats(users)).size).toBe(200);
  });

  it('closes a batch when it reaches its maximum size', async () => {
    const presence = service({ batching: { windowMs: 1000, maxSize: 10, maxInFlight: 4 } });
    await Promise.all(ids(1, 25).map((u) => presence.heartbeat(u)));
    // Two full batches at once; the remaining 5 wait out the window.
    expect(writes(t.statements)).toHaveLength(3);
    expect((await metrics.heartbeatBatchSize.get()).values.find((v) => v.labels.le === 5)?.value).toBe(1);
  });

  it('merges a user who appears several times in one batch into one row and one answer', async () => {
    const presence = service({ heartbeatMinIntervalMs: 0 });
    const answers = await Promise.all(Array.from({ length: 10 }, () => presence.heartbeat(id('77'))));
    expect(writes(t.statements)).toHaveLength(1);
    expect(new Set(answers.map((a) => a.lastSeen!.getTime())).size).toBe(1);
    expect(await counter('written')).toBe(1);
  });

  it('lands every heartbeat when concurrent batches share users, without deadlocks', async () => {
    const presence = service({ heartbeatMinIntervalMs: 0, batching: { windowMs: 1, maxSize: 37, maxInFlight: 4 } });
    // Waves of overlapping user sets in shuffled order: batches running at the
    // same time lock the same rows, which only sorted ids keep deadlock-free.
    const waves = Array.from({ length: 8 }, (_, wave) => ids(1 + wave * 20, 100).sort(() => Math.random() - 0.5));
    const results = await Promise.allSettled(waves.flat().map((u) => presence.heartbeat(u)));

    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(writes(t.statements).length).toBeGreaterThan(1);
    const stored = await lastHeartbeats(ids(1, 240));
    expect(stored.size).toBe(240);
  });

  it('adapts: while a statement runs, heartbeats collect and leave together in one statement when it returns', async () => {
    await t.setLastHeartbeat('5', 10); // online: its heartbeat is one statement
    t.statements.length = 0;
    const presence = service({ batching: { windowMs: 0, maxSize: 1000, maxInFlight: 1 } });
    const locker = new pg.Client({ connectionString: t.url });
    await locker.connect();
    await locker.query('begin');
    await locker.query('select * from pulse where user_id = 5 for update');
    // Nothing in flight: the first heartbeat is written at once, and blocks on the lock.
    const first = presence.heartbeat(id('5'));
    await waitForBlockedWrite();
    const waiting = ids(100, 50);
    const later = Promise.all(waiting.map((u) => presence.heartbeat(u)));
    await new Promise((resolve) => setImmediate(resolve));
    const pendingWhileBlocked = presence.pendingHeartbeats;
    await locker.query('commit');
    await locker.end();

    expect(pendingWhileBlocked).toBe(50);
    expect((await first).online).toBe(true);
    expect((await later).every((s) => s.online)).toBe(true);
    // One statement for the first heartbeat, one for all 50 that waited for it.
    expect(writes(t.statements)).toHaveLength(2);
    expect((await lastHeartbeats(waiting)).size).toBe(50);
  });

  it('answers a heartbeat only after its write has committed', async () => {
    await t.setLastHeartbeat('5', 3600);
    const [before] = (await lastHeartbeats(['5'])).values();
    const presence = service();

    // Another transaction holds user 5's row: the batch cannot write it yet.
    const locker = new pg.Client({ connectionString: t.url });
    await locker.connect();
    await locker.query('begin');
    await locker.query('select * from pulse where user_id = 5 for update');
    let answered = false;
    const answer = presence.heartbeat(id('5')).then((status) => {
      answered = true;
      return status;
    });
    await waitForBlockedWrite();
    const stillAnswered = answered;
    const [meanwhile] = (await lastHeartbeats(['5'])).values();
    await locker.query('commit');
    await locker.end();

    expect(stillAnswered).toBe(false);
    expect(meanwhile).toEqual(before);
    const status = await answer;
    expect(status.online).toBe(true);
    expect((await lastHeartbeats(['5'])).get('5')).toEqual(status.lastSeen);
  });

  it('fails exactly the heartbeats of a failed batch, with UNAVAILABLE, and writes the next batch', async () => {
    // A pool of its own with a short statement timeout, and the table locked.
    const impatient = createDatabase({ url: t.url, poolMax: 2, connectionTimeoutMs: 2000, statementTimeoutMs: 300, logger: silentLogger });
    const presence = service({}, impatient);
    const locker = new pg.Client({ connectionString: t.url });
    await locker.connect();
    try {
      await locker.query('begin');
      await locker.query('lock table pulse in exclusive mode');
      const failed = await Promise.allSettled(ids(1, 5).map((u) => presence.heartbeat(u)));
      await locker.query('rollback');
      const succeeded = await Promise.all(ids(6, 5).map((u) => presence.heartbeat(u)));

      expect(failed.map((r) => r.status)).toEqual(Array(5).fill('rejected'));
      for (const r of failed) expect(toPulseError((r as PromiseRejectedResult).reason)?.code).toBe('UNAVAILABLE');
      expect(succeeded.every((s) => s.online)).toBe(true);
      expect([...(await lastHeartbeats(ids(1, 10))).keys()].sort()).toEqual(ids(6, 5).sort());
      expect(await counter('failed')).toBe(5);
    } finally {
      await locker.end();
      await impatient.destroy();
    }
  });

  it('flush also writes heartbeats that arrive while it runs, and then finishes', async () => {
    const presence = service({ batching: { windowMs: 60_000, maxSize: 1000, maxInFlight: 1 } });
    const first = presence.heartbeat(id('1'));
    const flushed = presence.flush();
    // Arrives while the first statement runs (as a draining request would).
    const late = presence.heartbeat(id('2'));
    await flushed;
    expect(presence.pendingHeartbeats).toBe(0);
    expect((await Promise.all([first, late])).every((s) => s.online)).toBe(true);
    expect(writes(t.statements)).toHaveLength(2);
  });

  it('flush writes what is buffered without waiting for the window', async () => {
    const presence = service({ batching: { windowMs: 60_000, maxSize: 1000, maxInFlight: 1 } });
    const answers = Promise.all(ids(1, 3).map((u) => presence.heartbeat(u)));
    expect(presence.pendingHeartbeats).toBe(3);
    await presence.flush();
    expect((await answers).every((s) => s.online)).toBe(true);
    expect(presence.pendingHeartbeats).toBe(0);
  });
});

describe('coming online', () => {
  it('reports, from the write statements themselves, exactly the users a batch brought online', async () => {
    await t.setLastHeartbeat('1', 3600); // offline: comes online
    await t.setLastHeartbeat('2', 10); // online already: no event
    t.statements.length = 0;
    const reported: string[][] = [];
    const presence = service({ onCameOnline: (userIds) => reported.push([...userIds].sort()) });
    await Promise.all(['1', '2', '3'].map((u) => presence.heartbeat(id(u)))); // 3: never seen
    expect(reported).toEqual([['1', '3']]);
    // The first statement writes 2 and inserts 3; the second reads and writes 1.
    expect(t.statements).toHaveLength(2);

    // All online now: the common case, one statement and no event.
    t.statements.length = 0;
    await Promise.all(['1', '2', '3'].map((u) => presence.heartbeat(id(u))));
    expect(reported).toHaveLength(1);
    expect(t.statements).toHaveLength(1);
  });
});

describe('two statements, the second only for the users the first did not write', () => {
  it('writes a whole batch at one time, whichever statement wrote each user', async () => {
    await t.setLastHeartbeat('1', 3600); // offline: the second statement
    await t.setLastHeartbeat('2', 10); // online: the first
    const outcome = await recordHeartbeats(t.db, sortUserIds([id('1'), id('2'), id('3')]), 30, 0);
    const stored = await lastHeartbeats(['1', '2', '3']);

    expect(outcome.cameOnline.sort()).toEqual(['1', '3']);
    expect(outcome.skipped).toEqual([]);
    expect(new Set([...stored.values()].map((time) => time.getTime()))).toEqual(new Set([outcome.now.getTime()]));
  });

  it('tells who turned idle or active, and writes it inside the gap', async () => {
    await t.setLastHeartbeat('1', 2);
    await t.setLastHeartbeat('2', 2);
    const outcome = await recordHeartbeats(t.db, sortUserIds([id('1'), id('2')]), 30, 5, null, false, new Set([id('1')]));
    const { rows } = await sql<{ user_id: string; idle: boolean }>`select user_id::text, idle from pulse order by user_id`.execute(t.db);

    expect(outcome.idleChanged).toEqual(['1']);
    expect(outcome.skipped.map((row) => row.user_id)).toEqual(['2']);
    expect(rows).toEqual([{ user_id: '1', idle: true }, { user_id: '2', idle: false }]);
  });

  it('does not deadlock when one batch needs both statements and an overlapping one holds a row it needs', async () => {
    await t.setLastHeartbeat('5', 10);
    await t.setLastHeartbeat('9', 10);
    const locker = new pg.Client({ connectionString: t.url });
    await locker.connect();
    await locker.query('begin');
    await locker.query('select * from pulse where user_id = 9 for update');
    // Batch a: user 5 turns idle, so 5 waits for the second statement; its first
    // statement locks 5 and waits for 9. Batch b (nothing changes) then waits for 5.
    const a = recordHeartbeats(t.db, [id('5'), id('9')], 30, 0, null, false, new Set([id('5')]));
    await waitForBlockedWrites(1);
    const b = recordHeartbeats(t.db, [id('5'), id('9')], 30, 0);
    await waitForBlockedWrites(2);
    await locker.query('commit');
    await locker.end();

    const [first, second] = await Promise.allSettled([a, b]);
    expect(first.status).toBe('fulfilled');
    expect(second.status).toBe('fulfilled');
    expect((await a).idleChanged).toEqual(['5']);
    expect((await lastHeartbeats(['5', '9'])).size).toBe(2);
  });

  it('lands every heartbeat of concurrent overlapping batches that mix users online, offline and turning idle', async () => {
    const users = ids(1, 110);
    for (const [i, user] of users.entries()) if (i % 3 === 0) await t.setLastHeartbeat(user, 3600);
    const presence = service({ heartbeatMinIntervalMs: 0, batching: { windowMs: 1, maxSize: 29, maxInFlight: 4 } });
    const waves = Array.from({ length: 6 }, (_, wave) =>
      users.slice(wave * 10, wave * 10 + 60).sort(() => Math.random() - 0.5).map((u, i) => ({ u, idle: (i + wave) % 4 === 0 })),
    );
    const results = await Promise.allSettled(waves.flat().map(({ u, idle }) => presence.heartbeat(u, idle)));

    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from pulse where last_hb >= now() - interval '30 seconds'`.execute(t.db);
    expect(rows[0]!.n).toBe(110);
  });
});

describe('a login storm: batches whose users mostly need the reading statement', () => {
  const reading = (statements: string[]) => writes(statements).filter((s) => /materialized/i.test(s));

  it('with readFirst, writes the batch in the reading statement alone, with the same outcome', async () => {
    await t.setLastHeartbeat('1', 3600); // offline: comes online
    await t.setLastHeartbeat('2', 10); // online: the common case
    await t.setLastHeartbeat('4', 10); // online, turns idle
    t.statements.length = 0;
    const outcome = await recordHeartbeats(t.db, sortUserIds([id('1'), id('2'), id('3'), id('4')]), 30, 0, null, false, new Set([id('4')]), true);
    const stored = await lastHeartbeats(['1', '2', '3', '4']);

    expect(writes(t.statements)).toHaveLength(1);
    expect(reading(t.statements)).toHaveLength(1);
    expect(outcome.cameOnline.sort()).toEqual(['1', '3']);
    expect(outcome.idleChanged).toEqual(['4']);
    expect(outcome.uncommon).toBe(3);
    expect(new Set([...stored.values()].map((time) => time.getTime()))).toEqual(new Set([outcome.now.getTime()]));
  });

  it('after a batch most of whose users came online, sends the next one straight to the reading statement, and goes back to two once they are online', async () => {
    for (const user of ids(1, 8)) await t.setLastHeartbeat(user, 3600);
    const reported: string[][] = [];
    const presence = service({ heartbeatMinIntervalMs: 0, onCameOnline: (userIds) => reported.push([...userIds].sort()) });
    const batch = async (users: UserId[]) => {
      t.statements.length = 0;
      await Promise.all(users.map((u) => presence.heartbeat(u)));
      return { writes: writes(t.statements).length, reading: reading(t.statements).length };
    };

    // Everyone offline: the common-case statement writes no one, the reading one all.
    expect(await batch(ids(1, 4))).toEqual({ writes: 2, reading: 1 });
    // The storm goes on: one statement, the reading one.
    expect(await batch(ids(5, 4))).toEqual({ writes: 1, reading: 1 });
    // Users online again: still read first once, which finds them all common...
    expect(await batch(ids(1, 4))).toEqual({ writes: 1, reading: 1 });
    // ...so the next batch is the common case's statement alone.
    expect(await batch(ids(1, 4))).toEqual({ writes: 1, reading: 0 });
    expect(reported).toEqual([ids(1, 4).sort(), ids(5, 4).sort()]);
  });
});

describe('the minimum write gap', () => {
  it('skips a user written less than the gap ago, answering with the stored time, and writes once the gap has passed', async () => {
    const presence = service({ minWriteGapSeconds: 5, heartbeatMinIntervalMs: 0 });
    const first = await presence.heartbeat(id('3'));
    const second = await presence.heartbeat(id('3'));
    expect(second).toEqual(first);
    expect(await counter('written')).toBe(1);
    expect(await counter('skipped')).toBe(1);

    await t.setLastHeartbeat('3', 6);
    const [aged] = (await lastHeartbeats(['3'])).values();
    const third = await presence.heartbeat(id('3'));
    expect(third.lastSeen!.getTime()).toBeGreaterThan(aged!.getTime());
    expect(await counter('written')).toBe(2);
  });

  it('in one batch, writes the users past the gap and skips only those within it', async () => {
    await t.setLastHeartbeat('1', 2); // within a 5 s gap: skipped
    await t.setLastHeartbeat('2', 60); // past it: written
    const stored = await lastHeartbeats(['1', '2']);
    t.statements.length = 0;
    const presence = service({ minWriteGapSeconds: 5 });
    const [one, two, three] = await Promise.all(['1', '2', '3'].map((u) => presence.heartbeat(id(u))));

    expect(one!.lastSeen).toEqual(stored.get('1'));
    expect(two!.lastSeen!.getTime()).toBeGreaterThan(stored.get('2')!.getTime() + 50_000);
    expect(three!.online).toBe(true);
    expect([one, two, three].every((s) => s!.online)).toBe(true);
    expect(await counter('written')).toBe(2);
    expect(await counter('skipped')).toBe(1);
    // The first statement writes 2 and inserts 3; the second reads 1 and skips it.
    expect(writes(t.statements)).toHaveLength(2);
  });

  it('with a gap of 0, writes every heartbeat', async () => {
    const presence = service({ minWriteGapSeconds: 0, heartbeatMinIntervalMs: 0 });
    const first = await presence.heartbeat(id('4'));
    const second = await presence.heartbeat(id('4'));
    expect(second.lastSeen!.getTime()).toBeGreaterThan(first.lastSeen!.getTime());
    expect(await counter('written')).toBe(2);
  });
});

describe('without batching (HEARTBEAT_BATCHING=off)', () => {
  it('writes each heartbeat in a statement of its own', async () => {
    const presence = service({ batching: null });
    await Promise.all(ids(1, 5).map((u) => presence.heartbeat(u)));
    expect(writes(t.statements)).toHaveLength(5);
  });
});

describe('the write statement', () => {
  it('keeps now() out of ON CONFLICT DO UPDATE, which Citus requires', async () => {
    await t.setLastHeartbeat('1', 3600); // offline: both statements
    t.statements.length = 0;
    await service().heartbeat(id('1'));
    const statements = writes(t.statements);
    expect(statements).toHaveLength(2);
    for (const statement of statements) {
      const onConflict = statement.slice(statement.search(/on conflict/i), statement.search(/returning/i));
      expect(onConflict).toMatch(/set last_hb = excluded\.last_hb/i);
      expect(onConflict).not.toMatch(/now\(\)/i);
    }
  });

  it('prepares the common-case statement once per connection, so PostgreSQL parses and plans it from its cache', async () => {
    const single = createDatabase({ url: t.url, poolMax: 1, connectionTimeoutMs: 2000, statementTimeoutMs: 5000, logger: silentLogger });
    try {
      for (const user of ['1', '2', '3']) await recordHeartbeats(single, [id(user)], 30, 0);
      const { rows } = await sql<{ calls: number }>`
        select (generic_plans + custom_plans)::int as calls from pg_prepared_statements where statement like '%insert into pulse%'
      `.execute(single);
      expect(rows).toEqual([{ calls: 3 }]);
    } finally {
      await single.destroy();
    }
  });

  it('with DB_PREPARED_STATEMENTS off (a pooler that cannot keep them), prepares nothing and writes all the same', async () => {
    const single = createDatabase({ url: t.url, poolMax: 1, connectionTimeoutMs: 2000, statementTimeoutMs: 5000, preparedStatements: false, logger: silentLogger });
    try {
      const outcome = await recordHeartbeats(single, [id('1'), id('2')], 30, 0);
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_prepared_statements`.execute(single);
      expect(rows[0]!.n).toBe(0);
      expect(outcome.cameOnline.sort()).toEqual(['1', '2']);
      expect((await lastHeartbeats(['1', '2'])).size).toBe(2);
    } finally {
      await single.destroy();
    }
  });
});
