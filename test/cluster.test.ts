/**
 * PULSE_WORKERS=2: one instance, two worker processes on one port. Both serve
 * heartbeats and reads; an event raised on one reaches a subscriber on the other
 * (both buses); /metrics and /readyz answer for the instance; a worker killed
 * with SIGKILL is replaced and no acknowledged heartbeat is lost; SIGTERM drains
 * both workers' buffered heartbeats before the instance exits.
 */
import jwt from 'jsonwebtoken';
import { sql } from 'kysely';
import { subscribe, type StreamEvent, type Subscription } from './support/event-stream';
import { freePort } from './support/free-port';
import { graphqlRequest, request, seriesValue, startPulseProcess, type PulseProcess } from './support/pulse-process';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { TEST_JWT_SECRET } from './support/test-server';

// Three processes start per test (a primary and two workers under tsx): slow on a busy machine.
jest.setTimeout(240_000);

const token = (userId: string) => jwt.sign({ sub: userId }, TEST_JWT_SECRET, { algorithm: 'HS256' });
const heartbeat = (port: number, userId: string) => request(port, 'POST', '/pulse', { headers: { authorization: `Bearer ${token(userId)}` } });
const scrape = async (port: number) => (await request(port, 'GET', '/metrics')).body;
const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => String(from + i));

let t: TestDatabase;
const running: PulseProcess[] = [];

beforeAll(async () => {
  t = await createTestDatabase();
});
afterEach(async () => {
  // A test that failed half-way still stops its instance.
  for (const pulse of running.splice(0)) {
    pulse.signal('SIGTERM');
    await pulse.exited;
  }
});
afterAll(() => t.destroy());

async function startCluster(env: Record<string, string> = {}): Promise<{ pulse: PulseProcess; port: number }> {
  const port = await freePort();
  const pulse = startPulseProcess({
    PULSE_WORKERS: '2',
    DATABASE_URL: t.url,
    PORT: String(port),
    HOST: '127.0.0.1',
    JWT_SECRET: TEST_JWT_SECRET,
    SHUTDOWN_DRAIN_MS: '0',
    DB_POOL_MAX: '3',
    ...env,
  });
  running.push(pulse);
  await pulse.waitFor('cluster: all 2 workers listening');
  return { pulse, port };
}

async function stop(pulse: PulseProcess): Promise<number | null> {
  running.splice(running.indexOf(pulse), 1);
  pulse.signal('SIGTERM');
  return pulse.exited;
}

async function rowsOf(userIds: string[]): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from pulse where user_id = any(${userIds}::bigint[])`.execute(t.db);
  return rows[0]!.n;
}

it('serves heartbeats and reads from both workers, carries events between them (PostgreSQL bus), and answers /metrics and /readyz for the instance', async () => {
  const { pulse, port } = await startCluster();
  const users = range(100_000, 20);

  const beats = [];
  for (const userId of users) beats.push(await heartbeat(port, userId));
  expect(beats.map((b) => b.status)).toEqual(users.map(() => 204));
  expect(new Set(beats.map((b) => b.worker))).toEqual(new Set(['1', '2']));

  // Each worker reads what both wrote.
  const query = `{ statuses(ids: ${JSON.stringify(users)}) { userId online } }`;
  const reads = [await graphqlRequest(port, query), await graphqlRequest(port, query)];
  expect(new Set(reads.map((r) => r.worker))).toEqual(new Set(['1', '2']));
  for (const read of reads) {
    expect(JSON.parse(read.body).data.statuses).toEqual(users.map((userId) => ({ userId, online: true })));
  }

  // Whichever worker answers /metrics, it answers for both.
  for (let i = 0; i < 2; i++) {
    const text = await scrape(port);
    expect(seriesValue(text, 'pulse_heartbeats_total{outcome="accepted"}')).toBe(20);
    expect(seriesValue(text, 'pulse_heartbeats_total{outcome="written"}')).toBe(20);
    const perWorker = ['1', '2'].map((w) => seriesValue(text, `pulse_worker_heartbeats_total{worker="${w}",outcome="accepted"}`));
    expect(perWorker[0]! + perWorker[1]!).toBe(20);
    expect(perWorker.every((n) => n > 0)).toBe(true);
    expect(seriesValue(text, 'pulse_cluster_workers{state="listening"}')).toBe(2);
    expect(text).toMatch(/^pulse_process_process_resident_memory_bytes\{worker="1"\} \d+/m);
    expect(text).toMatch(/^pulse_process_process_resident_memory_bytes\{worker="2"\} \d+/m);
  }

  const ready = await request(port, 'GET', '/readyz');
  expect(ready.status).toBe(200);
  expect(JSON.parse(ready.body)).toMatchObject({ ready: true, workers: [{ worker: 1, ready: true }, { worker: 2, ready: true }] });

  await expectEventsCrossWorkers(port, '200000');
  expect(await stop(pulse)).toBe(0);
});

const WATCH = 'subscription ($ids: [ID!]) { presenceChanged(ids: $ids) { userId online } }';

// Private: a subscriber on each worker watches `userId`; a heartbeat answered by
// one worker must reach the subscriber on the other. (Starting an instance costs
// three processes, so the PostgreSQL bus's case runs inside the first test.)
async function expectEventsCrossWorkers(port: number, userId: string): Promise<void> {
  const url = `http://127.0.0.1:${port}/graphql/stream`;
  const streams: Subscription[] = [];
  try {
    // Each open stream holds its own connection; open them until both workers hold one.
    const byWorker = new Map<string, Subscription>();
    for (let i = 0; i < 6 && byWorker.size < 2; i++) {
      const stream = await subscribe(url, WATCH, { variables: { ids: [userId] } });
      streams.push(stream);
      byWorker.set(stream.headers.get('x-pulse-worker')!, stream);
    }
    expect([...byWorker.keys()].sort()).toEqual(['1', '2']);
    const isOnline = (online: boolean) => (e: StreamEvent) => e.data?.presenceChanged?.userId === userId && e.data.presenceChanged.online === online;
    await Promise.all([...byWorker.values()].map((s) => s.next(isOnline(false))));

    const beat = await heartbeat(port, userId);
    expect(beat.status).toBe(204);
    const other = beat.worker === '1' ? '2' : '1';
    await expect(byWorker.get(other)!.next(isOnline(true))).resolves.toBeTruthy();
    await expect(byWorker.get(beat.worker!)!.next(isOnline(true))).resolves.toBeTruthy();
  } finally {
    for (const s of streams) s.close();
  }
}

if (process.env.TEST_REDIS_URL) {
  it('an event raised on one worker reaches a subscriber on the other (Redis bus)', async () => {
    const { pulse, port } = await startCluster({ REDIS_URL: process.env.TEST_REDIS_URL! });
    await expectEventsCrossWorkers(port, '210000');
    expect(await stop(pulse)).toBe(0);
  });
} else {
  it.skip('an event raised on one worker reaches a subscriber on the other (Redis bus: set TEST_REDIS_URL)', () => {});
}

it('replaces a worker killed with SIGKILL, and loses no acknowledged heartbeat', async () => {
  const { pulse, port } = await startCluster();
  const pid = Number(((await pulse.waitFor(/cluster: worker 1 started \(pid (\d+)\)/)) as RegExpMatchArray)[1]);

  const acknowledged: string[] = [];
  const afterReplacement = new Set<string>();
  let replaced = false;
  let killed = false;
  let nextUser = 300_000;
  // Four clients send heartbeats, each from a new user, until the replacement
  // has served some; a heartbeat cut off by the kill is not acknowledged.
  const client = async () => {
    while (!replaced || afterReplacement.size < 2 || acknowledged.length < 200) {
      const userId = String(nextUser++);
      try {
        const reply = await heartbeat(port, userId);
        if (reply.status === 204) {
          acknowledged.push(userId);
          if (replaced) afterReplacement.add(reply.worker!);
        }
      } catch {
        // ECONNRESET from the killed worker: the client would retry.
      }
      if (!killed && acknowledged.length >= 40) {
        killed = true;
        process.kill(pid, 'SIGKILL');
        void pulse.waitFor(/all 2 workers listening on port \d+ again/).then(() => (replaced = true));
      }
      if (nextUser > 320_000) throw new Error(`no replacement after 20,000 heartbeats:\n${pulse.output()}`);
    }
  };
  await Promise.all([client(), client(), client(), client()]);

  expect(pulse.output()).toMatch(/cluster: worker 1 \(pid \d+\) died \(signal SIGKILL\).*starting a replacement/);
  // Both the replacement and the survivor serve.
  expect([...afterReplacement].sort()).toEqual(['1', '2']);
  // Every acknowledged heartbeat was committed before it was acknowledged.
  expect(await rowsOf(acknowledged)).toBe(acknowledged.length);
  const text = await scrape(port);
  expect(seriesValue(text, 'pulse_cluster_worker_restarts_total{worker="1"}')).toBe(1);
  expect(await stop(pulse)).toBe(0);
});

it('on SIGTERM, every worker writes and answers its buffered heartbeats before the instance exits', async () => {
  // A batch window far longer than the time to the signal: the heartbeats are
  // still buffered in both workers when it arrives.
  const { pulse, port } = await startCluster({ HEARTBEAT_BATCH_WINDOW_MS: '1000' });
  const users = range(400_000, 20);
  const replies = users.map((userId) => heartbeat(port, userId));
  for (;;) {
    const text = await scrape(port);
    if (seriesValue(text, 'pulse_heartbeats_total{outcome="accepted"}') === 20) {
      const perWorker = ['1', '2'].map((w) => seriesValue(text, `pulse_worker_heartbeats_total{worker="${w}",outcome="accepted"}`));
      expect(perWorker.every((n) => n > 0)).toBe(true);
      break;
    }
  }
  const exitCode = stop(pulse);

  expect((await Promise.all(replies)).map((r) => r.status)).toEqual(users.map(() => 204));
  expect(await exitCode).toBe(0);
  expect(await rowsOf(users)).toBe(20);
  expect(pulse.output().match(/"worker":\d,"msg":"shutdown: done"/g)).toHaveLength(2);
  expect(pulse.output()).toContain('cluster: every worker has stopped; exiting with 0');
});

it('stops with exit code 1 when its workers cannot start', async () => {
  const pulse = startPulseProcess({
    PULSE_WORKERS: '2',
    DATABASE_URL: `postgres://root@127.0.0.1:${await freePort()}/nothing`,
    PORT: String(await freePort()),
    JWT_SECRET: TEST_JWT_SECRET,
    DB_CONNECTION_TIMEOUT_MS: '1000',
    DB_STARTUP_ATTEMPTS: '1',
  });
  running.push(pulse);
  expect(await pulse.exited).toBe(1);
  running.splice(running.indexOf(pulse), 1);
  expect(pulse.output()).toMatch(/Pulse could not start: the database at .* cannot be reached/);
  expect(pulse.output()).toMatch(/cluster: worker \d could not start \(exit code 1\); stopping/);
});
