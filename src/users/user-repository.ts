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

/** Where a search page starts: after this name in this tier. */
export interface SearchPosition {
  /** 0: names that start with the query; 1: names that contain it elsewhere. */
  tier: 0 | 1;
  /** `lower(name)` of the last user on the previous page. */
  sortName: string;
}

export interface SearchRow extends UserRow {
  tier: 0 | 1;
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

/**
 * Users whose name starts with the query (tier 0), then, if asked, those whose
 * name contains it elsewhere (tier 1); each tier in name order; at most `limit`
 * rows after `after`. One statement.
 *
 * The prefix branch reads only the rows of its page: a range scan of
 * users_name_key, already in name order. The contains branch finds its matches
 * through the trigram index users_name_trgm and sorts them, so it costs in
 * proportion to how many names contain the query (docs/users.md has the plans
 * at a million users).
 */
export async function searchUsersByName(db: Database, search: NameSearch): Promise<SearchRow[]> {
  const query = searchUsersQuery(search);
  if (!query) return [];
  const { rows } = await query.execute(db);
  return rows;
}

/**
 * The statement {@link searchUsersByName} runs, unexecuted (so its plan can be
 * inspected with EXPLAIN); null when nothing can match.
 */
export function searchUsersQuery(search: NameSearch): RawBuilder<SearchRow> | null {
  const escaped = search.query.replace(/[\\%_]/g, '\\$&');
  const prefix = `${escaped}%`;
  const after = search.after;
  const prefixAfter = after === null ? '' : after.tier === 0 ? after.sortName : null;
  const containsAfter = after === null || after.tier === 0 ? '' : after.sortName;

  const prefixBranch =
    prefixAfter === null
      ? null
      : sql`(select id::text as id, name, created_at, 0 as tier, lower(name) collate "C" as sort_name
               from users
              where lower(name) collate "C" like lower(${prefix})
                and lower(name) collate "C" > ${prefixAfter}
              order by lower(name) collate "C"
              limit ${search.limit})`;
  // The contains matches are collected through the trigram index, then sorted.
  // "materialized" keeps the planner from walking users_name_key in name order
  // instead, hoping to meet matches early: for a common fragment that sits late
  // in the alphabet, that walk reads most of the table before its first match.
  const contains = !search.includeContains
    ? null
    : sql`with contains as materialized (
            select id::text as id, name, created_at, lower(name) collate "C" as sort_name
              from users
             where lower(name) like lower(${`%${escaped}%`})
               and lower(name) collate "C" not like lower(${prefix})
               and lower(name) collate "C" > ${containsAfter}
          )`;
  const containsBranch =
    contains === null
      ? null
      : sql`(select id, name, created_at, 1 as tier, sort_name from contains order by sort_name limit ${search.limit})`;
  const branches = [prefixBranch, containsBranch].filter((branch) => branch !== null);
  if (branches.length === 0) return null;

  return sql<SearchRow>`
    ${contains ?? sql``}
    select * from (${sql.join(branches, sql` union all `)}) as matches
    order by tier, sort_name
    limit ${search.limit}
  `;
}
