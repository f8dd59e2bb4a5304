/**
 * Users over GraphQL: sign-up with a token, me and user, name search with cursor
 * pagination, follows. Statuses of users come through the status loader: one
 * status statement per request.
 */
import { sql } from 'kysely';
import { searchUsersQuery } from '../src/users/user-repository';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startTestServer, type TestServer } from './support/test-server';

let t: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  t = await createTestDatabase();
  server = await startTestServer({ DATABASE_URL: t.url, HEARTBEAT_MIN_INTERVAL_MS: '0' });
});
afterAll(async () => {
  await server.stop();
  await t.destroy();
});
beforeEach(async () => {
  await sql`truncate users, follows, presence_settings, pulse restart identity`.execute(t.db);
  server.statements.length = 0;
});

const CREATE = 'mutation ($name: String!) { createUser(name: $name) { user { id name createdAt } token } }';

const signUp = (name: string) => server.signUp(name);

function errorCode(reply: { body: { errors?: Array<{ extensions?: { code?: string } }> } }): string | undefined {
  return reply.body.errors?.[0]?.extensions?.code;
}

/** Status statements: the ones that read pulse (the status read joins it). */
const statusStatements = () => server.statements.filter((s) => /\bfrom unnest\b/.test(s) && /\bpulse\b/.test(s));

describe('createUser', () => {
  it('signs a user up with a token that works for heartbeat and me', async () => {
    const ann = await signUp('  Ann Lee ');
    expect(ann.name).toBe('Ann Lee');
    expect(BigInt(ann.id)).toBeGreaterThanOrEqual(9_000_000_000_000_000_000n);

    const beat = await server.graphql('mutation { heartbeat { userId state online } }', { token: ann.token });
    expect(beat.body.data!.heartbeat).toEqual({ userId: ann.id, state: 'ONLINE', online: true });

    const me = await server.graphql('{ me { id name createdAt status { state } } }', { token: ann.token });
    expect(me.body.data!.me).toMatchObject({ id: ann.id, name: 'Ann Lee', status: { state: 'ONLINE' } });
    expect(me.body.data!.me.createdAt).toMatch(/^\d{4}-\d{2}-\d{2}T/);
  });

  it('refuses a name that is taken in any letter case, with USERNAME_TAKEN', async () => {
    await signUp('Ann');
    for (const name of ['Ann', 'ann', ' ANN  ']) {
      const reply = await server.graphql(CREATE, { variables: { name } });
      expect(errorCode(reply)).toBe('USERNAME_TAKEN');
      expect(reply.body.errors![0]!.message).toContain('is taken');
    }
    const { rows } = await sql`select name from users`.execute(t.db);
    expect(rows).toEqual([{ name: 'Ann' }]);
  });

  it.each([
    ['', /empty/],
    ['    ', /empty/],
    ['x'.repeat(65), /65 characters, expected at most 64/],
    ['two\nlines', /control character/],
    ['nul\u0000byte', /control character/],
  ])('refuses the name %j with BAD_USER_INPUT saying why', async (name, why) => {
    const reply = await server.graphql(CREATE, { variables: { name } });
    expect(errorCode(reply)).toBe('BAD_USER_INPUT');
    expect(reply.body.errors![0]!.message).toMatch(why);
  });

  it('counts characters, not bytes: 64 emoji make a valid name', async () => {
    const user = await signUp('🙂'.repeat(64));
    expect([...user.name]).toHaveLength(64);
  });
});

describe('me and user', () => {
  it('answers null for me without a token, and for a user known only by id', async () => {
    expect((await server.graphql('{ me { id } }')).body.data).toEqual({ me: null });
    expect((await server.graphql('{ me { id } }', { token: 'garbage' })).body.data).toEqual({ me: null });
    expect((await server.graphql('{ me { id } }', { token: server.token('42') })).body.data).toEqual({ me: null });
  });

  it('finds a user by id, answers null for an unknown one and refuses a bad one', async () => {
    const ann = await signUp('Ann');
    const found = await server.graphql('query ($id: ID!) { user(id: $id) { name } }', { variables: { id: ann.id } });
    expect(found.body.data).toEqual({ user: { name: 'Ann' } });
    expect((await server.graphql('{ user(id: "7") { name } }')).body.data).toEqual({ user: null });
    expect(errorCode(await server.graphql('{ user(id: "x") { name } }'))).toBe('BAD_USER_INPUT');
  });

  it('keeps users known only by id working as before: heartbeat and statuses need no users row', async () => {
    const beat = await server.graphql('mutation { heartbeat { userId online } }', { token: server.token('42') });
    expect(beat.body.data!.heartbeat).toEqual({ userId: '42', online: true });
    const read = await server.graphql('{ statuses(ids: ["42", "43"]) { userId state } }');
    expect(read.body.data!.statuses).toEqual([
      { userId: '42', state: 'ONLINE' },
      { userId: '43', state: 'OFFLINE' },
    ]);
  });
});

describe('searchUsers', () => {
  const SEARCH = `query ($q: String!, $first: Int, $after: String) {
    searchUsers(query: $q, first: $first, after: $after) {
      edges { cursor node { id name status { state } } }
      pageInfo { hasNextPage endCursor }
    }
  }`;
  const search = (q: string, first?: number, after?: string | null) => server.graphql(SEARCH, { variables: { q, first, after } });
  const names = (reply: Awaited<ReturnType<typeof search>>) =>
    (reply.body.data!.searchUsers.edges as Array<{ node: { name: string } }>).map((e) => e.node.name);

  it('ignores letter case and lists names that start with the query before names that contain it', async () => {
    for (const name of ['Joanna', 'annie', 'Marianne', 'ANNA', 'Bob', 'Hannah']) await signUp(name);
    expect(names(await search('ANN'))).toEqual(['ANNA', 'annie', 'Hannah', 'Joanna', 'Marianne']);
    expect(names(await search('an', 10))).toEqual(['ANNA', 'annie']);
  });

  it('treats % and _ in the query as plain characters', async () => {
    for (const name of ['100% real', '100 real', 'a_b', 'axb']) await signUp(name);
    expect(names(await search('100%'))).toEqual(['100% real']);
    expect(names(await search('a_b'))).toEqual(['a_b']);
  });

  it('pages through every match exactly once, prefix matches and then contains matches', async () => {
    const expected: string[] = [];
    for (let i = 0; i < 13; i++) expected.push(`sam${String(i).padStart(2, '0')}`);
    for (let i = 0; i < 9; i++) expected.push(`x-sam${i}`);
    for (const name of [...expected].reverse()) await signUp(name);
    await signUp('unrelated');

    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 20; page++) {
      const reply = await search('sam', 4, after);
      const connection = reply.body.data!.searchUsers;
      seen.push(...names(reply));
      expect(connection.pageInfo.endCursor).toBe(connection.edges.at(-1)?.cursor ?? null);
      if (!connection.pageInfo.hasNextPage) break;
      after = connection.pageInfo.endCursor;
    }
    expect(seen).toEqual(expected);

    // An edge's cursor continues right after that edge.
    const first = await search('sam', 3);
    const fromSecond = await search('sam', 2, first.body.data!.searchUsers.edges[1].cursor);
    expect(names(fromSecond)).toEqual(['sam02', 'sam03']);
  });

  it('resolves the statuses of a whole page with one status statement', async () => {
    const users = [];
    for (const name of ['kim1', 'kim2', 'kim3', 'kim4', 'kim5']) users.push(await signUp(name));
    await server.graphql('mutation { heartbeat { online } }', { token: users[1]!.token });
    server.statements.length = 0;

    const reply = await search('kim', 5);
    const states = (reply.body.data!.searchUsers.edges as Array<{ node: { status: { state: string } } }>).map((e) => e.node.status.state);
    expect(states).toEqual(['OFFLINE', 'ONLINE', 'OFFLINE', 'OFFLINE', 'OFFLINE']);
    expect(statusStatements()).toHaveLength(1);
    expect(server.statements).toHaveLength(2);
  });

  it('lets a full page of 100 with every field through the abuse limits', async () => {
    for (let i = 0; i < 3; i++) await signUp(`full${i}`);
    const reply = await server.graphql(
      `{ searchUsers(query: "full", first: 100) {
           edges { cursor node { id name createdAt status { userId state online lastSeen statusText manualStatus } } }
           pageInfo { hasNextPage endCursor }
         }
         me { id name createdAt status { userId state online lastSeen statusText manualStatus } } }`,
      { token: server.token('42') },
    );
    expect(reply.body.errors).toBeUndefined();
    expect(reply.body.data!.searchUsers.edges).toHaveLength(3);

    // Four such pages in one document is past the cost limit, refused before any SQL.
    const page = (alias: string) =>
      `${alias}: searchUsers(query: "full", first: 100) { edges { cursor node { id name createdAt status { userId state online lastSeen statusText manualStatus } } } }`;
    server.statements.length = 0;
    const greedy = await server.graphql(`{ ${['a', 'b', 'c', 'd'].map(page).join(' ')} }`);
    expect(greedy.body.errors![0]!.extensions!.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(greedy.body.errors![0]!.message).toMatch(/Query Cost limit of 20000 exceeded/);
    expect(server.statements).toHaveLength(0);
  });

  it.each<[{ q: string; first: number; after?: string }, RegExp]>([
    [{ q: '', first: 5 }, /Invalid query: it is empty/],
    [{ q: 'x'.repeat(65), first: 5 }, /Invalid query: 65 characters/],
    [{ q: 'ann', first: 0 }, /Invalid first 0: expected 1 to 100/],
    [{ q: 'ann', first: 101 }, /Invalid first 101: expected 1 to 100/],
    [{ q: 'ann', first: 5, after: 'not-a-cursor' }, /Invalid cursor "not-a-cursor"/],
    [{ q: 'ann', first: 5, after: Buffer.from('[2,"99999999999999999999"]').toString('base64url') }, /Invalid cursor/],
    [{ q: 'a\u0000b', first: 5 }, /Invalid query: it contains a control character/],
  ])('refuses %j with BAD_USER_INPUT naming the problem', async ({ q, first, after }, why) => {
    const reply = await search(q, first, after);
    expect(errorCode(reply)).toBe('BAD_USER_INPUT');
    expect(reply.body.errors![0]!.message).toMatch(why);
  });

  it('is served by the name indexes, not by reading the whole table', async () => {
    // The plans at a million users, with timings, are in docs/users.md
    // (bench/users-plans.ts). Here: the indexes match the statement's expressions.
    await sql`
      insert into users (name)
      select 'user' || g || ' ' || md5(g::text) from generate_series(1, 20000) as g
    `.execute(t.db);
    await sql`analyze users`.execute(t.db);
    const plan = (query: string, includeContains: boolean) =>
      t.db.transaction().execute(async (trx) => {
        // On 20,000 short rows a sequential scan of the contains candidates is a
        // fair choice; forbidding it shows whether an index could serve instead.
        await sql`set local enable_seqscan = off`.execute(trx);
        const statement = searchUsersQuery({ query, includeContains, after: null, limit: 21 })!;
        const { rows } = await sql<{ 'QUERY PLAN': string }>`explain ${statement}`.execute(trx);
        return rows.map((row) => row['QUERY PLAN']).join('\n');
      });
    const prefixOnly = await plan('user12', false);
    expect(prefixOnly).toMatch(/Index Scan using users_name_key on users/);
    expect(prefixOnly).toMatch(/Index Cond: .*>= 'user12'.*< 'user13'/);
    const withContains = await plan('3a7f', true);
    expect(withContains).toMatch(/Index Scan using users_name_key/);
    expect(withContains).toMatch(/Bitmap Index Scan on users_name_trgm/);
    expect(withContains).not.toMatch(/Seq Scan/);
  });
});

describe('searchUsers in a directory larger than one search budget', () => {
  // Past SEARCH_BUDGET users, a fragment inside many names is listed in
  // sign-up order, and each page reads a bounded number of rows.
  const PAGE = `query ($q: String!, $after: String) {
    searchUsers(query: $q, first: 100, after: $after) { edges { cursor node { name } } pageInfo { hasNextPage endCursor } }
  }`;
  type Page = { names: string[]; hasNextPage: boolean; endCursor: string | null; lastEdgeCursor: string | null };

  /** Every page of a search, following endCursor until hasNextPage is false. */
  async function allPages(q: string): Promise<Page[]> {
    const pages: Page[] = [];
    let after: string | null = null;
    for (let i = 0; i < 200; i++) {
      const reply = await server.graphql(PAGE, { variables: { q, after } });
      expect(reply.body.errors).toBeUndefined();
      const connection = reply.body.data!.searchUsers;
      const edges = connection.edges as Array<{ cursor: string; node: { name: string } }>;
      pages.push({
        names: edges.map((e) => e.node.name),
        hasNextPage: connection.pageInfo.hasNextPage,
        endCursor: connection.pageInfo.endCursor,
        lastEdgeCursor: edges.at(-1)?.cursor ?? null,
      });
      if (!connection.pageInfo.hasNextPage) return pages;
      after = connection.pageInfo.endCursor;
    }
    throw new Error(`more than 200 pages for ${q}`);
  }

  /** Adds users named by `name(i)` for i in [from, to), in that sign-up order. */
  async function addUsers(from: number, to: number, name: (i: number) => string): Promise<void> {
    const names = Array.from({ length: to - from }, (_, k) => name(from + k));
    await sql`insert into users (name) select n from unnest(${names}::text[]) with ordinality as t (n, position) order by position`.execute(t.db);
  }

  const expected = async (q: string, order: 'id' | 'name') => {
    const { rows } = await sql<{ name: string }>`
      select name from users
       where lower(name) like ${`%${q}%`} and lower(name) collate "C" not like ${`${q}%`}
       order by ${order === 'id' ? sql`id` : sql`lower(name) collate "C"`}
    `.execute(t.db);
    return rows.map((row) => row.name);
  };

  it('lists prefix matches by name, then a common fragment in sign-up order, every match once, in full pages', async () => {
    // One name in ten contains "ana"; the alphabet and the sign-up order disagree.
    await addUsers(0, 12_000, (i) => (i % 10 === 0 ? `${String.fromCharCode(122 - (i % 26))}${i}ana` : `user${i}`));
    for (const name of ['Anabel', 'ana2', 'ANA1']) await signUp(name);

    const pages = await allPages('ana');
    const seen = pages.flatMap((page) => page.names);
    expect(seen.slice(0, 3)).toEqual(['ANA1', 'ana2', 'Anabel']);
    expect(seen.slice(3)).toEqual(await expected('ana', 'id'));
    expect(seen).toHaveLength(1203);
    expect(new Set(seen).size).toBe(seen.length);
    // Not the alphabet: the first contains match is the first user who signed up with it.
    expect(seen[3]).toBe('z0ana');
    // A fragment in one name in ten fills every page but the last.
    expect(pages.slice(0, -1).every((page) => page.names.length === 100)).toBe(true);
  });

  it('stops a page short after a long stretch without matches, says where it stopped, and goes on from there', async () => {
    await addUsers(0, 5_000, (i) => (i % 10 === 0 ? `m${i}ana` : `user${i}`));
    await addUsers(5_000, 17_000, (i) => `user${i}`);
    await addUsers(17_000, 17_050, (i) => `late${i}ana`);

    const pages = await allPages('ana');
    const seen = pages.flatMap((page) => page.names);
    expect(seen).toEqual(await expected('ana', 'id'));
    expect(seen).toHaveLength(550);
    // The 12,000 names without a match take more than one budget: some page
    // comes back short but promises more, its endCursor past its last edge.
    const short = pages.filter((page) => page.hasNextPage && page.names.length < 100);
    expect(short.length).toBeGreaterThan(0);
    for (const page of short) expect(page.endCursor).not.toBe(page.lastEdgeCursor);
    expect(pages.at(-1)!.names.slice(-1)).toEqual(['late17049ana']);
  });

  it('keeps a fragment that is rare among the first users in name order, walking the names when it has more matches than the budget', async () => {
    // None of the first 5,000 users has it, so it is not common; the 6,000
    // later ones all have it, more than the trigram branch may sort at once.
    await addUsers(0, 5_000, (i) => `b${i}`);
    await addUsers(5_000, 11_000, (i) => `${String.fromCharCode(122 - (i % 3))}${i}qan`);

    const pages = await allPages('qan');
    // The first budget of names in order are the "b"s: nothing yet, and it says so.
    expect(pages[0]).toMatchObject({ names: [], hasNextPage: true });
    const seen = pages.flatMap((page) => page.names);
    expect(seen).toEqual(await expected('qan', 'name'));
    expect(seen).toHaveLength(6000);
    expect(new Set(seen).size).toBe(seen.length);
  });

  it('lists a fragment that is rare in a large directory by name, from the trigram index', async () => {
    await addUsers(0, 12_000, (i) => (i % 1000 === 7 ? `${String.fromCharCode(122 - (i % 26))}${i}xyq` : `user${i}`));
    server.statements.length = 0;
    const pages = await allPages('xyq');
    expect(pages).toHaveLength(1);
    expect(pages[0]!.names).toEqual(await expected('xyq', 'name'));
    expect(pages[0]!.names).toHaveLength(12);
    // One search statement for the page (then one status read, if asked: not here).
    expect(server.statements).toHaveLength(1);
  });
});

describe('follows', () => {
  const FOLLOW = 'mutation ($id: ID!) { follow(userId: $id) { id name } }';
  const UNFOLLOW = 'mutation ($id: ID!) { unfollow(userId: $id) }';

  it('follows and unfollows idempotently, and lists following and followers', async () => {
    const ann = await signUp('Ann');
    const bob = await signUp('Bob');
    const cat = await signUp('Cat');

    for (let i = 0; i < 2; i++) {
      const reply = await server.graphql(FOLLOW, { token: ann.token, variables: { id: bob.id } });
      expect(reply.body.data!.follow).toEqual({ id: bob.id, name: 'Bob' });
    }
    await server.graphql(FOLLOW, { token: ann.token, variables: { id: cat.id } });
    await server.graphql(FOLLOW, { token: cat.token, variables: { id: bob.id } });

    const annView = await server.graphql('{ following { name } followers { name } }', { token: ann.token });
    expect(annView.body.data).toEqual({ following: [{ name: 'Bob' }, { name: 'Cat' }], followers: [] });
    const bobView = await server.graphql('{ following { name } followers { name } }', { token: bob.token });
    expect(bobView.body.data).toEqual({ following: [], followers: [{ name: 'Ann' }, { name: 'Cat' }] });

    const first = await server.graphql(UNFOLLOW, { token: ann.token, variables: { id: bob.id } });
    const again = await server.graphql(UNFOLLOW, { token: ann.token, variables: { id: bob.id } });
    expect(first.body.data).toEqual({ unfollow: true });
    expect(again.body.data).toEqual({ unfollow: false });
    expect((await server.graphql('{ following { name } }', { token: ann.token })).body.data).toEqual({ following: [{ name: 'Cat' }] });
  });

  it('refuses following yourself, an unknown user, or following before signing up, with BAD_USER_INPUT', async () => {
    const ann = await signUp('Ann');
    const self = await server.graphql(FOLLOW, { token: ann.token, variables: { id: ann.id } });
    expect(errorCode(self)).toBe('BAD_USER_INPUT');
    expect(self.body.errors![0]!.message).toMatch(/cannot follow yourself/);

    const unknown = await server.graphql(FOLLOW, { token: ann.token, variables: { id: '7' } });
    expect(errorCode(unknown)).toBe('BAD_USER_INPUT');
    expect(unknown.body.errors![0]!.message).toMatch(/Invalid userId 7: no user has this id/);

    const tokenOnly = await server.graphql(FOLLOW, { token: server.token('42'), variables: { id: ann.id } });
    expect(errorCode(tokenOnly)).toBe('BAD_USER_INPUT');
    expect(tokenOnly.body.errors![0]!.message).toMatch(/has not signed up/);

    expect(errorCode(await server.graphql(UNFOLLOW, { token: ann.token, variables: { id: ann.id } }))).toBe('BAD_USER_INPUT');
    expect(errorCode(await server.graphql(FOLLOW, { token: ann.token, variables: { id: 'abc' } }))).toBe('BAD_USER_INPUT');
  });

  it('needs a token to follow or list follows', async () => {
    const ann = await signUp('Ann');
    const reply = await server.graphql(FOLLOW, { variables: { id: ann.id } });
    expect(reply.status).toBe(401);
    expect(errorCode(reply)).toBe('UNAUTHENTICATED');
    expect(errorCode(await server.graphql('{ following { name } }'))).toBe('UNAUTHENTICATED');
  });

  it('resolves following { status } with one status statement', async () => {
    const ann = await signUp('Ann');
    const friends = [];
    for (const name of ['Bob', 'Cat', 'Dan', 'Eve']) friends.push(await signUp(name));
    for (const friend of friends) await server.graphql(FOLLOW, { token: ann.token, variables: { id: friend.id } });
    await server.graphql('mutation { heartbeat { online } }', { token: friends[2]!.token });
    server.statements.length = 0;

    const reply = await server.graphql('{ following { name status { state } } }', { token: ann.token });
    expect(reply.body.data!.following.map((u: { status: { state: string } }) => u.status.state)).toEqual([
      'OFFLINE',
      'OFFLINE',
      'ONLINE',
      'OFFLINE',
    ]);
    expect(statusStatements()).toHaveLength(1);
  });
});
