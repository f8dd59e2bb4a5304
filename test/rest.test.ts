/**
 * The plain-HTTP endpoints over real HTTP: POST /pulse and /heartbeat, GET
 * /status/profile and /status/:id. Same rules, limits and errors as GraphQL, and
 * the same answers.
 */
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startTestServer, type TestServer } from './support/test-server';

let t: TestDatabase;
let server: TestServer;
let base: string;

beforeAll(async () => {
  t = await createTestDatabase();
  // A batch window, so that heartbeats sent together share statements even though
  // this idle test database answers each one faster than the next arrives (the
  // adaptive default would write most of them alone; heartbeat-batching.test.ts
  // covers that mode).
  server = await startTestServer({ DATABASE_URL: t.url, DB_STATEMENT_TIMEOUT_MS: '500', HEARTBEAT_BATCH_WINDOW_MS: '20' });
  base = server.pulse.graphqlUrl.replace(/\/graphql$/, '');
});
afterAll(async () => {
  await server.stop();
  await t.destroy();
});

async function request(method: string, path: string, token?: string) {
  const response = await fetch(`${base}${path}`, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
}

describe('POST /pulse and POST /heartbeat', () => {
  it.each(['/pulse', '/heartbeat'])('%s marks the token\'s user online and answers 204 with no body', async (path) => {
    const userId = path === '/pulse' ? '101' : '102';
    const reply = await request('POST', path, server.token(userId));
    expect(reply.status).toBe(204);
    expect(reply.body).toBeUndefined();
    const status = await request('GET', `/status/${userId}`);
    expect(status.body).toMatchObject({ userId, online: true });
  });

  it.each([
    ['no token', undefined, /Missing bearer token/],
    ['a forged token', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl', /signature verification failed/],
    ['garbage', 'not-a-jwt', /not a well-formed JWT/],
  ])('answers 401 UNAUTHENTICATED with %s, and writes nothing', async (_case, token, message) => {
    server.statements.length = 0;
    const reply = await request('POST', '/pulse', token);
    expect(server.statements).toEqual([]);
    expect(reply.status).toBe(401);
    expect(reply.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
    expect(reply.body.errors[0].message).toMatch(message);
  });

  it('answers 405 to other methods, naming the one to use', async () => {
    const reply = await request('GET', '/pulse');
    expect(reply.status).toBe(405);
    expect(reply.headers.get('allow')).toBe('POST');
    expect(reply.body.errors[0].message).toContain('use POST');
  });

  it('writes concurrent heartbeats of many users in far fewer statements than heartbeats', async () => {
    server.statements.length = 0;
    const users = Array.from({ length: 50 }, (_, i) => String(5000 + i));
    const replies = await Promise.all(users.map((u) => request('POST', '/pulse', server.token(u))));
    expect(replies.every((r) => r.status === 204)).toBe(true);
    const writes = server.statements.filter((s) => /insert into pulse/i.test(s));
    expect(writes.length).toBeGreaterThan(0);
    expect(writes.length).toBeLessThan(25);
    const statuses = await request('GET', `/status/profile?userId=${users.join(',')}`);
    expect(statuses.body.every((s: { online: boolean }) => s.online)).toBe(true);
  });
});

describe('GET /status/profile and GET /status/:id', () => {
  it('answers one status per id, in input order, duplicates included', async () => {
    await t.setLastHeartbeat('201', 0);
    await t.setLastHeartbeat('202', 600);
    const reply = await request('GET', '/status/profile?userId=202,999,201,202');
    expect(reply.status).toBe(200);
    expect(reply.body.map((s: { userId: string }) => s.userId)).toEqual(['202', '999', '201', '202']);
    expect(reply.body[1]).toEqual({ userId: '999', state: 'OFFLINE', online: false, lastSeen: null, statusText: null });
    expect(reply.body[0].online).toBe(false);
    expect(reply.body[0].lastSeen).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(reply.body[2].online).toBe(true);
  });

  it('agrees with GraphQL, field for field', async () => {
    await request('POST', '/pulse', server.token('301'));
    await t.setLastHeartbeat('302', 45);
    const ids = ['301', '302', '303'];
    const rest = await request('GET', `/status/profile?userId=${ids.join(',')}`);
    const graphql = await server.graphql('query ($ids: [ID!]!) { statuses(ids: $ids) { userId state online lastSeen statusText } }', { variables: { ids } });
    expect(rest.body).toEqual(graphql.body.data!.statuses);
    const single = await request('GET', '/status/302');
    expect(single.body).toEqual(graphql.body.data!.statuses[1]);
  });

  it.each([
    ['/status/abc', '"abc"'],
    ['/status/0', '"0"'],
    ['/status/-1', '"-1"'],
    ['/status/12345678901234567890', '"12345678901234567890"'],
    ['/status/profile?userId=1,1.5', '"1.5"'],
    ['/status/profile?userId=1,,2', '""'],
    ['/status/%zz', '"%zz"'],
  ])('answers 400 BAD_USER_INPUT for %s, naming the bad value', async (path, named) => {
    const reply = await request('GET', path);
    expect(reply.status).toBe(400);
    expect(reply.body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
    expect(reply.body.errors[0].message).toContain(`Invalid user id ${named}`);
  });

  it('answers 400 when no id or more ids than allowed are asked for', async () => {
    const none = await request('GET', '/status/profile');
    expect(none.status).toBe(400);
    expect(none.body.errors[0].message).toContain('Missing userId');
    const many = Array.from({ length: 1001 }, (_, i) => i + 1).join(',');
    const tooMany = await request('GET', `/status/profile?userId=${many}`);
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.errors[0].message).toBe('Too many ids: 1001 given, at most 1000 per request');
  });
});

describe('privacy', () => {
  it('shows each reader what GraphQL shows them: hidden from anonymous readers, the truth to the user', async () => {
    const owner = server.token('601');
    await request('POST', '/pulse', owner);
    const hide = await server.graphql('mutation { updatePrivacy(visibility: NOBODY) { visibility } }', { token: owner });
    expect(hide.body.data).toEqual({ updatePrivacy: { visibility: 'NOBODY' } });

    const anonymous = await request('GET', '/status/601');
    expect(anonymous.body).toEqual({ userId: '601', state: 'OFFLINE', online: false, lastSeen: null, statusText: null });
    const other = await request('GET', '/status/profile?userId=601', server.token('602'));
    expect(other.body).toEqual([anonymous.body]);
    const self = await request('GET', '/status/601', owner);
    expect(self.body).toMatchObject({ userId: '601', state: 'ONLINE', online: true });
    const graphql = await server.graphql('{ status(id: "601") { userId state online lastSeen statusText } }', { token: owner });
    expect(self.body).toEqual(graphql.body.data!.status);
  });
});

describe('when the database cannot write', () => {
  it('answers 503 UNAVAILABLE with Retry-After, and the next heartbeat succeeds', async () => {
    const locker = new pg.Client({ connectionString: t.url });
    await locker.connect();
    let during;
    try {
      await locker.query('begin');
      await locker.query('lock table pulse in exclusive mode');
      during = await request('POST', '/pulse', server.token('401'));
    } finally {
      await locker.query('rollback');
      await locker.end();
    }
    expect(during.status).toBe(503);
    expect(during.headers.get('retry-after')).toBe('1');
    expect(during.body.errors[0].extensions.code).toBe('UNAVAILABLE');
    const after = await request('POST', '/pulse', server.token('402'));
    expect(after.status).toBe(204);
  });
});
