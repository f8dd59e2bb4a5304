/**
 * Away when idle: a connected user whose latest heartbeat says idle shows AWAY
 * (manualStatus AUTO), and ONLINE again with the next active heartbeat, at once
 * even inside the minimum write gap and the per-user heartbeat interval; the
 * change is a live event across servers, on both buses. A manual status still
 * wins, privacy rules apply unchanged, and the flag lives in the pulse row
 * without an index.
 */
import { sql } from 'kysely';
import { subscribe, type StreamEvent, type Subscription } from './support/event-stream';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startTestServer, type TestServer } from './support/test-server';

const WATCH = 'subscription ($ids: [ID!]) { presenceChanged(ids: $ids) { userId state } }';
// A write gap and a heartbeat interval far longer than the test: an idle change
// must get through both.
const SLOW_WRITES = { HEARTBEAT_MIN_WRITE_GAP_SECONDS: '20', HEARTBEAT_MIN_INTERVAL_MS: '60000' };

const buses: Array<[string, Record<string, string>]> = [['PostgreSQL LISTEN/NOTIFY', {}]];
if (process.env.TEST_REDIS_URL) buses.push(['Redis pub/sub', { REDIS_URL: process.env.TEST_REDIS_URL }]);

describe.each(buses)('away when idle, with the %s bus', (_bus, busEnv) => {
  let t: TestDatabase;
  let a: TestServer;
  let b: TestServer;
  const open: Subscription[] = [];

  beforeAll(async () => {
    t = await createTestDatabase();
    a = await startTestServer({ DATABASE_URL: t.url, ...SLOW_WRITES, ...busEnv });
    b = await startTestServer({ DATABASE_URL: t.url, ...SLOW_WRITES, ...busEnv });
  });
  afterEach(() => {
    for (const s of open.splice(0)) s.close();
  });
  afterAll(async () => {
    await a.stop();
    await b.stop();
    await t.destroy();
  });

  const beat = (server: TestServer, token: string, idle?: boolean) =>
    server.graphql(`mutation { heartbeat${idle === undefined ? '' : `(idle: ${idle})`} { state manualStatus online } }`, { token });
  const stateOf = async (server: TestServer, id: string, token?: string) =>
    (await server.graphql(`{ status(id: "${id}") { state } }`, { token })).body.data!.status.state as string;
  const state = (userId: string, value: string) => (e: StreamEvent) =>
    e.data?.presenceChanged?.userId === userId && e.data?.presenceChanged?.state === value;

  it('shows an idle user AWAY with manualStatus AUTO, and ONLINE at once with the next active heartbeat', async () => {
    const token = a.token('501');
    expect((await beat(a, token)).body.data!.heartbeat).toEqual({ state: 'ONLINE', manualStatus: 'AUTO', online: true });
    // Within the write gap and the heartbeat interval: written anyway.
    expect((await beat(a, token, true)).body.data!.heartbeat).toEqual({ state: 'AWAY', manualStatus: 'AUTO', online: true });
    expect(await stateOf(b, '501')).toBe('AWAY');
    expect((await beat(a, token, false)).body.data!.heartbeat).toEqual({ state: 'ONLINE', manualStatus: 'AUTO', online: true });
    expect(await stateOf(b, '501')).toBe('ONLINE');
  });

  it('tells watchers on another server at once, both ways', async () => {
    const token = b.token('502');
    await beat(b, token);
    const s = await subscribe(`${a.pulse.graphqlUrl}/stream`, WATCH, { variables: { ids: ['502'] } });
    open.push(s);
    await s.next(state('502', 'ONLINE'));
    await beat(b, token, true);
    await s.next(state('502', 'AWAY'));
    await beat(b, token);
    await s.next((e) => state('502', 'ONLINE')(e) && s.events.indexOf(e) > 1);
    expect(s.events.map((e) => e.data!.presenceChanged.state)).toEqual(['ONLINE', 'AWAY', 'ONLINE']);
  });

  it('lets a manual status win over idleness', async () => {
    const token = a.token('503');
    await a.graphql('mutation { setStatus(status: BUSY, text: "focus") { state } }', { token });
    expect((await beat(a, token, true)).body.data!.heartbeat).toMatchObject({ state: 'BUSY', manualStatus: 'BUSY' });
    expect(await stateOf(b, '503')).toBe('BUSY');
  });

  it('applies privacy unchanged: an idle user hidden from strangers stays never seen to them', async () => {
    const ann = await a.signUp('Ann Idle');
    const bob = await a.signUp('Bob Idle');
    const eve = await a.signUp('Eve Idle');
    await a.graphql(`mutation { follow(userId: "${bob.id}") { id } }`, { token: ann.token });
    await a.graphql('mutation { updatePrivacy(visibility: CONTACTS) { visibility } }', { token: ann.token });
    await beat(a, ann.token, true);
    expect(await stateOf(a, ann.id, bob.token)).toBe('AWAY');
    expect(await stateOf(a, ann.id, eve.token)).toBe('OFFLINE');
    expect(await stateOf(a, ann.id)).toBe('OFFLINE');
  });

  it('takes {"idle": true} on POST /pulse and POST /heartbeat; no body is active', async () => {
    const auth = { authorization: `Bearer ${a.token('504')}` };
    const post = (path: string, body?: string) =>
      fetch(`http://127.0.0.1:${a.pulse.port}${path}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body });
    expect((await post('/pulse', '{"idle": true}')).status).toBe(204);
    expect(await stateOf(b, '504')).toBe('AWAY');
    expect((await post('/pulse')).status).toBe(204);
    expect(await stateOf(b, '504')).toBe('ONLINE');
    expect((await post('/heartbeat', '{"idle": true}')).status).toBe(204);
    expect(await stateOf(b, '504')).toBe('AWAY');
  });

  it('answers a bad heartbeat body with 400 naming what was wrong', async () => {
    const post = (body: string) =>
      fetch(`http://127.0.0.1:${a.pulse.port}/pulse`, { method: 'POST', headers: { authorization: `Bearer ${a.token('505')}` }, body });
    for (const [body, message] of [
      ['{"idle": "yes"}', /Invalid idle: expected true or false, got "yes"/],
      ['idle', /Malformed heartbeat body/],
      ['[true]', /expected an object/],
      ['x'.repeat(5000), /too large/],
    ] as const) {
      const response = await post(body);
      expect(response.status).toBe(400);
      const reply = (await response.json()) as { errors: Array<{ message: string; extensions: { code: string } }> };
      expect(reply.errors[0]!.message).toMatch(message);
      expect(reply.errors[0]!.extensions.code).toBe('BAD_USER_INPUT');
    }
    expect(await stateOf(a, '505')).toBe('OFFLINE');
  });
});

describe('where the idle flag is stored', () => {
  let t: TestDatabase;

  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(() => t.destroy());

  it('is a column of the pulse row that no index covers, so heartbeats stay HOT updates', async () => {
    const columns = await sql<{ column_name: string; data_type: string }>`
      select column_name, data_type from information_schema.columns where table_name = 'pulse' order by ordinal_position
    `.execute(t.db);
    expect(columns.rows).toContainEqual({ column_name: 'idle', data_type: 'boolean' });
    const indexes = await sql<{ indexdef: string }>`select indexdef from pg_indexes where tablename = 'pulse'`.execute(t.db);
    expect(indexes.rows.filter((i) => /idle|last_hb/.test(i.indexdef))).toEqual([]);
  });
});
