/**
 * The retention job: deletes what is older than the retention period, in bounded
 * steps, one instance at a time; a failing run is logged and counted, never fatal.
 */
import { sql } from 'kysely';
import pg from 'pg';
import { loadConfig } from '../src/config';
import { createDatabase, type Database } from '../src/db/database';
import { RETENTION_LOCK_KEY, runRetention } from '../src/jobs/retention';
import { startScheduler } from '../src/jobs/scheduler';
import { createLogger, silentLogger } from '../src/logger';
import { freePort } from './support/free-port';
import { createTestDatabase, type TestDatabase } from './support/test-database';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(() => t.destroy());
beforeEach(async () => {
  await sql`truncate pulse`.execute(t.db);
});

async function remainingIds(): Promise<string[]> {
  const { rows } = await sql<{ user_id: string }>`select user_id from pulse order by user_id`.execute(t.db);
  return rows.map((r) => r.user_id);
}

async function dbNow(): Promise<Date> {
  const { rows } = await sql<{ now: Date }>`select now() as now`.execute(t.db);
  return rows[0]!.now;
}

it('deletes exactly the rows older than the retention period, walking the table in steps', async () => {
  for (let id = 1; id <= 10; id++) {
    // Odd ids were last seen two days ago, even ids an hour ago.
    await t.setLastHeartbeat(String(id), id % 2 === 1 ? 2 * 86_400 : 3600);
  }
  const result = await runRetention(t.db, await dbNow(), { retentionSeconds: 86_400, batchSize: 3 });
  expect(result).toEqual({ ran: true, deleted: 5, steps: 5 }); // 4 steps of rows, 1 that finds the end
  expect(await remainingIds()).toEqual(['2', '4', '6', '8', '10']);
});

it('with the retention set to the threshold, keeps only online users (and loses everyone else\'s last seen)', async () => {
  await t.setLastHeartbeat('1', 5);
  await t.setLastHeartbeat('2', 45);
  await runRetention(t.db, await dbNow(), { retentionSeconds: 30, batchSize: 100 });
  expect(await remainingIds()).toEqual(['1']);
});

it('does nothing while another instance holds the retention lock', async () => {
  await t.setLastHeartbeat('1', 10 * 86_400);
  const other = new pg.Client({ connectionString: t.url });
  await other.connect();
  try {
    await other.query('select pg_advisory_lock($1)', [RETENTION_LOCK_KEY]);
    expect(await runRetention(t.db, await dbNow(), { retentionSeconds: 60, batchSize: 100 })).toEqual({ ran: false, reason: 'locked' });
    expect(await remainingIds()).toEqual(['1']);
  } finally {
    await other.end();
  }
  // The lock went with the other session; the next run proceeds and releases it.
  expect(await runRetention(t.db, await dbNow(), { retentionSeconds: 60, batchSize: 100 })).toMatchObject({ ran: true, deleted: 1 });
  expect(await runRetention(t.db, await dbNow(), { retentionSeconds: 60, batchSize: 100 })).toMatchObject({ ran: true, deleted: 0 });
});

describe('the scheduled job', () => {
  let unreachable: Database;
  beforeEach(async () => {
    unreachable = createDatabase({
      url: `postgres://root@127.0.0.1:${await freePort()}/nothing`,
      poolMax: 1,
      connectionTimeoutMs: 500,
      statementTimeoutMs: 1000,
      logger: silentLogger,
    });
  });
  afterEach(() => unreachable.destroy());

  it('logs and counts a failed run instead of crashing, and the next run still runs', async () => {
    const lines: string[] = [];
    const scheduler = startScheduler({
      db: unreachable,
      logger: createLogger('info', (line) => lines.push(line)),
      retention: { cron: '0 0 29 2 *', retentionSeconds: 60, batchSize: 100 }, // not during the test
    });
    try {
      await scheduler.runRetention(); // resolves: a failed run is not an error of the caller's
      expect(scheduler.retention).toEqual({ runs: 0, failures: 1, deleted: 0 });
      const failure = lines.map((l) => JSON.parse(l)).find((entry) => entry.msg === 'retention: run failed');
      expect(failure).toMatchObject({ level: 'error', error: { code: 'ECONNREFUSED' } });
      await scheduler.runRetention();
      expect(scheduler.retention.failures).toBe(2);
    } finally {
      await scheduler.stop();
    }
  });

  it('runs on its cron schedule, and keeps the schedule after a failure', async () => {
    let failures = 0;
    let secondFailure!: () => void;
    const twoFailures = new Promise<void>((resolve) => (secondFailure = resolve));
    const scheduler = startScheduler({
      db: unreachable,
      logger: createLogger('info', (line) => {
        if (JSON.parse(line).msg === 'retention: run failed' && ++failures === 2) secondFailure();
      }),
      retention: { cron: '* * * * * *', retentionSeconds: 60, batchSize: 100 }, // every second
    });
    try {
      await twoFailures;
      expect(scheduler.retention.failures).toBeGreaterThanOrEqual(2);
    } finally {
      await scheduler.stop();
    }
  });
});

describe('retention configuration', () => {
  it('is off by default and reads RETENTION_CRON and PULSE_RETENTION', () => {
    expect(loadConfig({}).retention).toEqual({ cron: null, retentionSeconds: 30 * 86_400, batchSize: 5000 });
    expect(loadConfig({ RETENTION_CRON: '15 3 * * *', PULSE_RETENTION: '12h' }).retention).toMatchObject({
      cron: '15 3 * * *',
      retentionSeconds: 43_200,
    });
  });

  it('names a bad schedule or duration', () => {
    expect(() => loadConfig({ RETENTION_CRON: 'every day', PULSE_RETENTION: '30 days' })).toThrow(
      /RETENTION_CRON: expected a cron expression[\s\S]*PULSE_RETENTION: expected a duration/,
    );
  });
});
