/**
 * Where each of Pulse's statements runs on a Citus cluster: EXPLAIN of every
 * statement shape, cut down to the lines that say it (Citus's custom scan, its
 * task count, the subplans it pulls to the coordinator, the node of a task).
 * The statements are spelled as the repositories spell them. docs/scale-out.md
 * ("## Citus") reads these plans.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5433/scratch npm run -s bench:citus-plans
 *
 * DATABASE_URL must name a Citus coordinator after `npm run migrate -- distribute`.
 * EXPLAIN without ANALYZE: nothing is written. With CITUS_TIMING=1 it then also
 * times the two forms of the heartbeat write side by side (50 users a batch,
 * alternating, ROUNDS of each, default 10), which writes pulse rows for ids from
 * 800,000,000 up: use a scratch database.
 */
import { sql, type CompiledQuery, type QueryExecutorProvider } from 'kysely';
import { createDatabase, type Database } from '../src/db/database';
import { createLogger } from '../src/logger';
import { statusRowsQuery } from '../src/presence/status-repository';
import type { UserId } from '../src/presence/user-id';
import { searchUsersQuery } from '../src/users/user-repository';

const ids = Array.from({ length: 50 }, (_, i) => String(900_001 + i * 7919)) as UserId[];
const someone = '9000000000000000001' as UserId;

/** A query builder compiles by itself; a raw `sql` fragment needs the database. */
type Statement = { compile(executorProvider: QueryExecutorProvider): CompiledQuery<unknown> };

function statements(db: Database): Array<[string, Statement]> {
  return [
    ['status read, 1 id', statusRowsQuery([ids[0]!], null, 30)],
    ['status read, 50 ids, with a viewer', statusRowsQuery(ids, someone, 30)],
    ['heartbeat: "before" read, 50 users', sql`select user_id, last_hb from pulse where user_id = any(${ids}::bigint[])`],
    [
      'heartbeat write, 1 user',
      sql`insert into pulse (user_id, last_hb) values (${ids[0]}::bigint, now())
          on conflict (user_id) do update set last_hb = excluded.last_hb
          where excluded.last_hb - pulse.last_hb >= make_interval(secs => 5)`,
    ],
    [
      'heartbeat write, 50 users, VALUES (the form used on Citus)',
      sql`insert into pulse (user_id, last_hb) values ${sql.join(ids.map((id) => sql`(${id}::bigint, now())`))}
          on conflict (user_id) do update set last_hb = excluded.last_hb
          where excluded.last_hb - pulse.last_hb >= make_interval(secs => 5)`,
    ],
    [
      'heartbeat write, 50 users, unnest (the form used on PostgreSQL)',
      sql`insert into pulse (user_id, last_hb)
          select user_id, now() from unnest(${ids}::bigint[]) with ordinality as t(user_id, position) order by position
          on conflict (user_id) do update set last_hb = excluded.last_hb
          where excluded.last_hb - pulse.last_hb >= make_interval(secs => 5)`,
    ],
    ['user(id) / me', db.selectFrom('users').select(['id', 'name']).where('id', '=', sql<string>`any(${[someone]}::bigint[])`)],
    ['searchUsers "sam" (prefix, then contains)', searchUsersQuery({ query: 'sam', includeContains: true, after: null, limit: 21 })!],
    [
      'createUser: the name check and insert',
      sql`insert into users (name) select ${'Zed'}::text
          where not exists (select 1 from users where lower(name) collate "C" = lower(${'Zed'}::text) collate "C")
          on conflict do nothing returning id`,
    ],
    [
      'follow',
      db
        .insertInto('follows')
        .values({ follower_id: someone, followee_id: ids[0]! })
        .onConflict((oc) => oc.columns(['follower_id', 'followee_id']).doNothing()),
    ],
    [
      'following (whom X follows)',
      db
        .selectFrom('users')
        .select(['users.id', 'users.name'])
        .where('users.id', 'in', (eb) => eb.selectFrom('follows').select('follows.followee_id').where('follows.follower_id', '=', someone))
        .orderBy(sql`lower(users.name) collate "C"`),
    ],
    [
      'followers (who follows X)',
      db
        .selectFrom('follows')
        .innerJoin('users', 'users.id', 'follows.follower_id')
        .select(['users.id', 'users.name'])
        .where('follows.followee_id', '=', someone)
        .orderBy(sql`lower(users.name) collate "C"`),
    ],
    [
      'setStatus',
      sql`insert into presence_settings as settings (user_id, manual_status, invisible_last_seen, updated_at)
          select ${ids[0]}::bigint, 'INVISIBLE', (select last_hb from pulse where pulse.user_id = ${ids[0]}::bigint), now()
          on conflict (user_id) do update set manual_status = excluded.manual_status, updated_at = excluded.updated_at`,
    ],
    [
      'updatePrivacy',
      sql`insert into presence_settings as settings (user_id, visibility, show_last_seen, updated_at)
          values (${ids[0]}::bigint, 'CONTACTS', true, now())
          on conflict (user_id) do update set visibility = excluded.visibility, updated_at = excluded.updated_at`,
    ],
    [
      'retention step (5000 rows)',
      sql`with batch as (select user_id from pulse where user_id > ${'0'}::bigint order by user_id limit ${5000}),
          removed as (delete from pulse where user_id in (select user_id from batch) and last_hb < ${new Date(0)} returning user_id)
          select (select max(user_id) from batch)::text, (select count(*) from removed)`,
    ],
  ];
}

// Private: a parameter as a SQL literal (EXPLAIN cannot take parameters).
function literal(value: unknown): string {
  if (Array.isArray(value)) return `'{${value.join(',')}}'`;
  if (typeof value === 'number') return String(value);
  if (value === null) return 'null';
  if (value instanceof Date) return `'${value.toISOString()}'`;
  return `'${String(value).replace(/'/g, "''")}'`;
}

const TELLING = /Custom Scan|Task Count|Subplan|Node: host|INSERT\/SELECT method|->  (Insert|Delete|Update|Function Scan)/i;

async function main(): Promise<void> {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('Set DATABASE_URL to a distributed Citus database (its coordinator)');
  const db = createDatabase({ url, poolMax: 1, connectionTimeoutMs: 5000, statementTimeoutMs: 60_000, logger: createLogger('warn') });
  try {
    if (process.env.CITUS_TIMING === '1') await timeHeartbeatForms(db, Number(process.env.ROUNDS ?? 10));
    for (const [name, query] of statements(db)) {
      const compiled = query.compile(db);
      const text = compiled.sql.replace(/\$(\d+)/g, (_, i: string) => literal(compiled.parameters[Number(i) - 1]));
      const { rows } = await sql.raw<{ 'QUERY PLAN': string }>(`explain (costs off) ${text}`).execute(db);
      const plan = rows.map((r) => r['QUERY PLAN']).filter((line) => TELLING.test(line));
      process.stdout.write(`\n### ${name}\n${plan.join('\n')}\n`);
    }
  } finally {
    await db.destroy();
  }
}

// Private: median milliseconds of a 50-user heartbeat write in each form, on one
// connection, alternating so both see the same machine load.
async function timeHeartbeatForms(db: Database, rounds: number): Promise<void> {
  const times: Record<'values' | 'unnest', number[]> = { values: [], unnest: [] };
  for (let round = 0; round < rounds; round++) {
    for (const form of round % 2 ? (['unnest', 'values'] as const) : (['values', 'unnest'] as const)) {
      // New users every time, as when users come online: every row is an insert.
      const batch = Array.from({ length: 50 }, (_, i) => String(800_000_000 + (round * 2 + (form === 'values' ? 0 : 1)) * 100_000 + i * 7919));
      const rows =
        form === 'values'
          ? sql`values ${sql.join(batch.map((id) => sql`(${id}::bigint, now())`))}`
          : sql`select user_id, now() from unnest(${batch}::bigint[]) with ordinality as t(user_id, position) order by position`;
      const started = process.hrtime.bigint();
      await sql`insert into pulse (user_id, last_hb) ${rows} on conflict (user_id) do update set last_hb = excluded.last_hb`.execute(db);
      times[form].push(Number(process.hrtime.bigint() - started) / 1e6);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const [values, unnest] = [median(times.values), median(times.unnest)];
  process.stdout.write(
    `heartbeat write of 50 new users, median of ${rounds}: VALUES ${values.toFixed(0)} ms, unnest ${unnest.toFixed(0)} ms (unnest/VALUES ${(unnest / values).toFixed(1)}x)\n`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
