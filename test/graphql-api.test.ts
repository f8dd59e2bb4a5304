/**
 * The GraphQL API end to end: a real server on a free port, real HTTP, a real
 * database. What a frontend or a curl user sees.
 */
import { sql } from 'kysely';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startTestServer, type TestServer } from './support/test-server';

let t: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  t = await createTestDatabase();
  server = await startTestServer({ DATABASE_URL: t.url, STATUSES_MAX_IDS: '1000' });
});
afterAll(async () => {
  await server.stop();
  await t.destroy();
});
beforeEach(async () => {
  await sql`truncate pulse`.execute(t.db);
  server.statements.length = 0;
});

const STATUS_FIELDS = 'userId online lastSeen';

describe('heartbeat', () => {
  it('marks the caller online and returns their status', async () => {
    const reply = await server.graphql(`mutation { heartbeat { ${STATUS_FIELDS} } }`, { token: server.token('42') });
    expect(reply.status).toBe(200);
    expect(reply.body.errors).toBeUndefined();
    expect(reply.body.data!.heartbeat).toMatchObject({ userId: '42', online: true });
    expect(reply.body.data!.heartbeat.lastSeen).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);

    const read = await server.graphql(`{ status(id: "42") { ${STATUS_FIELDS} } }`);
    expect(read.body.data!.status).toEqual(reply.body.data!.heartbeat);
  });

  it('takes no user id: the caller is whoever the token names', async () => {
    const reply = await server.graphql(`mutation { heartbeat(userId: "7") { userId } }`, { token: server.token('42') });
    expect(reply.body.errors![0]!.message).toMatch(/Unknown argument "userId"/);
    const { rows } = await sql`select user_id from pulse`.execute(t.db);
    expect(rows).toEqual([]);
  });
});

describe('statuses', () => {
  it('answers one entry per id, in input order, duplicates included', async () => {
    await server.graphql('mutation { heartbeat { userId } }', { token: server.token('2') });
    await t.setLastHeartbeat('3', 120);
    const reply = await server.graphql(`{ statuses(ids: ["3", "1", "2", "3"]) { ${STATUS_FIELDS} } }`);
    const statuses = reply.body.data!.statuses as Array<{ userId: string; online: boolean; lastSeen: string | null }>;
    expect(statuses.map((s) => s.userId)).toEqual(['3', '1', '2', '3']);
    expect(statuses.map((s) => s.online)).toEqual([false, false, true, false]);
    expect(statuses[1]!.lastSeen).toBeNull();
    expect(statuses[0]!.lastSeen).not.toBeNull();
    expect(statuses[3]).toEqual(statuses[0]);
  });

  it('accepts ids given as variables and as integer literals', async () => {
    const reply = await server.graphql('query ($ids: [ID!]!) { statuses(ids: $ids) { userId } a: status(id: 5) { userId } }', {
      variables: { ids: ['9223372036854775807'] },
    });
    expect(reply.body.data).toEqual({ statuses: [{ userId: '9223372036854775807' }], a: { userId: '5' } });
  });

  it('costs one SQL statement for any mix of statuses and aliased status fields', async () => {
    const reply = await server.graphql(`{
      a: status(id: "1") { online }
      b: status(id: "2") { online lastSeen }
      statuses(ids: ["3", "4", "1"]) { userId online }
      more: statuses(ids: ["5"]) { lastSeen }
    }`);
    expect(reply.body.errors).toBeUndefined();
    expect(server.statements.filter((s) => /\bpulse\b/.test(s))).toHaveLength(1);
    expect(server.statements).toHaveLength(1);
  });

  it('accepts exactly STATUSES_MAX_IDS ids and rejects one more', async () => {
    const ids = (n: number) => Array.from({ length: n }, (_, i) => String(i + 1));
    const ok = await server.graphql('query ($ids: [ID!]!) { statuses(ids: $ids) { userId } }', { variables: { ids: ids(1000) } });
    expect(ok.body.data!.statuses).toHaveLength(1000);

    const tooMany = await server.graphql('query ($ids: [ID!]!) { statuses(ids: $ids) { userId } }', { variables: { ids: ids(1001) } });
    expect(tooMany.body.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
    expect(tooMany.body.errors![0]!.message).toBe('Too many ids: 1001 given, at most 1000 per request');
  });
});

describe('bad ids', () => {
  it.each(['abc', '0', '-1', '1.5', '', '12345678901234567890', '9223372036854775808'])(
    'rejects %j with BAD_USER_INPUT naming the value, in status and statuses',
    async (bad) => {
      for (const query of ['query ($id: ID!) { status(id: $id) { userId } }', 'query ($id: ID!) { statuses(ids: ["1", $id]) { userId } }']) {
        const reply = await server.graphql(query, { variables: { id: bad } });
        expect(reply.status).toBe(200);
        expect(reply.body.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
        expect(reply.body.errors![0]!.message).toContain(`Invalid user id ${JSON.stringify(bad)}`);
      }
      expect(server.statements).toHaveLength(0);
    },
  );

  it('rejects a null in the id list as bad input, not an internal error', async () => {
    const reply = await server.graphql('query ($ids: [ID!]!) { statuses(ids: $ids) { userId } }', { variables: { ids: ['1', null] } });
    expect(reply.body.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
  });

  it('rejects a float literal at validation', async () => {
    const reply = await server.graphql('{ status(id: 1.5) { userId } }');
    expect(reply.body.errors![0]!.extensions!.code).toBe('GRAPHQL_VALIDATION_FAILED');
  });
});

describe('malformed requests', () => {
  it('answers malformed JSON with 400 and keeps serving', async () => {
    const response = await fetch(server.pulse.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"query": "{ status(id: \\"1\\") { userId } }"',
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { errors: Array<{ message: string }> }).errors[0]!.message).toMatch(/^Malformed JSON body/);
    expect((await server.graphql('{ status(id: "1") { userId } }')).body.data).toEqual({ status: { userId: '1' } });
  });

  it('refuses a body over the limit with 413', async () => {
    const response = await fetch(server.pulse.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: `{ status(id: "1") { userId } }`, padding: 'x'.repeat(2 * 1024 * 1024) }),
    });
    expect(response.status).toBe(413);
  });

  it('answers a syntax error as GRAPHQL_PARSE_FAILED, not an internal error', async () => {
    const reply = await server.graphql('{ status(id: "1") { userId }');
    expect(reply.status).toBe(400);
    expect(reply.body.errors![0]!.extensions!.code).toBe('GRAPHQL_PARSE_FAILED');
  });

  it('answers a subscription sent to /graphql with 400 naming /graphql/stream, not an internal error', async () => {
    const subscription = 'subscription { presenceChanged(ids: ["1"]) { userId state } }';
    const posted = await server.graphql(subscription);
    expect(posted.status).toBe(400);
    expect(posted.body.errors).toHaveLength(1);
    expect(posted.body.errors![0]!.extensions?.code).toBe('BAD_REQUEST');
    expect(posted.body.errors![0]!.message).toContain('/graphql/stream');
    // By GET, Apollo refuses any operation but a query first (405, Allow: POST).
    const got = await fetch(`${server.pulse.graphqlUrl}?query=${encodeURIComponent(subscription)}`, { headers: { 'apollo-require-preflight': 'true' } });
    expect(got.status).toBe(405);
    expect(got.headers.get('allow')).toBe('POST');
  });

  it('answers unknown paths with 404', async () => {
    const response = await fetch(server.pulse.graphqlUrl.replace('/graphql', '/nope'));
    expect(response.status).toBe(404);
  });
});
