/**
 * What reaches the logs: unexpected errors with their cause and the request id,
 * masked for the caller; never a token.
 */
import pg from 'pg';
import { sql } from 'kysely';
import { createLogger } from '../src/logger';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startTestServer, type TestServer } from './support/test-server';
import { eventually } from './support/eventually';

let t: TestDatabase;
let server: TestServer;
const lines: string[] = [];
const logger = createLogger('debug', (line) => lines.push(line));

beforeAll(async () => {
  t = await createTestDatabase();
  server = await startTestServer({ DATABASE_URL: t.url }, logger);
});
afterAll(async () => {
  await server.stop();
  await t.destroy();
});

it('masks an unexpected error for the caller and logs its cause with the request id', async () => {
  await sql`alter table pulse rename to pulse_elsewhere`.execute(t.db);
  try {
    const response = await fetch(server.pulse.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'req-123' },
      body: JSON.stringify({ query: '{ status(id: "1") { online } }' }),
    });
    expect(response.headers.get('x-request-id')).toBe('req-123');
    const body = (await response.json()) as { errors: Array<{ message: string; extensions: { code: string } }> };
    expect(body.errors[0]).toMatchObject({ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } });
    expect(JSON.stringify(body)).not.toMatch(/pulse|relation|select/i);

    const logged = lines.map((l) => JSON.parse(l)).find((e) => e.msg === 'graphql: internal error');
    expect(logged).toMatchObject({ level: 'error', requestId: 'req-123', error: { message: expect.stringMatching(/relation "pulse" does not exist/) } });
  } finally {
    await sql`alter table pulse_elsewhere rename to pulse`.execute(t.db);
  }
});

it('gives every response a request id, and a made-up one is replaced when it is not an id', async () => {
  const plain = await fetch(server.pulse.graphqlUrl.replace('/graphql', '/healthz'));
  expect(plain.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  const hostile = await fetch(server.pulse.graphqlUrl.replace('/graphql', '/healthz'), { headers: { 'x-request-id': 'a b\u00e9<script>' } });
  expect(hostile.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
});

it('makes no request logger for a GraphQL request that logs nothing', async () => {
  const child = jest.spyOn(logger, 'child');
  try {
    const answer = await server.graphql('mutation { heartbeat { online } }', { token: server.token('43') });
    expect(answer.body).toMatchObject({ data: { heartbeat: { online: true } } });
    expect(child.mock.calls.filter(([bindings]) => 'requestId' in bindings)).toEqual([]);
  } finally {
    child.mockRestore();
  }
});

it('never writes a bearer token to the logs', async () => {
  const token = server.token('42');
  await server.graphql('mutation { heartbeat { online } }', { token });
  await server.graphql('mutation { heartbeat { online } }', { token: `${token}tampered` });
  expect(lines.length).toBeGreaterThan(0);
  expect(lines.join('\n')).not.toContain(token.split('.')[2]);
});

it('logs a lost database connection as the error alone (type, message, SQLSTATE, stack), not the client it belonged to', async () => {
  // Both pool connections busy at once, then idle: terminate them there.
  await Promise.all([1, 2, 3].map(() => server.graphql('{ status(id: "1") { online } }')));
  const admin = new pg.Client({ connectionString: t.url });
  await admin.connect();
  try {
    await admin.query("select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'pulse' and datname = current_database()");
  } finally {
    await admin.end();
  }
  const line = await eventually('the connection loss to be logged', () => lines.find((l) => l.includes('"database: connection lost"')));
  const logged = JSON.parse(line);
  expect(Object.keys(logged.error).sort()).toEqual(['code', 'message', 'stack', 'type']);
  expect(logged.error).toMatchObject({ type: 'DatabaseError', code: '57P01', message: expect.stringMatching(/terminating connection/) });
  expect(line).not.toContain('application_name');
  expect(line.length).toBeLessThan(4000);
});

it('never writes a password or a token, wherever it hides', () => {
  const out: string[] = [];
  const logger = createLogger('debug', (l) => out.push(l));
  const url = 'postgres://pulse:s3cret-pw@db.internal:5432/pulse';
  const token = server.token('42');
  let badUrl: unknown;
  try {
    new URL('postgres://pulse:s3cret-pw@db.internal:port/pulse');
  } catch (error) {
    badUrl = error; // Node keeps the whole input on the error, as `input`
  }
  logger.error(`could not reach ${url}`, {
    error: new Error(`connect to ${url} failed`, { cause: badUrl }),
    url,
    settings: { conninfo: 'host=db.internal user=pulse password=s3cret-pw', nested: [{ header: `Bearer ${token}` }] },
  });
  logger.child({ url }).warn(`token ${token} refused`);
  const text = out.join('\n');
  expect(text).not.toContain('s3cret-pw');
  expect(text).not.toContain(token.split('.')[1]);
  // What an operator needs stays: who, where, what went wrong.
  expect(text).toContain('postgres://pulse:***@db.internal:5432/pulse');
  expect(JSON.parse(out[0]!).error.cause).toMatchObject({ type: 'TypeError', code: 'ERR_INVALID_URL', message: 'Invalid URL' });
});

