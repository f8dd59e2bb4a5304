/**
 * Faults, caused on purpose: connections killed, a database that stalls, a
 * database that restarts. The process stays up, callers get a clear UNAVAILABLE
 * instead of a hang, and service resumes by itself.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { sql } from 'kysely';
import { createPool } from '../src/db/database';
import { startEmbeddedPostgres } from '../src/db/embedded-postgres';
import { createLogger, silentLogger } from '../src/logger';
import { freePort } from './support/free-port';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startTestServer, type GraphQLReply, type TestServer } from './support/test-server';
import { eventually } from './support/eventually';

const STATUS = '{ status(id: "1") { userId } }';
const ok = (reply: GraphQLReply) => reply.status === 200 && !reply.body.errors;
const code = (reply: GraphQLReply) => reply.body.errors?.[0]?.extensions?.code;
// Private: a pool gauge as the server's /metrics would report it now.
const poolGauge = async (server: TestServer, name: string) => (await server.pulse.metrics.registry.getSingleMetric(name)!.get()).values[0]!.value;

describe('on a shared database', () => {
  let t: TestDatabase;
  let server: TestServer;

  beforeAll(async () => {
    t = await createTestDatabase();
    server = await startTestServer({ DATABASE_URL: t.url, DB_POOL_MAX: '2', DB_POOL_MAX_WAITING: '2', DB_STATEMENT_TIMEOUT_MS: '500' });
  });
  afterAll(async () => {
    await server.stop();
    await t.destroy();
  });

  it('survives its idle connections being terminated, and the next request succeeds', async () => {
    await Promise.all([1, 2, 3, 4].map(() => server.graphql(STATUS))); // open both pool connections
    const admin = new pg.Client({ connectionString: t.url });
    await admin.connect();
    try {
      const { rowCount } = await admin.query(
        "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'pulse' and datname = current_database() and pid <> pg_backend_pid()",
      );
      expect(rowCount).toBeGreaterThan(0);
      await eventually('the terminated backends to be gone', async () => {
        const { rows } = await admin.query("select count(*)::int as n from pg_stat_activity where application_name = 'pulse' and datname = current_database()");
        return rows[0].n === 0;
      }, 20_000);
    } finally {
      await admin.end();
    }
    // The pool drops an idle client when its socket reports the server's goodbye;
    // the request below must be served by a fresh connection, not a dead one.
    await eventually('the pool to drop the terminated connections', async () => (await poolGauge(server, 'pulse_db_pool_idle')) === 0);
    const reply = await server.graphql(STATUS);
    expect(ok(reply)).toBe(true);
  });

  it('survives losing a connection while it is checked out, logs it once, and the next query gets a fresh one', async () => {
    const lines: string[] = [];
    const pool = createPool({
      url: t.url,
      poolMax: 1,
      connectionTimeoutMs: 2_000,
      statementTimeoutMs: 2_000,
      logger: createLogger('warn', (line) => lines.push(line)),
    });
    try {
      // Held between statements, as a session (retention's advisory lock) holds
      // it, or as a query's client is between its answer and its release.
      const client = await pool.connect();
      const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
      const ended = new Promise((resolve) => client.once('end', resolve));
      const admin = new pg.Client({ connectionString: t.url });
      await admin.connect();
      try {
        await admin.query('select pg_terminate_backend($1)', [rows[0]!.pid]);
      } finally {
        await admin.end();
      }
      await ended;
      client.release();

      const after = await pool.query<{ pid: number }>('select pg_backend_pid() as pid');
      expect(after.rows[0]!.pid).not.toBe(rows[0]!.pid);
      const lost = lines.map((l) => JSON.parse(l)).filter((e) => e.msg === 'database: connection lost');
      expect(lost).toHaveLength(1);
      expect(lost[0].error).toMatchObject({ code: '57P01', message: expect.stringMatching(/terminating connection/) });
    } finally {
      await pool.end();
    }
  });

  it('answers UNAVAILABLE (503) when a statement outlives the statement timeout, sheds the overflow, and does not wedge', async () => {
    const locker = new pg.Client({ connectionString: t.url });
    await locker.connect();
    await locker.query('begin');
    await locker.query('lock table pulse in access exclusive mode');
    let replies: GraphQLReply[];
    try {
      replies = await Promise.all(Array.from({ length: 12 }, () => server.graphql(STATUS)));
    } finally {
      await locker.query('rollback');
      await locker.end();
    }
    // Every request got an answer: either the statement timed out (UNAVAILABLE
    // from the database) or it was shed before queueing (UNAVAILABLE, overloaded).
    expect(replies.every((r) => r.status === 503 && code(r) === 'UNAVAILABLE')).toBe(true);
    expect(replies.some((r) => /overloaded/.test(r.body.errors![0]!.message))).toBe(true);
    expect(replies.some((r) => /database is unavailable/.test(r.body.errors![0]!.message))).toBe(true);

    const after = await Promise.all(Array.from({ length: 4 }, () => server.graphql(STATUS)));
    expect(after.every(ok)).toBe(true);
  });

  it('answers a heartbeat whose status fields cannot be read with UNAVAILABLE (503, Retry-After), as every other path does', async () => {
    // The write touches only pulse; the status read also joins presence_settings,
    // which is locked past the statement timeout.
    const locker = new pg.Client({ connectionString: t.url });
    await locker.connect();
    await locker.query('begin');
    await locker.query('lock table presence_settings in access exclusive mode');
    try {
      const answers = await Promise.all([
        fetch(server.pulse.graphqlUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${server.token('77')}` },
          body: JSON.stringify({ query: 'mutation { heartbeat { userId online state statusText } }' }),
        }),
        fetch(server.pulse.graphqlUrl.replace('/graphql', '/status/77')),
      ]);
      for (const response of answers) {
        const body = (await response.json()) as GraphQLReply['body'];
        expect({ status: response.status, retryAfter: response.headers.get('retry-after'), code: body.errors?.[0]?.extensions?.code }).toEqual({
          status: 503,
          retryAfter: '1',
          code: 'UNAVAILABLE',
        });
      }
    } finally {
      await locker.query('rollback');
      await locker.end();
    }
  });

  it('tells a shed or failed client when to retry', async () => {
    const locker = new pg.Client({ connectionString: t.url });
    await locker.connect();
    await locker.query('begin');
    await locker.query('lock table pulse in access exclusive mode');
    try {
      const response = await fetch(server.pulse.graphqlUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: STATUS }),
      });
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('1');
    } finally {
      await locker.query('rollback');
      await locker.end();
    }
  });
});

describe('a database restart', () => {
  it('fails requests fast with UNAVAILABLE during the outage, resumes by itself, and loses no acknowledged heartbeat', async () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-restart-'));
    fs.chmodSync(folder, 0o755);
    const clusterDir = path.join(folder, 'postgres');
    const port = await freePort();
    let database = await startEmbeddedPostgres({ clusterDir, port, logger: silentLogger });
    const server = await startTestServer({ DATABASE_URL: database.url, DB_CONNECTION_TIMEOUT_MS: '1000' });
    const acknowledged = new Set<string>();
    let next = 1;
    const heartbeat = async () => {
      const userId = String(next++);
      const reply = await server.graphql('mutation { heartbeat { userId } }', { token: server.token(userId) });
      if (ok(reply)) acknowledged.add(userId);
      return reply;
    };

    try {
      for (let i = 0; i < 20; i++) expect(ok(await heartbeat())).toBe(true);

      await database.stop();
      const during = [await heartbeat(), await heartbeat(), await server.graphql(STATUS)];
      for (const reply of during) {
        expect(reply.status).toBe(503);
        expect(code(reply)).toBe('UNAVAILABLE');
      }

      database = await startEmbeddedPostgres({ clusterDir, port, logger: silentLogger });
      await eventually('service to resume', async () => ok(await heartbeat()), 20_000);
      for (let i = 0; i < 20; i++) await heartbeat();

      const { rows } = await sql<{ user_id: string }>`select user_id from pulse`.execute(server.pulse.db);
      const stored = new Set(rows.map((r) => r.user_id));
      const missing = [...acknowledged].filter((id) => !stored.has(id));
      expect(acknowledged.size).toBeGreaterThanOrEqual(40);
      expect(missing).toEqual([]);
    } finally {
      await server.stop();
      await database.stop();
      fs.rmSync(folder, { recursive: true, force: true });
    }
  });
});

describe('a database that is away when a subscription starts', () => {
  it('answers the stream and Apollo multipart subscriptions 503 UNAVAILABLE with Retry-After, keeps nothing, and serves them once it is back', async () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-stream-outage-'));
    fs.chmodSync(folder, 0o755);
    const clusterDir = path.join(folder, 'postgres');
    const port = await freePort();
    let database = await startEmbeddedPostgres({ clusterDir, port, logger: silentLogger });
    const server = await startTestServer({ DATABASE_URL: database.url, DB_CONNECTION_TIMEOUT_MS: '1000' });
    const body = JSON.stringify({ query: 'subscription ($ids: [ID!]) { presenceChanged(ids: $ids) { userId online } }', variables: { ids: ['1', '2'] } });
    const open = (accept: string, path: string) =>
      fetch(`${server.pulse.graphqlUrl.replace('/graphql', '')}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', accept }, body });
    const sse = () => open('text/event-stream', '/graphql/stream');
    const multipart = () => open('multipart/mixed;subscriptionSpec="1.0", application/json', '/graphql');
    try {
      await database.stop();
      for (const refused of [await sse(), await multipart()]) {
        expect(refused.status).toBe(503);
        expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
        const answer = (await refused.json()) as { errors: Array<{ message: string; extensions: { code: string } }> };
        expect(answer.errors[0]!.extensions.code).toBe('UNAVAILABLE');
        expect(answer.errors[0]!.message).toMatch(/database is unavailable/);
      }
      // Nothing is watched for the refused subscriptions.
      expect(server.pulse.live.size).toEqual({ subscriptions: 0, watchedUsers: 0, deadlines: 0 });

      database = await startEmbeddedPostgres({ clusterDir, port, logger: silentLogger });
      const served = await eventually('the stream to be served again', async () => {
        const response = await sse();
        if (response.status === 200) return response;
        await response.body?.cancel();
        return undefined;
      }, 30_000);
      expect(served.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const reader = served.body!.getReader();
      let text = '';
      while (!text.includes('"userId":"2"')) text += new TextDecoder().decode((await reader.read()).value);
      expect(text).toContain('event: next');
      await reader.cancel();
    } finally {
      await server.stop();
      await database.stop();
      fs.rmSync(folder, { recursive: true, force: true });
    }
  });
});
