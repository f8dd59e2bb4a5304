/**
 * `npm start` as a process: what it logs, how it fails, how it stops.
 */
import jwt from 'jsonwebtoken';
import { sql } from 'kysely';
import { freePort } from './support/free-port';
import { startPulseProcess } from './support/pulse-process';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { TEST_JWT_SECRET } from './support/test-server';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(() => t.destroy());

it('logs the database and the address, serves, and exits 0 on SIGTERM', async () => {
  const port = await freePort();
  const pulse = startPulseProcess({ DATABASE_URL: t.url, PORT: String(port), HOST: '127.0.0.1', JWT_SECRET: TEST_JWT_SECRET, SHUTDOWN_DRAIN_MS: '0' });
  await pulse.waitFor('Pulse is listening');
  expect(pulse.output()).toContain(`database: ${t.url.replace(/^postgres:\/\//, 'postgres://')}`);
  expect(pulse.output()).toContain(`GraphQL at http://localhost:${port}/graphql`);

  const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: '{ status(id: "1") { online } }' }),
  });
  expect(await response.json()).toEqual({ data: { status: { online: false } } });

  pulse.signal('SIGTERM');
  expect(await pulse.exited).toBe(0);
  expect(pulse.output()).toContain('shutdown: done');
});

it('prints every configuration problem and exits 1', async () => {
  const pulse = startPulseProcess({ PORT: 'x', DB_POOL_MAX: '-3' });
  expect(await pulse.exited).toBe(1);
  expect(pulse.output()).toContain('PORT: expected a whole number');
  expect(pulse.output()).toContain('DB_POOL_MAX: expected at least 1');
});

it('says the database cannot be reached, without a stack trace, and exits 1', async () => {
  const port = await freePort(); // nothing listens there
  const pulse = startPulseProcess({ DATABASE_URL: `postgres://root@127.0.0.1:${port}/nothing`, PORT: String(await freePort()), JWT_SECRET: TEST_JWT_SECRET, DB_CONNECTION_TIMEOUT_MS: '1000', DB_STARTUP_ATTEMPTS: '2' });
  expect(await pulse.exited).toBe(1);
  expect(pulse.output()).toMatch(/not reachable yet \(connect ECONNREFUSED .*\); retrying in 0.5 s \(attempt 1 of 2\)/);
  expect(pulse.output()).toMatch(/Pulse could not start: the database at .* cannot be reached \(connect ECONNREFUSED .*check DATABASE_URL/);
  expect(pulse.output()).not.toMatch(/\n\s+at /);
});

it('refuses to start in production without JWT_SECRET', async () => {
  const pulse = startPulseProcess({ NODE_ENV: 'production', DATABASE_URL: t.url });
  expect(await pulse.exited).toBe(1);
  expect(pulse.output()).toContain('JWT_SECRET: required when NODE_ENV=production');
});

it('on SIGTERM under load, finishes every request already sent, ignores a second signal, and exits 0', async () => {
  const port = await freePort();
  const pulse = startPulseProcess({ DATABASE_URL: t.url, PORT: String(port), HOST: '127.0.0.1', JWT_SECRET: TEST_JWT_SECRET, SHUTDOWN_DRAIN_MS: '1000' });
  await pulse.waitFor('Pulse is listening');

  interface Outcome {
    sentBeforeSignal: boolean;
    status?: number;
    error?: string;
  }
  const outcomes: Outcome[] = [];
  let signalled = false;
  const worker = async (w: number) => {
    for (let i = 0; i < 300; i++) {
      const outcome: Outcome = { sentBeforeSignal: !signalled };
      outcomes.push(outcome);
      try {
        const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query: `{ statuses(ids: ["${w}", "${i + 1}"]) { online } }` }),
        });
        await response.text();
        outcome.status = response.status;
      } catch (error) {
        outcome.error = (error as { cause?: { code?: string } }).cause?.code ?? String(error);
        // Once the listener has closed, new work is declined: stop sending.
        if (signalled) return;
      }
      if (outcomes.length === 100 && !signalled) {
        signalled = true;
        pulse.signal('SIGTERM');
        // A second, impatient signal once the first is being handled.
        void pulse.waitFor('SIGTERM received: shutting down').then(() => pulse.signal('SIGTERM'));
      }
    }
  };
  await Promise.all(Array.from({ length: 20 }, (_, w) => worker(w + 1)));

  expect(await pulse.exited).toBe(0);
  const before = outcomes.filter((o) => o.sentBeforeSignal);
  const after = outcomes.filter((o) => !o.sentBeforeSignal);
  expect(before.length).toBeGreaterThanOrEqual(100);
  // Everything sent before the signal was answered, successfully.
  expect(before.filter((o) => o.status !== 200)).toEqual([]);
  // During the drain window the server kept answering; what it answered, it
  // answered successfully. What came after the listener closed was declined.
  expect(after.filter((o) => o.status === 200).length).toBeGreaterThan(0);
  expect(after.filter((o) => o.status !== undefined && o.status !== 200)).toEqual([]);
  expect(pulse.output()).toContain('SIGTERM received while shutting down; still finishing');
  expect(pulse.output()).toContain('shutdown: done');
});

it('on SIGTERM, writes the heartbeats still waiting for their batch and answers them before exiting', async () => {
  const port = await freePort();
  // A batch window far longer than the time to the signal: the heartbeats are
  // still buffered when it arrives, so only the shutdown flush can write them.
  const pulse = startPulseProcess({
    DATABASE_URL: t.url,
    PORT: String(port),
    HOST: '127.0.0.1',
    JWT_SECRET: TEST_JWT_SECRET,
    SHUTDOWN_DRAIN_MS: '0',
    HEARTBEAT_BATCH_WINDOW_MS: '1000',
  });
  await pulse.waitFor('Pulse is listening');
  const userIds = Array.from({ length: 20 }, (_, i) => String(700_000 + i));
  const replies = userIds.map(async (userId) => {
    const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${jwt.sign({ sub: userId }, TEST_JWT_SECRET, { algorithm: 'HS256' })}` },
      body: JSON.stringify({ query: 'mutation { heartbeat { userId online } }' }),
    });
    return { status: response.status, body: (await response.json()) as { data: { heartbeat: unknown } } };
  });
  // Signal once the server holds all 20 (accepted, none answered yet).
  for (;;) {
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    if (/^pulse_heartbeats_total\{outcome="accepted"\} 20$/m.test(metrics)) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  pulse.signal('SIGTERM');

  const answered = await Promise.all(replies);
  expect(await pulse.exited).toBe(0);
  expect(pulse.output()).toContain('writing buffered heartbeats (20)');
  expect(answered.map((r) => r.status)).toEqual(userIds.map(() => 200));
  expect(answered.map((r) => r.body.data.heartbeat)).toEqual(userIds.map((userId) => ({ userId, online: true })));
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from pulse where user_id = any(${userIds}::bigint[])`.execute(t.db);
  expect(rows[0]!.n).toBe(20);
});
