/**
 * Limits per client, from the hostile-input catalogue: one client cannot take
 * all the streams, sign-ups or searches, and each case shows that a
 * well-behaved client next to the abusive one is still served. Also: who a
 * client is behind a proxy (TRUST_PROXY), and slow headers.
 */
import net from 'node:net';
import { subscribe, type Subscription } from './support/event-stream';
import { eventually } from './support/eventually';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startTestServer, type TestServer } from './support/test-server';

const WATCH = 'subscription ($ids: [ID!]) { presenceChanged(ids: $ids) { userId online } }';
const code = (body: any) => body?.errors?.[0]?.extensions?.code;

let t: TestDatabase;
const servers: TestServer[] = [];
const open: Subscription[] = [];

beforeAll(async () => {
  t = await createTestDatabase();
});
afterEach(async () => {
  for (const s of open.splice(0)) s.close();
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
afterAll(async () => {
  await t.destroy();
});

async function start(env: Record<string, string>): Promise<TestServer> {
  const server = await startTestServer({ DATABASE_URL: t.url, ...env });
  servers.push(server);
  return server;
}

async function watch(server: TestServer, ids: string[], options: { token?: string } = {}): Promise<Subscription> {
  const s = await subscribe(`${server.pulse.graphqlUrl}/stream`, WATCH, { variables: { ids }, token: options.token });
  open.push(s);
  return s;
}

// Private: a stream request with extra headers, answered as status, headers and body.
async function streamRequest(server: TestServer, headers: Record<string, string>) {
  const response = await fetch(`${server.pulse.graphqlUrl}/stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers },
    body: JSON.stringify({ query: WATCH, variables: { ids: ['1'] } }),
  });
  const status = response.status;
  const retryAfter = response.headers.get('retry-after');
  if (status === 200) {
    void response.body?.cancel();
    return { status, retryAfter, body: null };
  }
  return { status, retryAfter, body: (await response.json()) as any };
}

const isStatus = (userId: string) => (e: { data?: Record<string, any> | null }) => e.data?.presenceChanged?.userId === userId;

describe('event streams', () => {
  it('refuses a client past STREAMS_PER_CLIENT with 429 and Retry-After, and serves another client', async () => {
    const server = await start({ STREAMS_PER_CLIENT: '3', STREAMS_MAX: '100' });
    for (let i = 0; i < 3; i++) expect((await watch(server, ['1'])).status).toBe(200);

    const refused = await streamRequest(server, {});
    expect(refused.status).toBe(429);
    expect(Number(refused.retryAfter)).toBeGreaterThan(0);
    expect(code(refused.body)).toBe('RATE_LIMITED');
    expect(refused.body.errors[0].message).toMatch(/at most 3/);

    // A user with a token is another client: watched, and their heartbeats count.
    const token = server.token('501');
    const own = await watch(server, ['501'], { token });
    expect(own.status).toBe(200);
    await own.next(isStatus('501'));
    expect((await server.graphql('mutation { heartbeat { online } }', { token })).body.data).toEqual({ heartbeat: { online: true } });
    await own.next((e) => isStatus('501')(e) && e.data!.presenceChanged.online === true);

    // A place comes back when the client closes one of its streams.
    open[0]!.close();
    let again;
    for (let attempt = 0; attempt < 100; attempt++) {
      again = await streamRequest(server, {});
      if (again.status !== 429) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(again!.status).toBe(200);

    const metrics = await (await fetch(server.pulse.graphqlUrl.replace('/graphql', '/metrics'))).text();
    expect(metrics).toMatch(/pulse_streams_refused_total\{reason="client_limit"\} [1-9]/);
  });

  it('answers 503 with Retry-After once the process holds STREAMS_MAX streams', async () => {
    const server = await start({ STREAMS_PER_CLIENT: '5', STREAMS_MAX: '3' });
    for (const user of ['601', '602', '603']) expect((await watch(server, ['1'], { token: server.token(user) })).status).toBe(200);
    const full = await streamRequest(server, { authorization: `Bearer ${server.token('604')}` });
    expect(full.status).toBe(503);
    expect(full.retryAfter).not.toBeNull();
    expect(code(full.body)).toBe('UNAVAILABLE');
    // Queries and heartbeats are not streams: still served.
    const reply = await server.graphql('mutation { heartbeat { online } }', { token: server.token('604') });
    expect(reply.body.data).toEqual({ heartbeat: { online: true } });
  });

  it('does not believe X-Forwarded-For unless TRUST_PROXY says so', async () => {
    const direct = await start({ STREAMS_PER_CLIENT: '1' });
    expect((await subscribeFrom(direct, '203.0.113.1')).status).toBe(200);
    // A different claimed address from the same peer is the same client.
    const refused = await streamRequest(direct, { 'x-forwarded-for': '203.0.113.2' });
    expect(refused.status).toBe(429);
  });
});

describe('with TRUST_PROXY', () => {
  it('counts each forwarded address as its own client, and a spoofed header is not a way out', async () => {
    const server = await start({ STREAMS_PER_CLIENT: '1', TRUST_PROXY: '1' });
    const first = await subscribeFrom(server, '203.0.113.1');
    expect(first.status).toBe(200);
    // The same client again: refused. A header it adds itself comes before the
    // proxy's entry, so it does not change who it is.
    expect((await streamRequest(server, { 'x-forwarded-for': '203.0.113.1' })).status).toBe(429);
    expect((await streamRequest(server, { 'x-forwarded-for': '198.51.100.9, 203.0.113.1' })).status).toBe(429);
    // Another client behind the same proxy is served.
    const other = await subscribeFrom(server, '203.0.113.2');
    expect(other.status).toBe(200);
  });
});

// Private: a stream that stays open, from a client the proxy names.
async function subscribeFrom(server: TestServer, address: string): Promise<{ status: number }> {
  const abort = new AbortController();
  const response = await fetch(`${server.pulse.graphqlUrl}/stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', 'x-forwarded-for': address },
    body: JSON.stringify({ query: WATCH, variables: { ids: ['1'] } }),
    signal: abort.signal,
  });
  open.push({ close: () => abort.abort() } as Subscription);
  return { status: response.status };
}

describe('sign-up', () => {
  it('refuses a client past SIGNUP_RATE with 429, RATE_LIMITED and Retry-After; others still sign up', async () => {
    const server = await start({ SIGNUP_RATE: '1/m', SIGNUP_BURST: '3', TRUST_PROXY: '1' });
    const signUp = (name: string, address: string) =>
      fetch(server.pulse.graphqlUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': address },
        body: JSON.stringify({ query: 'mutation ($n: String!) { createUser(name: $n) { user { id } token } }', variables: { n: name } }),
      });
    for (let i = 0; i < 3; i++) expect(((await (await signUp(`flood${i}`, '203.0.113.7')).json()) as any).data.createUser.user.id).toBeTruthy();

    const refused = await signUp('flood3', '203.0.113.7');
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const body = (await refused.json()) as any;
    expect(code(body)).toBe('RATE_LIMITED');
    expect(body.errors[0].message).toMatch(/Too many sign-ups/);
    // Nothing was created for the refused call.
    const found = await server.graphql('{ searchUsers(query: "flood3") { edges { node { name } } } }');
    expect(found.body.data!.searchUsers.edges).toEqual([]);

    // Another client signs up, and the flooder's accounts keep their heartbeats.
    const other = (await (await signUp('Ann', '198.51.100.1')).json()) as any;
    expect(other.data.createUser.token).toBeTruthy();
    expect((await server.graphql('mutation { heartbeat { online } }', { token: other.data.createUser.token })).body.data).toEqual({ heartbeat: { online: true } });
  });
});

describe('search', () => {
  it('refuses a client past SEARCH_RATE with RATE_LIMITED; another user still searches', async () => {
    const server = await start({ SEARCH_RATE: '1/m', SEARCH_BURST: '2' });
    const searcher = server.token('701');
    const search = (token: string) => server.graphql('{ searchUsers(query: "an") { edges { node { name } } } }', { token });
    expect((await search(searcher)).body.errors).toBeUndefined();
    expect((await search(searcher)).body.errors).toBeUndefined();
    const refused = await search(searcher);
    expect(refused.status).toBe(429);
    expect(code(refused.body)).toBe('RATE_LIMITED');
    const other = await search(server.token('702'));
    expect(other.body.errors).toBeUndefined();
    expect(other.body.data!.searchUsers.edges).toEqual(expect.any(Array));
  });
});

describe('slow clients', () => {
  it('answers 408 and closes a connection whose headers never finish, while serving others', async () => {
    const server = await start({ HTTP_HEADERS_TIMEOUT_MS: '1000', HTTP_REQUEST_TIMEOUT_MS: '2000' });
    const socket = net.connect(server.pulse.port, '127.0.0.1');
    let answer = '';
    socket.on('data', (chunk) => (answer += chunk.toString()));
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('POST /graphql HTTP/1.1\r\nhost: pulse\r\nx-slow: ');
    const reply = await server.graphql('{ status(id: "1") { userId } }');
    expect(reply.body.data).toEqual({ status: { userId: '1' } });
    await closed;
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
  });

  it('closes a stream whose client reads nothing once its output has not shrunk for STREAM_STALL_SECONDS; a reading stream beside it keeps its events', async () => {
    const server = await start({ STREAM_STALL_SECONDS: '1', STATUSES_MAX_IDS: '100000', HTTP_BODY_LIMIT_BYTES: String(2 * 1024 * 1024) });
    const token = server.token('901');
    const reader = await watch(server, ['901'], { token });
    await reader.next(isStatus('901'));

    // The first statuses of 100,000 users, every field of each: about 15 MB of
    // events. The loopback socket's buffers take about 4 MB from a client that
    // reads nothing; then what Pulse queued for it stops shrinking.
    const ids = Array.from({ length: 100_000 }, (_, i) => String(100_000 + i));
    const body = JSON.stringify({
      query: 'subscription ($ids: [ID!]) { presenceChanged(ids: $ids) { userId state online lastSeen statusText manualStatus idle } }',
      variables: { ids },
    });
    const silent = net.connect(server.pulse.port, '127.0.0.1');
    silent.pause();
    await new Promise((resolve) => silent.once('connect', resolve));
    silent.write(
      `POST /graphql/stream HTTP/1.1\r\nhost: pulse\r\ncontent-type: application/json\r\naccept: text/event-stream\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    try {
      await eventually('the silent client\'s stream to open', () => server.pulse.live.size.subscriptions === 2, 20_000);
      // Closed by the stall check alone: nothing else ends a stream whose socket is open.
      await eventually('the silent client\'s stream to be closed', () => server.pulse.live.size.subscriptions === 1, 30_000);
      expect(server.pulse.live.size.watchedUsers).toBe(1);

      // The reader still hears a change of the user it watches.
      expect((await server.graphql('mutation { heartbeat { online } }', { token })).body.data).toEqual({ heartbeat: { online: true } });
      await reader.next((e) => isStatus('901')(e) && e.data!.presenceChanged.online === true);
    } finally {
      silent.destroy();
    }
  });
});
