/**
 * Stock Apollo clients subscribe on /graphql with nothing added: the real
 * `@apollo/client` over a plain HttpLink speaks Apollo's multipart subscription
 * protocol, and Pulse answers it with the same statuses, rules and limits as the
 * event stream at /graphql/stream. The protocol's framing (boundaries, keep-alive
 * parts, the end) is checked on the wire too.
 */
import { ApolloClient, CombinedGraphQLErrors, CombinedProtocolErrors, HttpLink, InMemoryCache, ServerError, gql } from '@apollo/client';
import pg from 'pg';
import { eventually } from './support/eventually';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startTestServer, type TestServer } from './support/test-server';

const WATCH = gql`
  subscription Watch($ids: [ID!]) {
    presenceChanged(ids: $ids) {
      userId
      state
      lastSeen
    }
  }
`;

interface Status {
  userId: string;
  state: string;
  lastSeen: string | null;
}

/** What a stock Apollo Client's subscription delivered: statuses, then perhaps an error and the end. */
interface Watching {
  statuses: Status[];
  error: Error | undefined;
  /** Resolves with the first status (received or to come) that matches. */
  next(match: (status: Status) => boolean): Promise<Status>;
  /** Resolves when the subscription errs or completes. */
  ended: Promise<void>;
  unsubscribe(): void;
}

function apolloClient(server: TestServer, token?: string) {
  return new ApolloClient({
    link: new HttpLink({ uri: server.pulse.graphqlUrl, headers: token ? { authorization: `Bearer ${token}` } : {} }),
    cache: new InMemoryCache(),
  });
}

function watch(client: ApolloClient, ids?: string[]): Watching {
  const statuses: Status[] = [];
  const waiters: Array<{ match: (s: Status) => boolean; resolve: (s: Status) => void }> = [];
  let end!: () => void;
  const ended = new Promise<void>((resolve) => (end = resolve));
  const watching: Watching = {
    statuses,
    error: undefined,
    next(match) {
      const seen = statuses.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ match, resolve }));
    },
    ended,
    unsubscribe: () => subscription.unsubscribe(),
  };
  const fail = (error: Error) => {
    watching.error = error;
    end();
  };
  const subscription = client.subscribe<{ presenceChanged: Status }>({ query: WATCH, variables: ids ? { ids } : {} }).subscribe({
    next(result) {
      if (result.error) return fail(result.error as Error);
      const status = result.data!.presenceChanged;
      statuses.push(status);
      for (const w of waiters.filter((w) => w.match(status))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(status);
      }
    },
    error: fail,
    complete: end,
  });
  return watching;
}

const is = (userId: string, state: string) => (s: Status) => s.userId === userId && s.state === state;

describe('presenceChanged from a stock Apollo Client on /graphql', () => {
  let t: TestDatabase;
  let server: TestServer;

  beforeAll(async () => {
    t = await createTestDatabase();
    server = await startTestServer({ DATABASE_URL: t.url, HEARTBEAT_MIN_WRITE_GAP_SECONDS: '0' });
  });
  afterAll(async () => {
    await server.stop();
    await t.destroy();
  });

  it('gets the current status, then a change; unsubscribing frees what it watched', async () => {
    await t.setLastHeartbeat('101', 600);
    const watching = watch(apolloClient(server), ['101', '102']);
    const first = await watching.next(is('101', 'OFFLINE'));
    await watching.next(is('102', 'OFFLINE'));
    expect(first.lastSeen).not.toBeNull();
    expect(server.pulse.live.size).toMatchObject({ subscriptions: 1, watchedUsers: 2 });

    const beat = await server.graphql('mutation { heartbeat { online } }', { token: server.token('101') });
    expect(beat.body.data).toEqual({ heartbeat: { online: true } });
    const online = await watching.next(is('101', 'ONLINE'));
    expect(new Date(online.lastSeen!).getTime()).toBeGreaterThan(new Date(first.lastSeen!).getTime());
    expect(watching.error).toBeUndefined();

    watching.unsubscribe();
    await eventually('the subscription to be gone', () => server.pulse.live.size.subscriptions === 0);
    expect(server.pulse.live.size).toEqual({ subscriptions: 0, watchedUsers: 0, deadlines: 0 });
  });

  it('sees as the bearer of the token: without ids, the users they follow, under their privacy rules', async () => {
    const ann = await server.signUp('Ann Apollo');
    const bob = await server.signUp('Bob Apollo');
    const eve = await server.signUp('Eve Apollo');
    await server.graphql(`mutation { follow(userId: "${bob.id}") { id } }`, { token: ann.token });
    await server.graphql(`mutation { follow(userId: "${ann.id}") { id } }`, { token: bob.token });
    await server.graphql('mutation { heartbeat { online } }', { token: bob.token });
    await server.graphql('mutation { updatePrivacy(visibility: CONTACTS) { visibility } }', { token: bob.token });

    const asAnn = watch(apolloClient(server, ann.token));
    const asEve = watch(apolloClient(server, eve.token), [bob.id]);
    await asAnn.next(is(bob.id, 'ONLINE'));
    // Eve is not among Bob's contacts: he looks never seen to her.
    const seenByEve = await asEve.next((s) => s.userId === bob.id);
    expect(seenByEve).toMatchObject({ state: 'OFFLINE', lastSeen: null });
    expect(asAnn.statuses.map((s) => s.userId)).toEqual([bob.id]);
    asAnn.unsubscribe();
    asEve.unsubscribe();
  });

  it('reports a bad id as a GraphQL error naming it, as Apollo reports any GraphQL error', async () => {
    const watching = watch(apolloClient(server), ['101', 'abc']);
    await watching.ended;
    expect(watching.error).toBeInstanceOf(CombinedGraphQLErrors);
    const { errors } = watching.error as CombinedGraphQLErrors;
    expect(errors[0]!.message).toMatch(/abc/);
    expect(errors[0]!.extensions?.code).toBe('BAD_USER_INPUT');
    expect(server.pulse.live.size.subscriptions).toBe(0);
  });

  it('refuses to watch "the users you follow" without a token, saying what to send', async () => {
    const watching = watch(apolloClient(server));
    await watching.ended;
    expect(watching.error).toBeInstanceOf(CombinedGraphQLErrors);
    expect((watching.error as CombinedGraphQLErrors).errors[0]!.message).toMatch(/bearer token/);
  });

  it('applies the document limits of /graphql', async () => {
    const response = await fetch(server.pulse.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'multipart/mixed;subscriptionSpec="1.0", application/json' },
      // Eleven directives, one more than any document may carry.
      body: JSON.stringify({
        query: `subscription { presenceChanged(ids: ["1"]) { ${Array.from({ length: 11 }, (_, i) => `a${i}: userId @include(if: true)`).join(' ')} } }`,
      }),
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { errors: Array<{ message: string; extensions: { code: string } }> };
    expect(body.errors[0]!.message).toMatch(/directives/i);
  });

  it('still answers queries and mutations sent with the multipart accept header as plain JSON', async () => {
    const reply = await server.graphql('{ status(id: "101") { online } }', {
      headers: { accept: 'multipart/mixed;subscriptionSpec="1.0", application/json' },
    });
    expect(reply.status).toBe(200);
    expect(reply.body.data).toEqual({ status: { online: expect.any(Boolean) } });
  });
});

describe('the multipart protocol on the wire', () => {
  let t: TestDatabase;
  let server: TestServer;

  beforeAll(async () => {
    t = await createTestDatabase();
    // A keep-alive part every 50 ms, so the test sees one without waiting long.
    server = await startTestServer({ DATABASE_URL: t.url, SUBSCRIPTION_KEEPALIVE_SECONDS: '0.05' });
  });
  afterAll(async () => {
    await server.stop();
    await t.destroy();
  });

  it('frames events as Apollo specifies, keeps an idle stream alive, and ends with a transport error when Pulse shuts down', async () => {
    const response = await fetch(server.pulse.graphqlUrl, {
      method: 'POST',
      // As Apollo Kotlin and Apollo iOS send it.
      headers: { 'content-type': 'application/json', accept: 'multipart/mixed;subscriptionSpec="1.0", application/json' },
      body: JSON.stringify({ query: 'subscription { presenceChanged(ids: ["7"]) { userId state } }' }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('multipart/mixed;boundary="graphql";subscriptionSpec="1.0"');

    const decoder = new TextDecoder();
    let text = '';
    const reader = response.body!.getReader();
    const readUntil = async (needle: string) => {
      while (!text.includes(needle)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${JSON.stringify(needle)}; got ${JSON.stringify(text)}`);
        text += decoder.decode(value, { stream: true });
      }
    };
    await readUntil('{}\r\n--graphql');
    // Pulse stops: the subscriber is told to subscribe again, then the stream ends.
    const stopping = server.stop();
    await readUntil('--graphql--');
    await stopping;

    const parts = text.split('\r\n--graphql');
    expect(parts[0]).toBe('');
    expect(parts.at(-1)).toBe('--\r\n');
    const bodies = parts.slice(1, -1).map((part) => {
      const [headers, body] = part.split('\r\n\r\n');
      expect(headers).toBe('\r\ncontent-type: application/json; charset=utf-8');
      return JSON.parse(body!) as Record<string, unknown>;
    });
    expect(bodies[0]).toEqual({ payload: { data: { presenceChanged: { userId: '7', state: 'OFFLINE' } } } });
    expect(bodies).toContainEqual({});
    expect(bodies.at(-1)).toEqual({
      payload: null,
      errors: [{ message: 'Pulse is shutting down; subscribe again', extensions: { code: 'UNAVAILABLE' } }],
    });
  });
});

describe('a stock Apollo Client told to come back', () => {
  it('gets the transport error Apollo expects, so it can subscribe again elsewhere', async () => {
    const t = await createTestDatabase();
    const server = await startTestServer({ DATABASE_URL: t.url });
    try {
      const watching = watch(apolloClient(server), ['9']);
      await watching.next(is('9', 'OFFLINE'));
      await server.stop();
      await watching.ended;
      expect(watching.error).toBeInstanceOf(CombinedProtocolErrors);
      expect((watching.error as CombinedProtocolErrors).errors[0]).toMatchObject({ extensions: { code: 'UNAVAILABLE' } });
    } finally {
      await server.stop();
      await t.destroy();
    }
  });

  it('is refused with 503 while Pulse is overloaded, which Apollo reports as a server error', async () => {
    const t = await createTestDatabase();
    const server = await startTestServer({ DATABASE_URL: t.url, DB_POOL_MAX: '1', DB_POOL_MAX_WAITING: '0' });
    const lock = new pg.Client({ connectionString: t.url });
    await lock.connect();
    try {
      // A heartbeat blocked by a row lock holds the only connection; a read then
      // waits for it, and Pulse is saturated.
      await t.setLastHeartbeat('5', 600);
      await lock.query('begin');
      await lock.query('select 1 from pulse where user_id = 5 for update');
      const heartbeat = server.graphql('mutation { heartbeat { online } }', { token: server.token('5') });
      await eventually(
        'a statement to wait on the lock',
        async () => (await lock.query("select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'")).rowCount === 1,
      );
      const read = server.graphql('{ status(id: "6") { state } }');
      await waitForMetric(server, 'pulse_db_pool_waiting 1');

      const watching = watch(apolloClient(server), ['9']);
      await watching.ended;
      expect(watching.error).toBeInstanceOf(ServerError);
      expect((watching.error as ServerError).statusCode).toBe(503);
      // Operators see it: the shed counter their alert watches.
      const metrics = await (await fetch(`http://127.0.0.1:${server.pulse.port}/metrics`)).text();
      expect(Number(/^pulse_requests_shed_total\{route="graphql"\} (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0);

      await lock.query('rollback');
      const answers = await Promise.all([heartbeat, read]);
      expect(answers.map((a) => a.status)).toEqual([200, 200]);
    } finally {
      await lock.end();
      await server.stop();
      await t.destroy();
    }
  });
});

// Private: polls /metrics until a sample line appears (the state is reached, not a time).
async function waitForMetric(server: TestServer, line: string): Promise<void> {
  await eventually(`${line} on /metrics`, async () => (await (await fetch(`http://127.0.0.1:${server.pulse.port}/metrics`)).text()).split('\n').includes(line));
}
