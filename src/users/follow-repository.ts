/**
 * All SQL on the follows table. Plain functions that take the database first.
 */
import { sql } from 'kysely';
import type { Database } from '../db/database';
import type { UserId } from '../presence/user-id';
import type { UserRow } from './user-repository';

/** `follower` follows `followee`; nothing changes if they already do. */
export async function insertFollow(db: Database, follower: UserId, followee: UserId): Promise<void> {
  await db
    .insertInto('follows')
    .values({ follower_id: follower, followee_id: followee })
    .onConflict((oc) => oc.columns(['follower_id', 'followee_id']).doNothing())
    .execute();
}

/** `follower` no longer follows `followee`; true if they did until now. */
export async function deleteFollow(db: Database, follower: UserId, followee: UserId): Promise<boolean> {
  const result = await db
    .deleteFrom('follows')
    .where('follower_id', '=', follower)
    .where('followee_id', '=', followee)
    .executeTakeFirst();
  return result.numDeletedRows > 0n;
}

/**
 * The users `userId` follows, in name order. A subquery rather than a join: on
 * Citus, follows is sharded by follower and users by id, and a join on
 * followee_id would need to repartition; the subquery is read from the
 * follower's shard first, then the users are looked up.
 */
export async function findFollowees(db: Database, userId: UserId): Promise<UserRow[]> {
  return db
    .selectFrom('users')
    .select([sql<string>`users.id::text`.as('id'), 'users.name', 'users.created_at'])
    .where('users.id', 'in', (eb) => eb.selectFrom('follows').select('follows.followee_id').where('follows.follower_id', '=', userId))
    .orderBy(sql`lower(users.name) collate "C"`)
    .execute();
}

/** The users who follow `userId`, in name order. */
export async function findFollowers(db: Database, userId: UserId): Promise<UserRow[]> {
  return db
    .selectFrom('follows')
    .innerJoin('users', 'users.id', 'follows.follower_id')
    .select([sql<string>`users.id::text`.as('id'), 'users.name', 'users.created_at'])
    .where('follows.followee_id', '=', userId)
    .orderBy(sql`lower(users.name) collate "C"`)
    .execute();
}
