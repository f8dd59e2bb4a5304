/**
 * All SQL on the users table. Plain functions that take the database first.
 *
 * Names are compared as `lower(name) collate "C"`, the expression of the unique
 * index users_name_key: spelled the same way everywhere, so every look-up, prefix
 * search and ordering by name can use that index.
 */
import { sql, type RawBuilder } from 'kysely';
import type { Database } from '../db/database';
import type { UserId } from '../presence/user-id';

export interface UserRow {
  id: string;
  name: string;
  created_at: Date;
}

/**
 * Inserts a user named `name`; returns the new row, or undefined when the name is
 * taken (case-insensitively). Two sign-ups with the same name at once: one gets
 * the row, the other undefined.
 *
 * The name is checked under a transaction-scoped advisory lock on it, not left
 * to the unique index alone: on Citus, users is sharded by id and an index on the
 * name cannot be unique across shards (src/db/distribute.ts), so the lock, taken
 * on the coordinator every sign-up passes through, is what serialises two
 * sign-ups of one name. On plain PostgreSQL the unique index users_name_key stays
 * as a second guard. Sign-up is rare; the cost is three more round trips
 * (begin, the lock, commit).
 */
export async function insertUser(db: Database, name: string): Promise<UserRow | undefined> {
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(${USER_NAME_LOCK}::int, hashtext(lower(${name}) collate "C"))`.execute(trx);
    // A statement after the lock sees every sign-up that committed before it.
    const { rows } = await sql<UserRow>`
      insert into users (name)
      select ${name}::text
       where not exists (select 1 from users where lower(name) collate "C" = lower(${name}::text) collate "C")
      on conflict do nothing
      returning id::text as id, name, created_at
    `.execute(trx);
    return rows[0];
  });
}

/** The first key of the advisory locks on user names (the second is the name's hash). */
const USER_NAME_LOCK = 7_340_001;

/** The users among `ids` that exist, in no particular order. */
export async function findUsersByIds(db: Database, ids: readonly UserId[]): Promise<UserRow[]> {
  if (ids.length === 0) return [];
  return db
    .selectFrom('users')
    .select([sql<string>`id::text`.as('id'), 'name', 'created_at'])
    .where('id', '=', sql<string>`any(${sql.val(ids)}::bigint[])`)
    .execute();
}

/**
 * Where a search page starts: right after this position. Tier 0 holds the names
 * that start with the query, tier 1 the names that contain it elsewhere in name
 * order, tier 2 the same contains matches in sign-up order (see
 * {@link searchUsersByName} for which of the two a search uses).
 */
export type SearchPosition =
  | {
      tier: 0 | 1;
      /** `lower(name)` of the last user seen. */
      sortName: string;
    }
  | {
      tier: 2;
      /** The id of the last user seen. */
      id: string;
    };

export interface SearchRow extends UserRow {
  tier: 0 | 1 | 2;
  sort_name: string;
}

export interface NameSearch {
  /** The query as the user typed it (trimmed); matched case-insensitively. */
  query: string;
  /** Also look for names that contain the query after their first character. */
  includeContains: boolean;
  after: SearchPosition | null;
  limit: number;
}

/** What one call of {@link searchUsersByName} found. */
export interface NameSearchResult {
  /** At most `limit` rows, in the search's order. */
  rows: SearchRow[];
  /**
   * Set when the contains matches were read up to {@link SEARCH_BUDGET} rows
   * without filling the page: more matches may follow this position. Null when
   * `rows` is all there is up to the page's end.
   */
  resumeAfter: SearchPosition | null;
}

/**
 * The most rows one search statement reads from users, whichever way it reads
 * them. It bounds the work of every page of every search (docs/users.md: about
 * 5,000 rows cost a few milliseconds warm); a page that would need more stops
 * short and says where it got to.
 */
export const SEARCH_BUDGET = 5000;

/**
 * A fragment contained in at least {@link COMMON_FRAGMENT_MATCHES} of the first
 * COMMON_SAMPLE users (0.5 %), in a directory of more than {@link SEARCH_BUDGET}
 * users, is common: its contains matches are listed in sign-up order. The
 * sample is smaller than the budget because every first page of a rare
 * fragment reads all of it; at 0.5 % a page of 20 still fits in one budget.
 */
export const COMMON_SAMPLE = 2000;
export const COMMON_FRAGMENT_MATCHES = 10;

/**
 * Users whose name starts with the query (tier 0), then, if asked, those whose
 * name contains it elsewhere; at most `limit` rows after `after`.
 *
 * The prefix tier is a range scan of users_name_key, already in name order, so a
 * page reads only its own rows. The contains tier cannot be read in name order
 * (the trigram index users_name_trgm finds matches in no order), so it goes one
 * of two ways, each reading at most {@link SEARCH_BUDGET} rows per page:
 *
 * 1. Rare fragments (the usual case: "3f2c", "ana 3f"): the trigram index finds
 *    the matches, which are sorted by name (tier 1). Costs what the matches
 *    cost, so it is capped: beyond the budget, the page walks users_name_key
 *    from the position instead, testing each name, and may come back short.
 * 2. Common fragments ("ana", inside one name in ten): sorting every match for
 *    each page is what cost 340-400 ms at a million users, and walking the names
 *    in name order meets matches in clumps (all the "Hana"s), so the first page
 *    could read 700,000 names before its first match. Instead the walk follows
 *    the primary key (tier 2, sign-up order), which is independent of the
 *    letters in a name, so a fragment in one name in ten fills a page of 20
 *    after about 200 rows, on every page.
 *
 * Which way is decided once, when the contains tier starts (the first
 * {@link COMMON_SAMPLE} users by id are the sample), and then travels in the
 * cursor, so the pages of one search never mix the two orders.
 */
export async function searchUsersByName(db: Database, search: NameSearch): Promise<NameSearchResult> {
  const after = search.after;
  if (after?.tier === 2) {
    const walk = await walkContains(db, search.query, { by: 'id', after: after.id }, search.limit);
    return { rows: walk.rows, resumeAfter: walk.resumeAfter };
  }
  const statement = searchUsersQuery(search);
  if (!statement) return { rows: [], resumeAfter: null };
  const { rows } = await statement.execute(db);
  const page = rows.map(({ contains_found: _found, sample_last: _last, walk_id: _walk, ...row }): SearchRow => row);

  const walked = rows.filter((row) => row.tier === 2);
  if (walked.length > 0) {
    // A common fragment: the page's contains matches come from a walk of the
    // first SEARCH_BUDGET users by id; a page that walk leaves short goes on
    // after the last of them.
    const resumeAfter: SearchPosition | null = rows.length < search.limit ? { tier: 2, id: walked[0]!.sample_last! } : null;
    return { rows: page, resumeAfter };
  }
  const sorted = rows.filter((row) => row.tier === 1);
  if (sorted.length === 0 || Number(sorted[0]!.contains_found) <= SEARCH_BUDGET) return { rows: page, resumeAfter: null };

  // More matches than the budget: the sorted page is not the true one. Walk the
  // names in order from where the contains tier starts on this page instead.
  const prefix = page.filter((row) => row.tier === 0);
  const from = after?.tier === 1 ? after.sortName : '';
  const walk = await walkContains(db, search.query, { by: 'name', after: from }, search.limit - prefix.length);
  return { rows: [...prefix, ...walk.rows], resumeAfter: walk.resumeAfter };
}

/** A row of {@link searchUsersQuery}, with its bookkeeping columns. */
export interface SearchStatementRow extends SearchRow {
  /** Tier 1 rows: how many contains matches the trigram index gave, at most one past the budget. */
  contains_found: string | null;
  /** Tier 2 rows: the id of the SEARCH_BUDGET-th user, where a short page goes on. */
  sample_last: string | null;
  /** Tier 2 rows: the id, the order within the tier. */
  walk_id: string | null;
}

/**
 * The one statement of a search page in tiers 0 and 1 (tier 2 pages are
 * {@link walkContains}), unexecuted, so its plan can be inspected with EXPLAIN;
 * null when nothing can match.
 *
 * Its branches are guarded so that PostgreSQL runs only what the page needs: a
 * guard on a subquery is a one-time filter, and a materialized CTE is computed
 * only when read. The sample and the contains matches are read only when the
 * prefix matches leave room on the page, and only one of the two lists the
 * contains matches: the sample when it finds the fragment common, else the
 * trigram index. (Citus computes every CTE and limited subquery before the
 * statement, so there each page pays for all branches; see docs/scale-out.md.)
 */
export function searchUsersQuery(search: NameSearch): RawBuilder<SearchStatementRow> | null {
  const { prefix, contains } = matchPatterns(search.query);
  const after = search.after;
  if (after?.tier === 2) return null;
  const prefixAfter = after === null ? '' : after.tier === 0 ? after.sortName : null;
  const containsAfter = after === null || after.tier === 0 ? '' : after.sortName;
  const matches = (column: RawBuilder<unknown>) =>
    sql`${column} like lower(${contains}) and ${column} not like lower(${prefix})`;

  const ctes: RawBuilder<unknown>[] = [];
  const branches: RawBuilder<unknown>[] = [];
  // Whether the page still has room after the prefix matches.
  let room = sql`true`;
  if (prefixAfter !== null) {
    ctes.push(sql`prefix as materialized (
      select id, name, created_at, lower(name) collate "C" as sort_name
        from users
       where lower(name) collate "C" like lower(${prefix})
         and lower(name) collate "C" > ${prefixAfter}
       order by lower(name) collate "C"
       limit ${search.limit}
    )`);
    branches.push(sql`select id::text as id, name, created_at, 0 as tier, sort_name,
                             null::bigint as contains_found, null::text as sample_last, null::bigint as walk_id
                        from prefix`);
    room = sql`(select count(*) from prefix) < ${search.limit}`;
  }
  if (search.includeContains) {
    // Decided once, where the contains tier starts; later pages carry the
    // decision in their cursor (tier 1 or 2).
    let common = sql`false`;
    if (after?.tier !== 1) {
      // Common: COMMON_FRAGMENT_MATCHES matches turn up among the first
      // COMMON_SAMPLE users by id (the walk stops at the last one needed), and
      // the directory has more than SEARCH_BUDGET users (a smaller one is sorted
      // whole). `last`, the id of the SEARCH_BUDGET-th user, is where a short
      // page goes on; it is looked up only for a common fragment.
      ctes.push(sql`verdict as materialized (
        select last is not null as common, last
          from (select case when (select count(*)
                                    from (select 1 from ${firstUsers(COMMON_SAMPLE)} where ${matches(sql`sort_name`)}
                                          limit ${COMMON_FRAGMENT_MATCHES}) as m) = ${COMMON_FRAGMENT_MATCHES}
                            then (select users.id::text as last_id from users order by users.id offset ${SEARCH_BUDGET - 1} limit 1)
                       end as last
                offset 0
               ) as sample
      )`);
      common = sql`(select common from verdict)`;
      branches.push(sql`(select id::text as id, name, created_at, 2 as tier, sort_name,
                                null::bigint as contains_found, (select last from verdict) as sample_last, id as walk_id
                           from ${firstUsers(SEARCH_BUDGET)}
                          where ${room} and ${common} and ${matches(sql`sort_name`)}
                          order by sample.id
                          limit ${search.limit})`);
    }
    // The contains matches are collected through the trigram index, at most one
    // more than the budget, then sorted. "materialized" keeps the planner from
    // walking users_name_key in name order instead, hoping to meet matches
    // early: for a fragment whose matches sit late in the alphabet, that walk
    // reads most of the table before its first match.
    ctes.push(sql`contains as materialized (
      select id, name, created_at, lower(name) collate "C" as sort_name
        from users
       where lower(name) like lower(${contains})
         and lower(name) collate "C" not like lower(${prefix})
         and lower(name) collate "C" > ${containsAfter}
       limit ${SEARCH_BUDGET + 1}
    )`);
    branches.push(sql`(select id::text as id, name, created_at, 1 as tier, sort_name,
                              (select count(*) from contains) as contains_found, null::text as sample_last, null::bigint as walk_id
                        from contains
                       where ${room} and not ${common}
                       order by contains.sort_name
                       limit ${search.limit})`);
  }
  if (branches.length === 0) return null;

  return sql<SearchStatementRow>`
    with ${sql.join(ctes, sql`, `)}
    select * from (${sql.join(branches, sql` union all `)}) as matches
    order by tier, walk_id, sort_name
    limit ${search.limit}
  `;
}

/** Where a contains walk starts: after an id (sign-up order) or after a lowercased name (name order). */
export type WalkStart = { by: 'id'; after: string | null } | { by: 'name'; after: string };

/** What a contains walk met. */
export interface ContainsWalk {
  /** At most `take` matches, in the walk's order. */
  rows: SearchRow[];
  /** Where to go on when the walk used its whole budget without finding `take` matches; else null. */
  resumeAfter: SearchPosition | null;
}

/**
 * The contains matches among the next {@link SEARCH_BUDGET} users after
 * `start`, in primary key order (`by: 'id'`, tier 2) or in name order (`by:
 * 'name'`, tier 1, through users_name_key); the first `take` of them. The budget
 * is a LIMIT below the test of the name, so the statement reads at most that many
 * rows however rare the fragment. One statement.
 */
export async function walkContains(db: Database, query: string, start: WalkStart, take: number): Promise<ContainsWalk> {
  const { rows } = await walkContainsQuery(query, start, take).execute(db);
  const summary = rows.find((row) => row.scanned !== null)!;
  const matches = rows
    .filter((row) => row.scanned === null)
    .map(({ scanned: _scanned, last: _last, ...row }) => row as SearchRow)
    .sort(start.by === 'id' ? (a, b) => compareIds(a.id, b.id) : (a, b) => compareBytes(a.sort_name, b.sort_name));
  // A short page after a full budget: more matches may lie past the budget.
  const exhausted = summary.scanned! < SEARCH_BUDGET;
  const resumeAfter: SearchPosition | null =
    matches.length >= take || exhausted || summary.last === null
      ? null
      : start.by === 'id'
        ? { tier: 2, id: summary.last }
        : { tier: 1, sortName: summary.last };
  return { rows: matches, resumeAfter };
}

/** The statement of {@link walkContains}, unexecuted (so its plan can be inspected with EXPLAIN). */
export function walkContainsQuery(
  query: string,
  start: WalkStart,
  take: number,
): RawBuilder<SearchRow & { scanned: number | null; last: string | null }> {
  const patterns = matchPatterns(query);
  const key = start.by === 'id' ? sql`id` : sql`lower(name) collate "C"`;
  const from =
    start.after === null ? sql`true` : start.by === 'id' ? sql`id > ${start.after}::bigint` : sql`lower(name) collate "C" > ${start.after}`;
  const tier = start.by === 'id' ? 2 : 1;
  const scanned = sql`(select id, name, created_at, lower(name) collate "C" as sort_name, ${key} as walk_key
                        from users where ${from} order by ${key} limit ${SEARCH_BUDGET}) as scanned`;
  // The matches are read in the walk's order and the reading stops at the
  // page's last one; only a short page reads the whole budget again (index
  // entries, no names tested) to learn where it stopped.
  return sql<SearchRow & { scanned: number | null; last: string | null }>`
    with matches as materialized (
      select id, name, created_at, sort_name, walk_key
        from ${scanned}
       where sort_name like lower(${patterns.contains})
         and sort_name not like lower(${patterns.prefix})
       order by walk_key
       limit ${take}
    )
    select id::text as id, name, created_at, ${tier}::int as tier, sort_name, null::int as scanned, null::text as last
      from matches
    union all
    select null, null, null, null, null, count(*)::int, max(walk_key)::text
      from (select ${key} as walk_key from users where ${from} order by ${key} limit ${SEARCH_BUDGET}) as stretch
     where (select count(*) from matches) < ${take}
  `;
}

/** The LIKE patterns of a query: `%` and `_` in it are plain characters. */
export interface MatchPatterns {
  /** Names that start with the query. */
  prefix: string;
  /** Names that contain it anywhere. */
  contains: string;
}

// Private: the first `count` users by id, read in id order only as far as the
// statement around them asks.
function firstUsers(count: number): RawBuilder<unknown> {
  return sql`(select id, name, created_at, lower(name) collate "C" as sort_name from users order by id limit ${count}) as sample`;
}

// Private: the query's LIKE patterns, with its own wildcards escaped.
function matchPatterns(query: string): MatchPatterns {
  const escaped = query.replace(/[\\%_]/g, '\\$&');
  return { prefix: `${escaped}%`, contains: `%${escaped}%` };
}

// Private: bigint ids as decimal strings, compared as numbers.
function compareIds(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

// Private: byte order, as the C collation compares.
function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
