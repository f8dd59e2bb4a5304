/**
 * The plans of the users queries at scale. Fills the database in DATABASE_URL up
 * to USERS (default 1,000,000) users, each with a pulse row, one in ten with
 * presence settings and one in five following someone, then prints
 * EXPLAIN (ANALYZE, BUFFERS) of name searches and of the status read for 1000
 * ids, and a table of what each search page costs: the first run after the
 * fill (cache state as the fill left it) and the median of ROUNDS (default 7)
 * warm runs, the searches taking turns in every round. Run it against a scratch
 * database: it adds rows.
 *
 * CANDIDATES=1 also builds the indexes of the designs the contains search did
 * not take (a GiST trigram index ordered by distance, a tsvector of name words),
 * measures them, and drops them again.
 *
 *   DATABASE_URL=postgres://.../scratch npm run -s bench:plans
 */
import fs from 'node:fs';
import { sql, type RawBuilder } from 'kysely';
import { createDatabase, type Database } from '../src/db/database';
import { migrateToLatest } from '../src/db/migrator';
import { createLogger } from '../src/logger';
import { statusRowsQuery } from '../src/presence/status-repository';
import type { UserId } from '../src/presence/user-id';
import { searchUsersQuery, walkContainsQuery, type NameSearch } from '../src/users/user-repository';

const FIRST_ID = 9_000_000_000_000_000_000n;

async function main(): Promise<void> {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('Set DATABASE_URL to a scratch database');
  const target = Number(process.env.USERS ?? 1_000_000);
  const logger = createLogger('warn');
  const db = createDatabase({ url, poolMax: 1, connectionTimeoutMs: 5000, statementTimeoutMs: 3_600_000, logger });
  try {
    await migrateToLatest(db, logger);
    await fill(db, target);

    const { rows: middle } = await sql<{ id: string; sort_name: string }>`
      select id::text as id, lower(name) as sort_name from users order by id offset ${Math.floor(target / 2)} limit 1
    `.execute(db);
    const halfwayId = middle[0]!.id;
    const search = (s: NameSearch) => searchUsersQuery(s)!;
    // Each search page as the statements Pulse runs for it (searchUsersByName).
    const pages: Array<[string, RawBuilder<unknown>[]]> = [
      ['prefix "hana 3f", first page of 20', [search({ query: 'hana 3f', includeContains: false, after: null, limit: 21 })]],
      ['prefix "ada", page after "ada 8"', [search({ query: 'ada', includeContains: false, after: { tier: 0, sortName: 'ada 8' }, limit: 21 })]],
      ['"3f2c" (rare): first page, prefix then contains by name', [search({ query: '3f2c', includeContains: true, after: null, limit: 21 })]],
      ['"3f2c": a later page (after "hana 3f2c")', [search({ query: '3f2c', includeContains: true, after: { tier: 1, sortName: 'hana 3f2c' }, limit: 21 })]],
      ['"ana 3f" (rare, common trigrams): first page', [search({ query: 'ana 3f', includeContains: true, after: null, limit: 21 })]],
      // The old worst case: "ana" is inside one name in ten ("Hana ...").
      ['"ana" (common): first page, contains in sign-up order', [search({ query: 'ana', includeContains: true, after: null, limit: 21 })]],
      ['"ana": a page halfway through the directory', [walkContainsQuery('ana', { by: 'id', after: halfwayId }, 21)]],
      ['"ana": a page of 100 halfway through', [walkContainsQuery('ana', { by: 'id', after: halfwayId }, 101)]],
      // A cursor a client forged (or a search that grew past the budget): the
      // sorted branch stops at the budget, then the names are walked in order.
      [
        '"ana" from a name-order cursor: capped sort, then name walk',
        [search({ query: 'ana', includeContains: true, after: { tier: 1, sortName: 'a' }, limit: 21 }), walkContainsQuery('ana', { by: 'name', after: 'a' }, 21)],
      ],
    ];
    for (const [title, statements] of pages) {
      for (const statement of statements) await explain(db, title, statement);
    }
    await costTable(db, [
      ...pages,
      // What every "ana" page cost before: every match fetched and sorted.
      ['before: "ana", first page, every match sorted', [beforeAna()]],
    ]);
    if (process.env.CANDIDATES === '1') {
      // Measured apart, and their indexes dropped after: the GiST index also
      // serves LIKE, and the planner would take it for Pulse's own statements.
      try {
        await costTable(db, await candidateDesigns(db, halfwayId));
      } finally {
        await sql`drop index if exists bench_users_name_gist`.execute(db);
        await sql`drop index if exists bench_users_name_words`.execute(db);
        await sql`analyze users`.execute(db);
      }
    }

    const { rows } = await sql<{ id: string }>`select id::text as id from users order by random() limit 1000`.execute(db);
    const ids = rows.map((row) => row.id as UserId);
    const viewer = String(FIRST_ID + 1n) as UserId;
    await explain(db, 'status read, 1000 random ids (cold)', statusRowsQuery(ids, viewer, 30));
    await explain(db, 'status read, 1000 random ids (warm)', statusRowsQuery(ids, viewer, 30));
  } finally {
    await db.destroy();
  }
}

// Private: names like "Ada 3f2c9e01ab": a first name from a short list (many
// share a prefix, as real names do) and a random hex tail (many distinct trigrams).
async function fill(db: Database, target: number): Promise<void> {
  const { rows } = await sql<{ n: string }>`select count(*) as n from users`.execute(db);
  const missing = target - Number(rows[0]!.n);
  if (missing <= 0) return;
  console.log(`adding ${missing} users with pulse rows, settings and follows...`);
  await sql`
    insert into users (name)
    select (array['Ada','Ben','Cleo','Dan','Eva','Finn','Gus','Hana','Ivo','Jo'])[1 + g % 10]
           || ' ' || substr(md5(g::text || random()::text), 1, 10)
      from generate_series(1, ${missing}) as g
    on conflict do nothing
  `.execute(db);
  await sql`
    insert into pulse (user_id, last_hb)
    select id, now() - random() * interval '1 hour' from users
    on conflict do nothing
  `.execute(db);
  await sql`
    insert into presence_settings (user_id, manual_status, visibility)
    select id, (array['AUTO','AWAY','BUSY','INVISIBLE'])[1 + (id % 4)::int],
               (array['EVERYONE','CONTACTS','NOBODY'])[1 + (id % 3)::int]
      from users where id % 10 = 0
    on conflict do nothing
  `.execute(db);
  await sql`
    insert into follows (follower_id, followee_id)
    select u.id, v.id from users u join users v on v.id = u.id + 1
     where u.id % 5 = 0
    on conflict do nothing
  `.execute(db);
  await sql`vacuum analyze`.execute(db);
}

// Private: the statement every "ana" search page ran before sign-up order: all
// contains matches through the trigram index, sorted by name.
function beforeAna(): RawBuilder<unknown> {
  return sql`
    with contains as materialized (
      select id::text as id, name, created_at, lower(name) collate "C" as sort_name
        from users
       where lower(name) like '%ana%' and lower(name) collate "C" not like 'ana%'
    )
    select id, name, created_at, 1 as tier, sort_name from contains order by sort_name limit 21
  `;
}

// Private: the designs the contains search did not take, each with the index it
// needs (built here on the scratch database; the caller drops them).
async function candidateDesigns(db: Database, halfwayId: string): Promise<Array<[string, RawBuilder<unknown>[]]>> {
  console.log('\nbuilding candidate indexes (GiST trigram, tsvector of words)...');
  await sql`create index if not exists bench_users_name_gist on users using gist (lower(name) gist_trgm_ops)`.execute(db);
  await sql`create index if not exists bench_users_name_words on users using gin (to_tsvector('simple', name))`.execute(db);
  await sql`analyze users`.execute(db);
  const sizes = await sql<{ name: string; size: string }>`
    select relname as name, pg_size_pretty(pg_relation_size(oid)) as size from pg_class
     where relname in ('users', 'users_pkey', 'users_name_key', 'users_name_trgm', 'bench_users_name_gist', 'bench_users_name_words')
     order by relname
  `.execute(db);
  console.log(sizes.rows.map((row) => `${row.name}: ${row.size}`).join('\n'));
  // The distance of the 1000th "ana" match: where page 50 of a distance-ordered search starts.
  const { rows: deep } = await sql<{ distance: number; sort_name: string }>`
    select lower(name) <-> 'ana' as distance, lower(name) collate "C" as sort_name from users
     where lower(name) like '%ana%' order by lower(name) <-> 'ana', lower(name) collate "C" offset 1000 limit 1
  `.execute(db);
  const { distance, sort_name: deepName } = deep[0]!;
  return [
    [
      'GiST <->: "ana", first page by distance',
      [sql`select id, name from users where lower(name) like '%ana%' order by lower(name) <-> 'ana' limit 21`],
    ],
    [
      'GiST <->: "ana", page 50 (keyset on distance, name)',
      [
        sql`select id, name from users
             where lower(name) like '%ana%'
               and (lower(name) <-> 'ana', lower(name) collate "C") > (${distance}::real, ${deepName})
             order by lower(name) <-> 'ana', lower(name) collate "C" limit 21`,
      ],
    ],
    [
      'words: "han" word start (tsvector), first page by name',
      [
        sql`select id, name, lower(name) collate "C" as sort_name from users
             where to_tsvector('simple', name) @@ to_tsquery('simple', 'han:*')
             order by 3 limit 21`,
      ],
    ],
    [
      'name walk: "ana" in users_name_key order, filter only',
      [
        sql`select id, name from users
             where lower(name) like '%ana%' and lower(name) collate "C" not like 'ana%'
             order by lower(name) collate "C" limit 21`,
      ],
    ],
    ['(for scale) "ana" sign-up walk, same halfway page', [walkContainsQuery('ana', { by: 'id', after: halfwayId }, 21)]],
  ];
}

// Private: what each page costs, its statements run back to back: the first run
// (as the fill or the earlier plans left the cache), then ROUNDS warm runs with
// the pages taking turns, so a busy moment on the machine hits them alike. On a
// shared machine wall time says little, so each page also reports the CPU time
// its server process spent on it (from /proc/<backend pid>/schedstat, when the
// server runs on this machine) and the buffers it touched.
async function costTable(db: Database, pages: Array<[string, RawBuilder<unknown>[]]>): Promise<void> {
  const rounds = Number(process.env.ROUNDS ?? 7);
  const first = new Map<string, { ms: number; read: number; hit: number }>();
  const warm = new Map<string, number[]>();
  const cpu = new Map<string, number[]>();
  await db.connection().execute(async (connection) => {
    const { rows: backend } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(connection);
    const schedstat = `/proc/${backend[0]!.pid}/schedstat`;
    const onCpuNs = () => (fs.existsSync(schedstat) ? Number(fs.readFileSync(schedstat, 'utf8').split(' ')[0]) : Number.NaN);
    for (let round = 0; round <= rounds; round++) {
      for (const [title, statements] of pages) {
        let ms = 0;
        let read = 0;
        let hit = 0;
        for (const statement of statements) {
          const { rows } = await sql<{ 'QUERY PLAN': Array<{ 'Execution Time': number; Plan: { 'Shared Hit Blocks': number; 'Shared Read Blocks': number } }> }>`
            explain (analyze, buffers, format json) ${statement}
          `.execute(connection);
          const plan = rows[0]!['QUERY PLAN'][0]!;
          ms += plan['Execution Time'];
          read += plan.Plan['Shared Read Blocks'];
          hit += plan.Plan['Shared Hit Blocks'];
        }
        if (round === 0) {
          first.set(title, { ms, read, hit });
          continue;
        }
        warm.set(title, [...(warm.get(title) ?? []), ms]);
        // The statements themselves, as Pulse sends them (planning included).
        const before = onCpuNs();
        for (const statement of statements) await statement.execute(connection);
        cpu.set(title, [...(cpu.get(title) ?? []), (onCpuNs() - before) / 1e6]);
      }
    }
  });
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  console.log(`\n| search page | statements | first run: ms (buffers read/hit) | warm: median ms | warm: median server CPU ms |`);
  console.log('|---|---:|---:|---:|---:|');
  for (const [title, statements] of pages) {
    const f = first.get(title)!;
    const cpuMs = median(cpu.get(title)!);
    console.log(
      `| ${title} | ${statements.length} | ${f.ms.toFixed(1)} (${f.read}/${f.hit}) | ${median(warm.get(title)!).toFixed(1)} | ${Number.isNaN(cpuMs) ? 'n/a' : cpuMs.toFixed(2)} |`,
    );
  }
  console.log(`(${rounds} warm rounds)`);
}

async function explain(db: Database, title: string, statement: RawBuilder<unknown>): Promise<void> {
  const plan = await sql<{ 'QUERY PLAN': string }>`explain (analyze, buffers, costs off) ${statement}`.execute(db);
  // A thousand ids inlined in an Index Cond would drown the plan.
  const lines = plan.rows.map((row) => row['QUERY PLAN'].replace(/'\{[^}]{80,}\}'/g, "'{...}'"));
  console.log(`\n-- ${title}\n${lines.join('\n')}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
