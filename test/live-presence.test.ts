/**
 * Live presence over /graphql/stream, between Pulse servers that share one
 * database: the first events, coming online (raised by a heartbeat on another
 * server), going offline (with nobody sending anything), a server that dies with
 * the last heartbeat, subscribers that leave, and the limits. Run with the
 * PostgreSQL bus always, and with the Redis bus when TEST_REDIS_URL is set (CI
 * sets it; a fresh machine has no Redis).
 *
 * The time a status takes to change by itself (the threshold passing, a manual
 * status expiring) is let pass (test/support/passing-time.ts), never waited for.
 */
import { spawn } from 'node:child_process';
import Redis from 'ioredis';
import jwt from 'jsonwebtoken';
import { sql } from 'kysely';
import { compileSources } from './support/compiled-sources';
import { freePort } from './support/free-port';
import { fakeProcessClock, letTimePass } from './support/passing-time';
import { subscribe, type StreamEvent, type Subscription } from './support/event-stream';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startTestServer, TEST_JWT_SECRET, type TestServer } from './support/test-server';
import { eventually } from './support/eventually';

const WATCH = 'subscription ($ids: [ID!]) { presenceChanged(ids: $ids) { userId online lastSeen } }';
const THRESHOLD_SECONDS = 30;
// Every heartbeat is written (no minimum gap), so each one a test sends counts.
const PRESENCE = { PRESENCE_THRESHOLD_SECONDS: String(THRESHOLD_SECONDS), HEARTBEAT_MIN_WRITE_GAP_SECONDS: '0' };
// Long enough for a user's last heartbeat to pass the threshold: live presence
// re-reads a user within a second and a quarter of their deadline (deadlines
// are kept by the second, and looked at every 250 ms).
const PAST_THRESHOLD_SECONDS = THRESHOLD_SECONDS + 2;

const status = (e: StreamEvent) => e.data?.presenceChanged as { userId: string; online: boolean; lastSeen: string | null } | undefined;
const isStatus = (userId: string, online: boolean) => (e: StreamEvent) => status(e)?.userId === userId && status(e)?.online === online;

const buses: Array<[string, Record<string, string>]> = [['PostgreSQL LISTEN/NOTIFY', {}]];
if (process.env.TEST_REDIS_URL) buses.push(['Redis pub/sub', { REDIS_URL: process.env.TEST_REDIS_URL }]);

describe.each(buses)('with the %s bus', (_bus, busEnv) => {
  let t: TestDatabase;
  let a: TestServer;
  let b: TestServer;
  const open: Subscription[] = [];
  const watch = async (server: TestServer, ids: string[], token?: string) => {
    const s = await subscribe(`${server.pulse.graphqlUrl}/stream`, WATCH, { variables: { ids }, token });
    open.push(s);
    return s;
  };

  beforeAll(async () => {
    fakeProcessClock();
    t = await createTestDatabase();
    a = await startTestServer({ DATABASE_URL: t.url, ...PRESENCE, ...busEnv });
    b = await startTestServer({ DATABASE_URL: t.url, ...PRESENCE, ...busEnv });
  });
  afterEach(() => {
    for (const s of open.splice(0)) s.close();
  });
  afterAll(async () => {
    await a.stop();
    await b.stop();
    await t.destroy();
    jest.useRealTimers();
  });

  it('starts with the current status of every watched user', async () => {
    await t.setLastHeartbeat('11', 0);
    await t.setLastHeartbeat('12', 600);
    const s = await watch(a, ['11', '12', '13']);
    const first = await Promise.all([s.next(isStatus('11', true)), s.next(isStatus('12', false)), s.next(isStatus('13', false))]);
    expect(s.status).toBe(200);
    expect(status(first[1])!.lastSeen).not.toBeNull();
    expect(status(first[2])!.lastSeen).toBeNull();
    expect(s.events).toHaveLength(3);
  });

  it('tells a subscriber on one server that a user came online with a heartbeat on another', async () => {
    const s = await watch(a, ['21']);
    await s.next(isStatus('21', false));
    const reply = await b.graphql('mutation { heartbeat { online } }', { token: b.token('21') });
    expect(reply.body.data).toEqual({ heartbeat: { online: true } });
    const online = await s.next(isStatus('21', true));
    expect(status(online)!.lastSeen).not.toBeNull();
  });

  it('tells subscribers a user went offline when their heartbeats stop, with the time they were last seen', async () => {
    const s = await watch(a, ['31']);
    await s.next(isStatus('31', false));
    const beat = await b.graphql('mutation { heartbeat { lastSeen } }', { token: b.token('31') });
    await s.next(isStatus('31', true));
    await letTimePass(t.db, PAST_THRESHOLD_SECONDS, ['31']);
    const offline = await s.next((e) => isStatus('31', false)(e) && s.events.indexOf(e) > 1);
    // Last seen: that heartbeat, as long ago as the time that passed.
    expect(Date.parse(status(offline)!.lastSeen!)).toBe(Date.parse(beat.body.data!.heartbeat.lastSeen) - PAST_THRESHOLD_SECONDS * 1000);
    expect(s.events.map((e) => status(e)!.online)).toEqual([false, true, false]);
  });

  it('does not send a heartbeat that changes nothing a subscriber sees', async () => {
    await t.setLastHeartbeat('41', 0);
    const s = await watch(a, ['41']);
    await s.next(isStatus('41', true));
    await b.graphql('mutation { heartbeat { online } }', { token: b.token('41') });
    // A user who came online meanwhile is the marker that events flow.
    await t.setLastHeartbeat('42', 600);
    const marker = await watch(a, ['42']);
    await marker.next(isStatus('42', false));
    await b.graphql('mutation { heartbeat { online } }', { token: b.token('42') });
    await marker.next(isStatus('42', true));
    expect(s.events).toHaveLength(1);
  });

  it('catches up on what it missed while its bus connection was down', async () => {
    const s = await watch(a, ['81']);
    await s.next(isStatus('81', false));
    // Cut the bus under server A (both servers' listeners, on the PostgreSQL bus;
    // on Redis, close the subscriber's client connection instead).
    if (busEnv.REDIS_URL) {
      const admin = new Redis(busEnv.REDIS_URL);
      const clients = (await admin.client('LIST')) as string;
      const subscribers = clients.split('\n').filter((line) => /cmd=subscribe|sub=1/.test(line));
      for (const line of subscribers) await admin.client('KILL', 'ID', /id=(\d+)/.exec(line)![1]!);
      admin.disconnect();
      expect(subscribers.length).toBeGreaterThan(0);
    } else {
      const { rows } = await sql<{ n: number }>`
        select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
        where application_name = 'pulse-listen' and datname = current_database()
      `.execute(t.db);
      expect(rows[0]!.n).toBeGreaterThan(0);
    }
    // The heartbeat's event is published while nobody listens...
    await b.graphql('mutation { heartbeat { online } }', { token: b.token('81') });
    // ...and A, once reconnected, re-reads what it watches.
    await s.next(isStatus('81', true), 20_000);
  });

  it('frees what a subscriber watched when it leaves', async () => {
    // The earlier tests' subscribers have left.
    await eventually('the subscription to be gone', () => a.pulse.live.size.subscriptions === 0);
    expect(a.pulse.live.size).toEqual({ subscriptions: 0, watchedUsers: 0, deadlines: 0 });
    const s = await watch(a, ['51', '52']);
    await s.next(isStatus('52', false));
    await b.graphql('mutation { heartbeat { online } }', { token: b.token('51') });
    await s.next(isStatus('51', true));
    expect(a.pulse.live.size).toEqual({ subscriptions: 1, watchedUsers: 2, deadlines: 1 });
    s.close();
    await eventually('the subscription to be gone', () => a.pulse.live.size.subscriptions === 0);
    expect(a.pulse.live.size).toEqual({ subscriptions: 0, watchedUsers: 0, deadlines: 0 });
  });
});

describe('the stream', () => {
  let t: TestDatabase;
  let server: TestServer;
  beforeAll(async () => {
    t = await createTestDatabase();
    server = await startTestServer({ DATABASE_URL: t.url, STATUSES_MAX_IDS: '3' });
  });
  afterAll(async () => {
    await server.stop();
    await t.destroy();
  });

  it('refuses more ids than STATUSES_MAX_IDS, and bad ids, with BAD_USER_INPUT', async () => {
    const tooMany = await subscribe(`${server.pulse.graphqlUrl}/stream`, WATCH, { variables: { ids: ['1', '2', '3', '4'] } });
    const error = await tooMany.next((e) => !!e.errors);
    expect(error.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
    expect(error.errors![0]!.message).toBe('Too many ids: 4 given, at most 3 per request');
    const bad = await subscribe(`${server.pulse.graphqlUrl}/stream`, WATCH, { variables: { ids: ['abc'] } });
    expect((await bad.next((e) => !!e.errors)).errors![0]!.message).toContain('Invalid user id "abc"');
    expect(server.pulse.live.size.subscriptions).toBe(0);
  });

  it('serves subscriptions only', async () => {
    const query = await subscribe(`${server.pulse.graphqlUrl}/stream`, '{ status(id: "1") { online } }');
    expect((await query.next((e) => !!e.errors)).errors![0]!.message).toContain('Only subscriptions are served at /graphql/stream');
    const mutation = await subscribe(`${server.pulse.graphqlUrl}/stream`, 'mutation { heartbeat { online } }', { token: server.token('1') });
    expect((await mutation.next((e) => !!e.errors)).errors![0]!.message).toContain('send mutations to /graphql');
    const { rows } = await sql`select user_id from pulse`.execute(t.db);
    expect(rows).toEqual([]);
  });

  it('without ids and without a token, says what to send', async () => {
    const none = await subscribe(`${server.pulse.graphqlUrl}/stream`, 'subscription { presenceChanged { userId } }');
    const error = await none.next((e) => !!e.errors);
    expect(error.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
    expect(error.errors![0]!.message).toContain('send a bearer token to watch the users you follow');
  });
});

describe('what each subscriber may see', () => {
  const LIVE = 'subscription ($ids: [ID!]) { presenceChanged(ids: $ids) { userId state online lastSeen statusText } }';
  let t: TestDatabase;
  let server: TestServer;
  const open: Subscription[] = [];
  beforeAll(async () => {
    fakeProcessClock();
    t = await createTestDatabase();
    server = await startTestServer({ DATABASE_URL: t.url, ...PRESENCE });
  });
  afterEach(() => {
    for (const s of open.splice(0)) s.close();
  });
  afterAll(async () => {
    await server.stop();
    await t.destroy();
    jest.useRealTimers();
  });

  const signUp = (name: string) => server.signUp(name);
  const watchAs = async (token: string | undefined, ids?: string[]) => {
    const s = await subscribe(`${server.pulse.graphqlUrl}/stream`, LIVE, { variables: ids ? { ids } : {}, token });
    open.push(s);
    return s;
  };
  const live = (e: StreamEvent) => e.data?.presenceChanged as { userId: string; state: string; lastSeen: string | null; statusText: string | null };

  it('without ids, watches the users the viewer follows', async () => {
    const ann = await signUp('Ann');
    const bob = await signUp('Bob');
    await server.graphql(`mutation { follow(userId: "${bob.id}") { name } }`, { token: ann.token });
    const s = await watchAs(ann.token);
    await s.next((e) => live(e)?.userId === bob.id && live(e).state === 'OFFLINE');
    await server.graphql('mutation { heartbeat { online } }', { token: bob.token });
    await s.next((e) => live(e)?.userId === bob.id && live(e).state === 'ONLINE');
    expect(s.events.every((e) => live(e).userId === bob.id)).toBe(true);
  });

  it('re-applies privacy and manual status mid-stream, for each viewer as they may see it', async () => {
    const cat = await signUp('Cat');
    const dan = await signUp('Dan'); // Cat follows Dan: Dan is one of Cat's contacts
    const eve = await signUp('Eve');
    await server.graphql(`mutation { follow(userId: "${dan.id}") { name } }`, { token: cat.token });
    await server.graphql('mutation { heartbeat { online } }', { token: cat.token });
    const byDan = await watchAs(dan.token, [cat.id]);
    const byEve = await watchAs(eve.token, [cat.id]);
    const anonymous = await watchAs(undefined, [cat.id]);
    for (const s of [byDan, byEve, anonymous]) await s.next((e) => live(e)?.state === 'ONLINE');

    await server.graphql('mutation { setStatus(status: BUSY, text: "in a meeting") { state } }', { token: cat.token });
    for (const s of [byDan, byEve, anonymous]) {
      const busy = await s.next((e) => live(e)?.state === 'BUSY');
      expect(live(busy).statusText).toBe('in a meeting');
    }

    await server.graphql('mutation { updatePrivacy(visibility: CONTACTS) { visibility } }', { token: cat.token });
    for (const s of [byEve, anonymous]) {
      const hidden = await s.next((e) => live(e)?.state === 'OFFLINE');
      expect(live(hidden)).toEqual({ userId: cat.id, state: 'OFFLINE', online: false, lastSeen: null, statusText: null });
    }

    await server.graphql('mutation { setStatus(status: INVISIBLE) { state } }', { token: cat.token });
    const invisible = await byDan.next((e) => live(e)?.state === 'OFFLINE');
    expect(live(invisible).lastSeen).not.toBeNull();
    expect(live(invisible).statusText).toBeNull();
    // Dan's stream saw ONLINE, BUSY, OFFLINE: never a hint of the privacy change.
    expect(byDan.events.map((e) => live(e).state)).toEqual(['ONLINE', 'BUSY', 'OFFLINE']);
  });

  it('ends a manual status at its expiry, with no one doing anything', async () => {
    const fay = await signUp('Fay');
    await server.graphql('mutation { heartbeat { online } }', { token: fay.token });
    // An expiry well within the threshold: Fay is still online when it comes.
    const { rows } = await sql<{ at: Date }>`select now() + interval '10 seconds' as at`.execute(t.db);
    const away = await server.graphql('mutation ($at: DateTime) { setStatus(status: AWAY, expiresAt: $at) { state } }', {
      token: fay.token,
      variables: { at: rows[0]!.at.toISOString() },
    });
    expect(away.body.data).toEqual({ setStatus: { state: 'AWAY' } });
    const s = await watchAs(undefined, [fay.id]);
    await s.next((e) => live(e)?.state === 'AWAY');
    await letTimePass(t.db, 12, [fay.id]);
    await s.next((e) => live(e)?.state === 'ONLINE');
    // The watcher saw AWAY until the expiry, then ONLINE: nothing in between.
    expect(s.events.map((e) => `${live(e).userId} ${live(e).state}`)).toEqual([`${fay.id} AWAY`, `${fay.id} ONLINE`]);
  });
});

describe('a server that dies', () => {
  it('still turns its last user offline for subscribers on another server', async () => {
    fakeProcessClock();
    const compiled = compileSources();
    const t = await createTestDatabase();
    const watcher = await startTestServer({ DATABASE_URL: t.url, ...PRESENCE });
    const port = await freePort();
    const doomed = spawn(process.execPath, [compiled.entry('src/main.ts')], {
      env: { ...process.env, NODE_ENV: 'test', DATABASE_URL: t.url, PORT: String(port), HOST: '127.0.0.1', JWT_SECRET: TEST_JWT_SECRET, LOG_LEVEL: 'error', ...PRESENCE },
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => doomed.once('exit', resolve));
    const s = await subscribe(`${watcher.pulse.graphqlUrl}/stream`, WATCH, { variables: { ids: ['61'] } });
    try {
      await s.next(isStatus('61', false));
      await eventually('Pulse to be ready', async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, 45_000);
      const token = jwt.sign({ sub: '61' }, TEST_JWT_SECRET, { algorithm: 'HS256' });
      const beat = await fetch(`http://127.0.0.1:${port}/pulse`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
      expect(beat.status).toBe(204);
      await s.next(isStatus('61', true));
      doomed.kill('SIGKILL');
      await exited;
      await letTimePass(t.db, PAST_THRESHOLD_SECONDS, ['61']);
      const offline = await s.next((e) => isStatus('61', false)(e) && s.events.indexOf(e) > 1);
      expect(status(offline)!.lastSeen).not.toBeNull();
    } finally {
      s.close();
      doomed.kill('SIGKILL');
      await exited;
      await watcher.stop();
      await t.destroy();
      compiled.remove();
      jest.useRealTimers();
    }
  });
});
