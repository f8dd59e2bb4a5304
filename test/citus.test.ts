/**
 * Pulse on a real Citus cluster (a coordinator and its workers), with its tables
 * distributed by `npm run migrate -- distribute`: every path a user takes
 * (heartbeats, statuses, REST, sign-up and search, follows and privacy, live
 * events, retention) works with the rows spread over the workers' shards.
 *
 * Needs TEST_CITUS_URL and TEST_CITUS_WORKERS (CI sets them after installing
 * Citus); skipped, with the reason in the title, where no Citus answers. The
 * plain-PostgreSQL refusal of `distribute` runs everywhere.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { sql } from 'kysely';
import pg from 'pg';
import { createDatabase, type Database } from '../src/db/database';
import { distributeTables } from '../src/db/distribute';
import { migrateToLatest } from '../src/db/migrator';
import { runRetention } from '../src/jobs/retention';
import { silentLogger } from '../src/logger';
import { citusNodes, createCitusDatabase, type CitusDatabase, type CitusNodes } from './support/citus-database';
import { subscribe, type StreamEvent, type Subscription } from './support/event-stream';
import { createEmptyDatabase } from './support/test-database';
import { startTestServer, type TestServer } from './support/test-server';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..');

async function migrateCli(command: string, databaseUrl: string) {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/db/migrate-cli.ts', command], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: databaseUrl },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('npm run migrate -- distribute on plain PostgreSQL', () => {
  it('refuses with an error that says this is not Citus, and changes nothing', async () => {
    const database = await createEmptyDatabase();
    try {
      expect((await migrateCli('latest', database.url)).code).toBe(0);
      const reply = await migrateCli('distribute', database.url);
      expect(reply.code).toBe(1);
      expect(reply.stderr).toMatch(/plain PostgreSQL \(no citus extension\), so there is nothing to distribute/);
      // Names are still unique by index, as before.
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      const { rows } = await client.query("select indisunique from pg_index where indexrelid = 'users_name_key'::regclass");
      await client.end();
      expect(rows).toEqual([{ indisunique: true }]);
    } finally {
      await database.drop();
    }
  });
});

const nodes = citusNodes();
const describeCitus = 'skipped' in nodes ? describe.skip : describe;
const title = (name: string) => ('skipped' in nodes ? `${name} (skipped: ${nodes.skipped})` : name);
const cluster = nodes as CitusNodes;

/** The workers' ports that hold rows of `table` for these distribution-column values. */
async function nodesHolding(db: Database, table: string, ids: string[]): Promise<number[]> {
  const { rows } = await sql<{ nodeport: number }>`
    select distinct n.nodeport from unnest(${ids}::bigint[]) as v (id)
      join pg_dist_placement p on p.shardid = get_shard_id_for_distribution_column(${table}::regclass, v.id)
      join pg_dist_node n on n.groupid = p.groupid
     order by 1
  `.execute(db);
  return rows.map((r) => r.nodeport);
}

describeCitus(title('npm run migrate -- distribute on Citus'), () => {
  let database: CitusDatabase;
  let db: Database;
  beforeAll(async () => {
    database = await createCitusDatabase(cluster);
    db = createDatabase({ url: database.url, poolMax: 2, connectionTimeoutMs: 5_000, statementTimeoutMs: 30_000, logger: silentLogger });
  });
  afterAll(async () => {
    await db?.destroy();
    await database?.drop();
  });

  it('distributes a migrated database, keeping its rows, and a second run changes nothing', async () => {
    const early = await migrateCli('distribute', database.url);
    expect(early.code).toBe(1);
    expect(early.stderr).toMatch(/migration\(s\) are pending .*run `npm run migrate -- latest` first/);

    expect((await migrateCli('latest', database.url)).code).toBe(0);
    // Someone was online and someone had signed up before the cluster was distributed.
    await sql`insert into pulse (user_id, last_hb) values (5, now())`.execute(db);
    await sql`insert into users (name) values ('Early')`.execute(db);

    const first = await migrateCli('distribute', database.url);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/Citus \d+\.\d+.*, 2 worker node\(s\)/);
    for (const line of [
      'pulse: distributed by user_id',
      'presence_settings: distributed by user_id, co-located with pulse',
      'users: distributed by id, co-located with pulse',
      'follows: distributed by follower_id, co-located with pulse',
    ]) {
      expect(first.stdout).toContain(line);
    }

    const again = await migrateCli('distribute', database.url);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('pulse: already distributed by user_id');
    expect(again.stdout).not.toMatch(/rebuilt|dropped/);

    const { rows: tables } = await sql<{ table_name: string; distribution_column: string; colocation_id: number }>`
      select table_name::text, distribution_column, colocation_id from citus_tables order by 1
    `.execute(db);
    expect(tables.map((t) => [t.table_name, t.distribution_column])).toEqual([
      ['follows', 'follower_id'],
      ['presence_settings', 'user_id'],
      ['pulse', 'user_id'],
      ['users', 'id'],
    ]);
    expect(new Set(tables.map((t) => t.colocation_id)).size).toBe(1);

    const server = await startTestServer({ DATABASE_URL: database.url, DB_POOL_MAX: '3' });
    try {
      const reply = await server.graphql('{ status(id: "5") { online } searchUsers(query: "ear") { edges { node { name } } } }');
      expect(reply.body).toEqual({ data: { status: { online: true }, searchUsers: { edges: [{ node: { name: 'Early' } }] } } });
    } finally {
      await server.stop();
    }
    // Four runs of the migrate command, each a Node process of its own.
  }, 240_000);

  it('refuses a table distributed another way, saying how to fix it', async () => {
    const other = await createCitusDatabase(cluster);
    const otherDb = createDatabase({ url: other.url, poolMax: 1, connectionTimeoutMs: 5_000, statementTimeoutMs: 30_000, logger: silentLogger });
    try {
      await migrateToLatest(otherDb, silentLogger);
      await sql`select create_reference_table('presence_settings')`.execute(otherDb);
      await expect(distributeTables(otherDb, [])).rejects.toThrow(
        /presence_settings is already distributed as a reference or local table; Pulse needs it distributed by user_id .*undistribute_table\('presence_settings'\)/,
      );
      // Nothing else was done: the transaction rolled back.
      const { rows } = await sql<{ n: string }>`select count(*) as n from citus_tables`.execute(otherDb);
      expect(Number(rows[0]!.n)).toBe(1);
    } finally {
      await otherDb.destroy();
      await other.drop();
    }
  });
});

describeCitus(title('Pulse on Citus'), () => {
  let database: CitusDatabase;
  let db: Database;
  let server: TestServer;
  const base = () => `http://127.0.0.1:${server.pulse.port}`;

  beforeAll(async () => {
    database = await createCitusDatabase(cluster);
    db = createDatabase({ url: database.url, poolMax: 2, connectionTimeoutMs: 5_000, statementTimeoutMs: 30_000, logger: silentLogger });
    await migrateToLatest(db, silentLogger);
    await distributeTables(db, []);
    // HEARTBEAT_MIN_INTERVAL_MS=0: every heartbeat reaches the database, so the
    // write gap below is the database's, not this process's repeat limit.
    server = await startTestServer({ DATABASE_URL: database.url, DB_POOL_MAX: '4', HEARTBEAT_MIN_INTERVAL_MS: '0', MIGRATE_ON_START: 'false' });
  });
  afterAll(async () => {
    await server?.stop();
    await db?.destroy();
    await database?.drop();
  });

  const setLastHeartbeat = (userId: string, secondsAgo: number) =>
    sql`
      insert into pulse (user_id, last_hb) values (${userId}::bigint, now() - make_interval(secs => ${secondsAgo}))
      on conflict (user_id) do update set last_hb = excluded.last_hb
    `.execute(db);

  it('refuses to start on a worker node with the PostgreSQL bus, saying why', async () => {
    await expect(startTestServer({ DATABASE_URL: database.workerUrls[0]!, MIGRATE_ON_START: 'false' })).rejects.toThrow(
      /DATABASE_URL points at a Citus worker.*point DATABASE_URL at the coordinator, or set REDIS_URL/,
    );
  });

  describe('heartbeats', () => {
    it('marks a user online, in the answer and in every later read', async () => {
      const reply = await server.graphql('mutation { heartbeat { userId online state lastSeen } }', { token: server.token('1001') });
      expect(reply.body.errors).toBeUndefined();
      expect(reply.body.data!.heartbeat).toMatchObject({ userId: '1001', online: true, state: 'ONLINE' });
      const read = await server.graphql('{ status(id: "1001") { online lastSeen } }');
      expect(read.body.data!.status).toEqual({ online: true, lastSeen: reply.body.data!.heartbeat.lastSeen });
    });

    it('takes 200 users at once, spread over both workers, and answers every one online', async () => {
      const users = Array.from({ length: 200 }, (_, i) => String(20_000 + i * 7919));
      const replies = await Promise.all(users.map((u) => server.graphql('mutation { heartbeat { userId online } }', { token: server.token(u) })));
      expect(replies.map((r) => r.body.data?.heartbeat)).toEqual(users.map((userId) => ({ userId, online: true })));
      expect(await nodesHolding(db, 'pulse', users)).toEqual(cluster.workers.map((w) => w.port).sort());

      const { rows } = await sql<{ n: string }>`select count(*) as n from pulse where user_id = any(${users}::bigint[])`.execute(db);
      expect(Number(rows[0]!.n)).toBe(200);
      const read = await server.graphql('query ($ids: [ID!]!) { statuses(ids: $ids) { userId online } }', { variables: { ids: users } });
      expect(read.body.data!.statuses).toEqual(users.map((userId) => ({ userId, online: true })));
    });

    it('writes a user again only after the minimum write gap', async () => {
      const token = server.token('1002');
      const first = await server.graphql('mutation { heartbeat { lastSeen } }', { token });
      const second = await server.graphql('mutation { heartbeat { lastSeen } }', { token });
      // Within the gap (5 s by default) the row is left as it is.
      expect(second.body.data!.heartbeat.lastSeen).toBe(first.body.data!.heartbeat.lastSeen);

      await setLastHeartbeat('1002', 6);
      const { rows } = await sql<{ last_hb: Date }>`select last_hb from pulse where user_id = 1002`.execute(db);
      const third = await server.graphql('mutation { heartbeat { lastSeen } }', { token });
      expect(new Date(third.body.data!.heartbeat.lastSeen).getTime()).toBeGreaterThan(rows[0]!.last_hb.getTime());
    });
  });

  describe('reads', () => {
    it('answers statuses from several shards in the order asked, duplicates and unknown users included', async () => {
      await setLastHeartbeat('3001', 0);
      await setLastHeartbeat('3004', 600);
      await setLastHeartbeat('3007', 1);
      const ids = ['3004', '9999', '3001', '3007', '3004'];
      expect((await nodesHolding(db, 'pulse', ['3001', '3004', '3007'])).length).toBe(2);
      const reply = await server.graphql('query ($ids: [ID!]!) { statuses(ids: $ids) { userId online state } }', { variables: { ids } });
      expect(reply.body.data!.statuses).toEqual([
        { userId: '3004', online: false, state: 'OFFLINE' },
        { userId: '9999', online: false, state: 'OFFLINE' },
        { userId: '3001', online: true, state: 'ONLINE' },
        { userId: '3007', online: true, state: 'ONLINE' },
        { userId: '3004', online: false, state: 'OFFLINE' },
      ]);
      const unseen = await server.graphql('{ status(id: "9999") { lastSeen } }');
      expect(unseen.body.data!.status.lastSeen).toBeNull();
    });

    it('serves POST /pulse and GET /status over plain HTTP', async () => {
      const beat = await fetch(`${base()}/pulse`, { method: 'POST', headers: { authorization: `Bearer ${server.token('4001')}` } });
      expect(beat.status).toBe(204);
      await setLastHeartbeat('4002', 600);
      const profile = await fetch(`${base()}/status/profile?userId=4002,4001,4003`);
      expect(profile.status).toBe(200);
      const body = (await profile.json()) as Array<{ userId: string; online: boolean }>;
      expect(body.map((s) => [s.userId, s.online])).toEqual([
        ['4002', false],
        ['4001', true],
        ['4003', false],
      ]);
      const one = await fetch(`${base()}/status/4001`);
      expect(await one.json()).toMatchObject({ userId: '4001', state: 'ONLINE', online: true });
    });
  });

  describe('sign-up and search', () => {
    it('finds users on every shard, by prefix then by contained text, in name order, page by page', async () => {
      const names = ['sam05', 'sam01', 'sam04', 'sam02', 'sam03', 'Busam', 'Osama'];
      const users = [];
      for (const name of names) users.push(await server.signUp(name));
      expect((await nodesHolding(db, 'users', users.map((u) => u.id))).length).toBe(2);

      const page = (after?: string) =>
        server.graphql('query ($after: String) { searchUsers(query: "sam", first: 4, after: $after) { edges { cursor node { name } } pageInfo { hasNextPage } } }', {
          variables: { after },
        });
      const first = await page();
      const edges = first.body.data!.searchUsers.edges as Array<{ cursor: string; node: { name: string } }>;
      expect(edges.map((e) => e.node.name)).toEqual(['sam01', 'sam02', 'sam03', 'sam04']);
      expect(first.body.data!.searchUsers.pageInfo.hasNextPage).toBe(true);
      const second = await page(edges.at(-1)!.cursor);
      expect((second.body.data!.searchUsers.edges as Array<{ node: { name: string } }>).map((e) => e.node.name)).toEqual(['sam05', 'Busam', 'Osama']);
      expect(second.body.data!.searchUsers.pageInfo.hasNextPage).toBe(false);
    });

    it('lists a fragment inside many names in sign-up order, from every shard, each match once', async () => {
      // Past one search budget of users, with one name in ten containing "qix":
      // a common fragment, walked in id order on every shard.
      const names = Array.from({ length: 6000 }, (_, i) => (i % 10 === 0 ? `w${i}qix` : `filler${i}`));
      await sql`insert into users (name) select n from unnest(${names}::text[]) as t (n)`.execute(db);
      const seen: string[] = [];
      let after: string | null = null;
      for (let page = 0; page < 20; page++) {
        const reply = await server.graphql(
          'query ($after: String) { searchUsers(query: "qix", first: 100, after: $after) { edges { node { name } } pageInfo { hasNextPage endCursor } } }',
          { variables: { after } },
        );
        expect(reply.body.errors).toBeUndefined();
        const connection = reply.body.data!.searchUsers;
        seen.push(...(connection.edges as Array<{ node: { name: string } }>).map((e) => e.node.name));
        if (!connection.pageInfo.hasNextPage) break;
        after = connection.pageInfo.endCursor;
      }
      const { rows } = await sql<{ name: string }>`select name from users where lower(name) like '%qix%' order by id`.execute(db);
      expect(rows).toHaveLength(600);
      expect(seen).toEqual(rows.map((row) => row.name));
      expect(seen).not.toEqual([...seen].sort());
    });

    it('keeps names unique in any letter case, even for sign-ups at the same moment', async () => {
      await server.signUp('Quinn');
      const taken = await server.graphql('mutation { createUser(name: "QUINN") { user { id } } }');
      expect(taken.body.errors![0]!.extensions!.code).toBe('USERNAME_TAKEN');

      const spellings = ['Robin', 'robin', 'ROBIN', 'rObIn', 'RoBiN', 'robiN'];
      const replies = await Promise.all(spellings.map((name) => server.graphql('mutation ($name: String!) { createUser(name: $name) { user { id } } }', { variables: { name } })));
      const codes = replies.map((r) => (r.body.errors ? r.body.errors[0]!.extensions!.code : 'CREATED'));
      expect(codes.filter((c) => c === 'CREATED')).toHaveLength(1);
      expect(codes.filter((c) => c === 'USERNAME_TAKEN')).toHaveLength(spellings.length - 1);
      const { rows } = await sql<{ n: string }>`select count(*) as n from users where lower(name) = 'robin'`.execute(db);
      expect(Number(rows[0]!.n)).toBe(1);
    });
  });

  describe('follows, manual status and privacy', () => {
    it('applies every rule with the two users on different shards', async () => {
      let ann = await server.signUp('Ann');
      let bob = await server.signUp('Bob');
      // Sign up more until Ann and Bob sit on different workers: the rules must hold across nodes.
      for (let i = 0; (await nodesHolding(db, 'users', [ann.id, bob.id])).length < 2; i++) bob = await server.signUp(`Bob${i}`);

      const missing = await server.graphql('mutation { follow(userId: "77") { name } }', { token: ann.token });
      expect(missing.body.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
      expect(missing.body.errors![0]!.message).toMatch(/no user has this id/);

      expect((await server.graphql(`mutation { follow(userId: "${bob.id}") { name } }`, { token: ann.token })).body.data).toEqual({ follow: { name: bob.name } });
      expect((await server.graphql('{ following { name } }', { token: ann.token })).body.data).toEqual({ following: [{ name: bob.name }] });
      expect((await server.graphql('{ followers { name } }', { token: bob.token })).body.data).toEqual({ followers: [{ name: 'Ann' }] });

      await server.graphql('mutation { heartbeat { online } }', { token: ann.token });
      await server.graphql('mutation { updatePrivacy(visibility: CONTACTS) { visibility } }', { token: ann.token });
      const annAs = async (token?: string) => (await server.graphql(`{ status(id: "${ann.id}") { state lastSeen } }`, { token })).body.data!.status;
      // Ann's contacts are the users she follows: Bob sees her, nobody else does.
      expect(await annAs()).toEqual({ state: 'OFFLINE', lastSeen: null });
      expect((await annAs(bob.token)).state).toBe('ONLINE');
      expect((await annAs(server.token('555'))).state).toBe('OFFLINE');

      await server.graphql('mutation { setStatus(status: AWAY, text: "lunch") { state } }', { token: ann.token });
      expect((await server.graphql(`{ status(id: "${ann.id}") { state statusText } }`, { token: bob.token })).body.data!.status).toEqual({ state: 'AWAY', statusText: 'lunch' });

      // Ann stops following Bob: he is no longer her contact and sees nothing of her.
      await server.graphql(`mutation { unfollow(userId: "${bob.id}") }`, { token: ann.token });
      expect(await annAs(bob.token)).toEqual({ state: 'OFFLINE', lastSeen: null });
      expect((await server.graphql('{ following { name } }', { token: ann.token })).body.data).toEqual({ following: [] });
      await server.graphql(`mutation { follow(userId: "${bob.id}") { name } }`, { token: ann.token });

      const before = await annAs(bob.token);
      expect(before.lastSeen).not.toBeNull();
      await server.graphql('mutation { setStatus(status: INVISIBLE) { state } }', { token: ann.token });
      await setLastHeartbeat(ann.id, 0);
      // Invisible: offline to Bob, last seen frozen at the moment she went invisible.
      expect(await annAs(bob.token)).toEqual({ state: 'OFFLINE', lastSeen: before.lastSeen });
    });
  });

  describe('retention', () => {
    it('deletes rows older than the retention period on every shard, and keeps the rest', async () => {
      const old = Array.from({ length: 20 }, (_, i) => String(60_000 + i));
      const fresh = Array.from({ length: 20 }, (_, i) => String(70_000 + i));
      for (const id of old) await setLastHeartbeat(id, 7200);
      for (const id of fresh) await setLastHeartbeat(id, 10);
      expect((await nodesHolding(db, 'pulse', old)).length).toBe(2);

      const { rows: now } = await sql<{ now: Date }>`select now() as now`.execute(db);
      const result = await runRetention(db, now[0]!.now, { retentionSeconds: 3600, batchSize: 7 });
      expect(result).toMatchObject({ ran: true });
      const { rows } = await sql<{ user_id: string }>`
        select user_id::text from pulse where user_id = any(${[...old, ...fresh]}::bigint[]) order by user_id
      `.execute(db);
      expect(rows.map((r) => r.user_id)).toEqual(fresh);
    });
  });
});

const WATCH = 'subscription ($ids: [ID!]) { presenceChanged(ids: $ids) { userId state lastSeen } }';
const state = (e: StreamEvent) => e.data?.presenceChanged as { userId: string; state: string; lastSeen: string | null } | undefined;
const isState = (userId: string, expected: string) => (e: StreamEvent) => state(e)?.userId === userId && state(e)?.state === expected;

const buses: Array<[string, Record<string, string>]> = [['PostgreSQL LISTEN/NOTIFY', {}]];
if (process.env.TEST_REDIS_URL) buses.push(['Redis pub/sub', { REDIS_URL: process.env.TEST_REDIS_URL }]);

describeCitus.each(buses)(title('live presence on Citus with the %s bus'), (_bus, busEnv) => {
  let database: CitusDatabase;
  let db: Database;
  let a: TestServer;
  let b: TestServer;
  const open: Subscription[] = [];
  const watch = async (ids: string[]) => {
    const s = await subscribe(`${a.pulse.graphqlUrl}/stream`, WATCH, { variables: { ids } });
    open.push(s);
    return s;
  };

  beforeAll(async () => {
    database = await createCitusDatabase(cluster);
    db = createDatabase({ url: database.url, poolMax: 1, connectionTimeoutMs: 5_000, statementTimeoutMs: 30_000, logger: silentLogger });
    await migrateToLatest(db, silentLogger);
    await distributeTables(db, []);
    // A short threshold, so that going offline arrives within a test's patience.
    const env = { DATABASE_URL: database.url, DB_POOL_MAX: '3', PRESENCE_THRESHOLD_SECONDS: '2', HEARTBEAT_MIN_WRITE_GAP_SECONDS: '0', MIGRATE_ON_START: 'false', ...busEnv };
    a = await startTestServer(env);
    b = await startTestServer(env);
  });
  afterEach(() => {
    for (const s of open.splice(0)) s.close();
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await db?.destroy();
    await database?.drop();
  });

  it('tells a subscriber on one server that users came online with heartbeats on another, then offline', async () => {
    const users = ['101', '102', '103', '104'];
    expect((await nodesHolding(db, 'pulse', users)).length).toBe(2);
    const s = await watch(users);
    await Promise.all(users.map((u) => s.next(isState(u, 'OFFLINE'))));

    const replies = await Promise.all(users.map((u) => b.graphql('mutation { heartbeat { online } }', { token: b.token(u) })));
    expect(replies.map((r) => r.body.data)).toEqual(users.map(() => ({ heartbeat: { online: true } })));
    const online = await Promise.all(users.map((u) => s.next(isState(u, 'ONLINE'))));
    expect(online.every((e) => state(e)!.lastSeen !== null)).toBe(true);

    // Nobody sends anything more: each goes offline when the threshold passes.
    await Promise.all(users.map((u) => s.next((e) => isState(u, 'OFFLINE')(e) && state(e)!.lastSeen !== null)));
  });

  it('tells subscribers of a manual status set on another server', async () => {
    const s = await watch(['201']);
    await s.next(isState('201', 'OFFLINE'));
    await b.graphql('mutation { heartbeat { online } }', { token: b.token('201') });
    await s.next(isState('201', 'ONLINE'));
    const set = await b.graphql('mutation { setStatus(status: BUSY) { state } }', { token: b.token('201') });
    expect(set.body.data).toEqual({ setStatus: { state: 'BUSY' } });
    await s.next(isState('201', 'BUSY'));
  });
});
