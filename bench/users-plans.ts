/**
 * The plans of the users queries at scale. Fills the database in DATABASE_URL up
 * to USERS (default 1,000,000) users, each with a pulse row, one in ten with
 * presence settings and one in five following someone, then prints
 * EXPLAIN (ANALYZE, BUFFERS) of name searches and of the status read for 1000
 * ids. Run it against a scratch database: it adds rows.
 *
 *   DATABASE_URL=postgres://.../scratch npm run -s bench:plans
 */
import { sql, type RawBuilder } from 'kysely';
import { createDatabase, type Database } from '../src/db/database';
import { migrateToLatest } from '../src/db/migrator';
import { createLogger } from '../src/logger';
import { statusRowsQuery } from '../src/presence/status-repository';
import type { UserId } from '../src/presence/user-id';
import { searchUsersQuery, type NameSearch } from '../src/users/user-repository';

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

    const searches: Array<[string, NameSearch]> = [
      ['search "hana 3f" (prefix only), first page of 20', { query: 'hana 3f', includeContains: false, after: null, limit: 21 }],
      ['search "ada" (prefix only), page after "ada 8"', { query: 'ada', includeContains: false, after: { tier: 0, sortName: 'ada 8' }, limit: 21 }],
      ['search "3f2c" (prefix and contains), first page of 20', { query: '3f2c', includeContains: true, after: null, limit: 21 }],
      ['search "ana 3f" (prefix and contains), first page of 20', { query: 'ana 3f', includeContains: true, after: null, limit: 21 }],
      // The worst case: "ana" is inside one name in ten ("Hana ..."), and the
      // contains branch sorts all of them to find the first page.
      ['search "ana" (100k contains matches), first page of 20', { query: 'ana', includeContains: true, after: null, limit: 21 }],
    ];
    for (const [title, search] of searches) await explain(db, title, searchUsersQuery(search)!);

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
