/**
 * A catalogue of hostile or broken requests. Each is refused with a clear error
 * (never a 500), and the server keeps serving.
 */
import { createEmptyDatabase, createTestDatabase, type TestDatabase } from './support/test-database';
import { startTestServer, type TestServer } from './support/test-server';

let t: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  t = await createTestDatabase();
  server = await startTestServer({ DATABASE_URL: t.url });
});
afterAll(async () => {
  await server.stop();
  await t.destroy();
});
afterEach(async () => {
  // Whatever the case did, the server still answers a plain question.
  const reply = await server.graphql('{ status(id: "1") { userId } }');
  expect(reply.body.data).toEqual({ status: { userId: '1' } });
});

async function raw(init: RequestInit & { path?: string; search?: string }) {
  const url = server.pulse.graphqlUrl.replace('/graphql', init.path ?? '/graphql') + (init.search ?? '');
  const response = await fetch(url, init);
  const text = await response.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: response.status, body };
}

const json = (body: unknown): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const code = (body: any) => body?.errors?.[0]?.extensions?.code;

const aliases = (n: number) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: status(id: "1") { online }`).join(' ')} }`;

it('refuses 1,000 aliases', async () => {
  const reply = await raw(json({ query: aliases(1000) }));
  expect(reply.status).toBe(400);
  // So many aliases exceed the token limit before validation counts them.
  expect(code(reply.body)).toBe('GRAPHQL_PARSE_FAILED');
});

it('refuses more aliases than the alias limit at validation', async () => {
  const reply = await raw(json({ query: aliases(100) }));
  expect(reply.status).toBe(400);
  expect(code(reply.body)).toBe('GRAPHQL_VALIDATION_FAILED');
  expect(reply.body.errors[0].message).toMatch(/aliases/i);
});

it('refuses a query 20 levels deep', async () => {
  let selection = 'name';
  for (let i = 0; i < 18; i++) selection = `ofType { ${selection} }`;
  const reply = await raw(json({ query: `{ __schema { types { fields { type { ${selection} } } } } }` }));
  expect(reply.status).toBe(400);
  expect(code(reply.body)).toBe('GRAPHQL_VALIDATION_FAILED');
  expect(reply.body.errors[0].message).toMatch(/depth/i);
});

it('stops parsing a document with too many tokens', async () => {
  const reply = await raw(json({ query: `{ status(id: "1") { ${'userId '.repeat(5000)} } }` }));
  expect(reply.status).toBe(400);
  expect(code(reply.body)).toBe('GRAPHQL_PARSE_FAILED');
  expect(reply.body.errors[0].message).toMatch(/Document contains more (than|that) \d+ tokens/);
});

it('refuses 100k tokens and a 5 MB body by size, without reading them whole', async () => {
  for (const body of [JSON.stringify({ query: `{ ${'__typename '.repeat(100_000)} }` }), 'x'.repeat(5 * 1024 * 1024)]) {
    const reply = await raw({ method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(reply.status).toBe(413);
    expect(reply.body.errors[0].message).toMatch(/Request body too large/);
  }
});

it('refuses a JSON array of operations (no HTTP batching)', async () => {
  const reply = await raw(json([{ query: '{ status(id: "1") { online } }' }, { query: '{ status(id: "2") { online } }' }]));
  expect(reply.status).toBe(400);
  expect(JSON.stringify(reply.body)).toMatch(/batch/i);
});

it('refuses a mutation over GET', async () => {
  const reply = await raw({ method: 'GET', search: `?query=${encodeURIComponent('mutation { heartbeat { online } }')}`, headers: { 'apollo-require-preflight': 'true' } });
  expect(reply.status).toBe(405);
});

it('refuses text/plain without a CSRF-safe header', async () => {
  const reply = await raw({ method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ query: '{ status(id: "1") { online } }' }) });
  expect(reply.status).toBe(400);
  expect(JSON.stringify(reply.body)).toMatch(/CSRF/);
});

it('refuses variables of the wrong type as BAD_USER_INPUT', async () => {
  for (const variables of [{ ids: { a: 1 } }, { ids: [true] }, { ids: [[1]] }]) {
    const reply = await raw(json({ query: 'query ($ids: [ID!]!) { statuses(ids: $ids) { userId } }', variables }));
    expect(code(reply.body)).toBe('BAD_USER_INPUT');
  }
});

it('refuses nulls in an id list, as a variable or inline, and keeps serving', async () => {
  for (const ids of [[null], ['1', null]]) {
    const reply = await raw(json({ query: 'query ($ids: [ID!]!) { statuses(ids: $ids) { userId } }', variables: { ids } }));
    expect(code(reply.body)).toBe('BAD_USER_INPUT');
    expect(reply.body.errors[0].message).toMatch(/ids.*non-nullable|null/i);
  }
  const inline = await raw(json({ query: '{ statuses(ids: ["1", null]) { userId } }' }));
  expect(inline.status).toBe(400);
  expect(code(inline.body)).toBe('GRAPHQL_VALIDATION_FAILED');
  const after = await raw(json({ query: '{ statuses(ids: ["1"]) { userId } }' }));
  expect(after.body.data.statuses).toEqual([{ userId: '1' }]);
});

it('refuses 10,000 ids', async () => {
  const ids = Array.from({ length: 10_000 }, (_, i) => String(i + 1));
  const reply = await raw(json({ query: 'query ($ids: [ID!]!) { statuses(ids: $ids) { userId } }', variables: { ids } }));
  expect(code(reply.body)).toBe('BAD_USER_INPUT');
  expect(reply.body.errors[0].message).toBe('Too many ids: 10000 given, at most 1000 per request');
});

it.each(["1; drop table pulse", "1' or '1'='1", '١٢٣', '𝟙𝟚𝟛', 'é', '\u0000'])('refuses the id %j, naming it', async (id) => {
  const reply = await raw(json({ query: 'query ($id: ID!) { status(id: $id) { userId } }', variables: { id } }));
  expect(code(reply.body)).toBe('BAD_USER_INPUT');
  expect(reply.body.errors[0].message).toContain(`Invalid user id ${JSON.stringify(id)}`);
});

it('does not suggest field names to a caller who guesses', async () => {
  const reply = await raw(json({ query: '{ statu(id: "1") { online } }' }));
  expect(code(reply.body)).toBe('GRAPHQL_VALIDATION_FAILED');
  expect(reply.body.errors[0].message).not.toMatch(/Did you mean/);
});

it('refuses a body that is not an object', async () => {
  for (const body of ['"just a string"', '42', 'null']) {
    const reply = await raw({ method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(reply.status).toBe(400);
  }
});

describe('in production', () => {
  it('hides the schema from introspection', async () => {
    const production = await startTestServer({ DATABASE_URL: t.url, NODE_ENV: 'production' });
    try {
      const reply = await production.graphql('{ __schema { types { name } } }');
      expect(reply.body.errors![0]!.message).toMatch(/introspection/i);
    } finally {
      await production.stop();
    }
  });
});

describe('health', () => {
  it('answers /healthz and /readyz when the schema is current', async () => {
    expect((await raw({ path: '/healthz' })).status).toBe(200);
    const ready = await raw({ path: '/readyz' });
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ ready: true, database: 'ok', pendingMigrations: [] });
  });

  it('is not ready while migrations are pending', async () => {
    const empty = await createEmptyDatabase();
    const unmigrated = await startTestServer({ DATABASE_URL: empty.url, MIGRATE_ON_START: 'false' });
    try {
      const response = await fetch(unmigrated.pulse.graphqlUrl.replace('/graphql', '/readyz'));
      expect(response.status).toBe(503);
      expect(await response.json()).toMatchObject({ ready: false, database: 'ok', pendingMigrations: expect.arrayContaining(['2026-11-22-0001-create-pulse']) });
    } finally {
      await unmigrated.stop();
      await empty.drop();
    }
  });
});

describe('SQL-looking and unicode text in names and search', () => {
  const sqlish = ["Robert'); drop table users; --", "x' or '1'='1", 'a%_\\', '٣ 𝟙 é 名前 🙂'];

  it.each(sqlish)('stores the name %j as text, finds it, and touches nothing else', async (name) => {
    const created = await raw(json({ query: 'mutation ($n: String!) { createUser(name: $n) { user { name } } }', variables: { n: name } }));
    expect(created.body.data.createUser.user.name).toBe(name);
    const found = await raw(json({ query: 'query ($q: String!) { searchUsers(query: $q) { edges { node { name } } } }', variables: { q: name } }));
    expect(found.body.data.searchUsers.edges.map((e: { node: { name: string } }) => e.node.name)).toEqual([name]);
  });

  it('treats LIKE wildcards in a search as the characters they are', async () => {
    const reply = await raw(json({ query: '{ searchUsers(query: "%%%") { edges { node { name } } } }' }));
    expect(reply.body.data.searchUsers.edges).toEqual([]);
  });

  it.each([
    ['a name with a NUL', 'mutation { createUser(name: "a\\u0000b") { token } }', /control character/],
    ['an empty name', 'mutation { createUser(name: "   ") { token } }', /name/i],
    ['a search with a NUL', '{ searchUsers(query: "a\\u0000") { edges { cursor } } }', /control character/],
  ])('refuses %s with BAD_USER_INPUT', async (_case, query, message) => {
    const reply = await raw(json({ query }));
    expect(code(reply.body)).toBe('BAD_USER_INPUT');
    expect(reply.body.errors[0].message).toMatch(message);
  });
});
