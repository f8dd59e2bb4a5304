/**
 * What reaches the logs: unexpected errors with their cause and the request id,
 * masked for the caller; never a token.
 */
import { sql } from 'kysely';
import { createLogger } from '../src/logger';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startTestServer, type TestServer } from './support/test-server';

let t: TestDatabase;
let server: TestServer;
const lines: string[] = [];

beforeAll(async () => {
  t = await createTestDatabase();
  server = await startTestServer({ DATABASE_URL: t.url }, createLogger('debug', (line) => lines.push(line)));
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

it('never writes a bearer token to the logs', async () => {
  const token = server.token('42');
  await server.graphql('mutation { heartbeat { online } }', { token });
  await server.graphql('mutation { heartbeat { online } }', { token: `${token}tampered` });
  expect(lines.length).toBeGreaterThan(0);
  expect(lines.join('\n')).not.toContain(token.split('.')[2]);
});
