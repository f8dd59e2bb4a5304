/**
 * Compiled execution (src/graphql/compiled-executor.ts): a document's first
 * request is executed by graphql-js, later ones by the function graphql-jit
 * compiled for it. Every request below is sent three times, and the three
 * answers (status and body) must be the same: data, errors with their codes,
 * paths and locations, masking, HTTP status.
 */
import { sql } from 'kysely';
import { createTestDatabase, type TestDatabase } from './support/test-database';
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

async function executions(): Promise<{ compiled: number; interpreted: number }> {
  const text = await (await fetch(server.pulse.graphqlUrl.replace('/graphql', '/metrics'))).text();
  const value = (executor: string) => Number(new RegExp(`^pulse_graphql_executions_total\\{executor="${executor}"\\} (\\d+)`, 'm').exec(text)?.[1]);
  return { compiled: value('compiled'), interpreted: value('graphql-js') };
}

// Private: sends the same request three times; returns the first answer after
// checking that the others equal it, and that the later ones were compiled.
async function sameEveryTime(query: string, options: { variables?: unknown; token?: string } = {}) {
  const before = await executions();
  const first = await server.graphql(query, options);
  const second = await server.graphql(query, options);
  const third = await server.graphql(query, options);
  const after = await executions();
  expect(second).toEqual(first);
  expect(third).toEqual(first);
  return { answer: first, compiled: after.compiled - before.compiled, interpreted: after.interpreted - before.interpreted };
}

describe('answers the same compiled as interpreted', () => {
  let alice: { id: string; token: string };
  let hidden: { id: string; token: string };

  beforeAll(async () => {
    alice = await server.signUp('compiled-alice');
    hidden = await server.signUp('compiled-hidden');
    await server.graphql('mutation { heartbeat { online } }', { token: alice.token });
    await server.graphql('mutation { heartbeat { online } }', { token: hidden.token });
    await server.graphql('mutation { setStatus(status: BUSY, text: "deep work") { state } }', { token: alice.token });
    await server.graphql('mutation { updatePrivacy(visibility: NOBODY) { visibility } }', { token: hidden.token });
  });

  it('a list of statuses, every field, as an anonymous reader and as the user', async () => {
    const query = 'query ($ids: [ID!]!) { statuses(ids: $ids) { userId state online lastSeen statusText manualStatus idle } }';
    const variables = { ids: [alice.id, hidden.id, '12345', alice.id] };
    const anonymous = await sameEveryTime(query, { variables });
    expect(anonymous.compiled).toBe(2);
    expect(anonymous.answer.body.data!.statuses).toEqual([
      { userId: alice.id, state: 'BUSY', online: true, lastSeen: expect.stringMatching(/Z$/), statusText: 'deep work', manualStatus: null, idle: false },
      { userId: hidden.id, state: 'OFFLINE', online: false, lastSeen: null, statusText: null, manualStatus: null, idle: false },
      { userId: '12345', state: 'OFFLINE', online: false, lastSeen: null, statusText: null, manualStatus: null, idle: false },
      { userId: alice.id, state: 'BUSY', online: true, lastSeen: expect.stringMatching(/Z$/), statusText: 'deep work', manualStatus: null, idle: false },
    ]);
    const own = await sameEveryTime(query, { variables: { ids: [hidden.id] }, token: hidden.token });
    expect(own.answer.body.data!.statuses[0]).toMatchObject({ userId: hidden.id, state: 'ONLINE', manualStatus: 'AUTO' });
  });

  it('fragments, aliases, @include and @skip, __typename and nested users', async () => {
    const query = `query ($id: ID!, $with: Boolean!) {
      a: status(id: $id) { ...seen }
      b: status(id: "2") @include(if: $with) { __typename userId }
      c: status(id: "3") @skip(if: $with) { userId }
      user(id: $id) { id name createdAt status { ... on UserStatus { state } } }
    }
    fragment seen on UserStatus { userId online statusText }`;
    const { answer, compiled } = await sameEveryTime(query, { variables: { id: alice.id, with: true } });
    expect(compiled).toBe(2);
    expect(answer.body.data).toEqual({
      a: { userId: alice.id, online: true, statusText: 'deep work' },
      b: { __typename: 'UserStatus', userId: '2' },
      user: { id: alice.id, name: 'compiled-alice', createdAt: expect.stringMatching(/Z$/), status: { state: 'BUSY' } },
    });
  });

  it("a resolver's error keeps its code, path and locations", async () => {
    const { answer, compiled } = await sameEveryTime('{ ok: status(id: "1") { userId } bad: status(id: "1; drop table pulse") { userId } }');
    expect(compiled).toBe(2);
    expect(answer.body.data).toBeNull(); // status is non-null: the error nulls the whole answer, as graphql-js does
    expect(answer.body.errors).toEqual([
      {
        message: expect.stringContaining('Invalid user id "1; drop table pulse"'),
        locations: [{ line: 1, column: 34 }],
        path: ['bad'],
        extensions: { code: 'BAD_USER_INPUT' },
      },
    ]);
  });

  it('UNAUTHENTICATED keeps its HTTP status', async () => {
    const { answer } = await sameEveryTime('{ privacy { visibility } }', { token: 'not-a-token' });
    expect(answer.status).toBe(401);
    expect(answer.body.errors![0]!.extensions!.code).toBe('UNAUTHENTICATED');
  });

  it('variables that do not fit are BAD_USER_INPUT, compiled document or not', async () => {
    const query = 'query ($ids: [ID!]!) { statuses(ids: $ids) { userId } }';
    await server.graphql(query, { variables: { ids: ['1'] } });
    await server.graphql(query, { variables: { ids: ['1'] } }); // compiled from here on
    const { answer } = await sameEveryTime(query, { variables: { ids: ['1', null] } });
    expect(answer.status).toBe(400);
    expect(answer.body.errors![0]).toMatchObject({ message: expect.stringContaining('Variable "$ids"'), extensions: { code: 'BAD_USER_INPUT' } });
  });

  it('an unexpected failure is masked with its path', async () => {
    await sql`alter table pulse rename to pulse_elsewhere`.execute(t.db);
    try {
      const { answer, compiled } = await sameEveryTime('{ status(id: "1") { online } }');
      expect(compiled).toBe(2);
      expect(answer.body.errors).toEqual([
        { message: 'Internal server error', locations: [{ line: 1, column: 3 }], path: ['status'], extensions: { code: 'INTERNAL_SERVER_ERROR' } },
      ]);
      expect(JSON.stringify(answer.body)).not.toMatch(/relation|select/i);
    } finally {
      await sql`alter table pulse_elsewhere rename to pulse`.execute(t.db);
    }
  });

  it('runs the fields of a mutation one after another, in order', async () => {
    const { answer, compiled } = await sameEveryTime(
      'mutation { a: updatePrivacy(showLastSeen: false) { showLastSeen } b: updatePrivacy(showLastSeen: true) { showLastSeen } c: updatePrivacy(visibility: EVERYONE) { visibility showLastSeen } }',
      { token: alice.token },
    );
    expect(compiled).toBe(2);
    expect(answer.body.data).toEqual({ a: { showLastSeen: false }, b: { showLastSeen: true }, c: { visibility: 'EVERYONE', showLastSeen: true } });
  });

  it('introspection, where it is allowed', async () => {
    const { answer } = await sameEveryTime('{ __type(name: "UserStatus") { name fields { name type { kind ofType { name } } } } }');
    expect(answer.body.data!.__type.name).toBe('UserStatus');
    expect(answer.body.data!.__type.fields.map((f: { name: string }) => f.name)).toContain('lastSeen');
  });
});
