/**
 * Users: sign-up, look-up, name search and follows. The rules live here; the SQL
 * lives in the repositories; GraphQL lives above. Rows become {@link User}s here
 * and never leak upward.
 */
import type { Database } from '../db/database';
import type { ReplicaReads } from '../db/read-replicas';
import { InvalidInputError, UsernameTakenError } from '../errors';
import type { UserId } from '../presence/user-id';
import { deleteFollow, findFollowees, findFollowers, insertFollow } from './follow-repository';
import { decodeSearchCursor, encodeSearchCursor } from './search-cursor';
import { userFromRow, type User } from './user';
import { parseText } from './parse-text';
import { MAX_NAME_LENGTH, parseUserName } from './user-name';
import { findUsersByIds, insertUser, searchUsersByName } from './user-repository';

/** The most results one search page may hold. */
export const MAX_SEARCH_PAGE = 100;

/**
 * Queries shorter than this match by prefix only: "contains" matches of one or two
 * characters would be most of the directory, and trigrams cannot serve them.
 */
export const MIN_CONTAINS_QUERY = 3;

/**
 * One page of a name search: the users found, in order, each with the cursor
 * that continues the search right after them, and whether more follow.
 */
export interface SearchPage {
  matches: Array<{ user: User; cursor: string }>;
  hasMore: boolean;
  /**
   * Set when the page stopped short (fewer than `first` matches, more may
   * follow): the cursor that goes on from where the reading stopped, past the
   * last match. Null otherwise: the last match's cursor goes on.
   */
  resumeCursor: string | null;
}

export class UserService {
  readonly #db: Database;
  readonly #replicaReads: ReplicaReads;
  readonly #onPresenceChange: (userIds: UserId[]) => void;

  /**
   * `db` is the primary. `onPresenceChange` is told of every change that alters
   * what others see of a user (live presence re-reads them for its subscribers).
   * `replicaReads` takes name searches (a read replica's work; absent: the
   * primary); look-ups by id and follows stay on the primary, since they answer
   * right after sign-ups and follows.
   */
  constructor(db: Database, options: { onPresenceChange?: (userIds: UserId[]) => void; replicaReads?: ReplicaReads } = {}) {
    this.#db = db;
    this.#replicaReads = options.replicaReads ?? ((read) => read(db));
    this.#onPresenceChange = options.onPresenceChange ?? (() => {});
  }

  /**
   * Signs up a user named `name` (trimmed). Throws {@link InvalidInputError} for an
   * invalid name, {@link UsernameTakenError} when someone has it already, in any
   * letter case.
   */
  async createUser(name: string): Promise<User> {
    const valid = parseUserName(name);
    const row = await insertUser(this.#db, valid);
    if (!row) throw new UsernameTakenError(`The name ${JSON.stringify(valid)} is taken: choose another one`);
    return userFromRow(row);
  }

  /** The user with this id, or null if nobody signed up with it. */
  async findUser(id: UserId): Promise<User | null> {
    const [row] = await findUsersByIds(this.#db, [id]);
    return row ? userFromRow(row) : null;
  }

  /**
   * Users whose name matches `query` case-insensitively: names that start with it
   * first, in name order, then (for queries of {@link MIN_CONTAINS_QUERY}
   * characters or more) names that contain it elsewhere: in name order, or in
   * sign-up order when the fragment is common (docs/users.md, "Name search").
   * `after` is a cursor from a previous page of the same search.
   *
   * Every page reads a bounded number of rows, so a page of contains matches may
   * hold fewer than `first` users while more may follow; its `resumeCursor` then
   * goes on from where the reading stopped.
   */
  async searchUsers(query: string, first: number, after: string | null): Promise<SearchPage> {
    const trimmed = parseText('query', query, MAX_NAME_LENGTH);
    const length = [...trimmed].length;
    if (!Number.isInteger(first) || first < 1 || first > MAX_SEARCH_PAGE) {
      throw new InvalidInputError(`Invalid first ${first}: expected 1 to ${MAX_SEARCH_PAGE}`);
    }
    const position = after === null ? null : decodeSearchCursor(after);

    // One row more than asked tells whether another page follows.
    const { rows, resumeAfter } = await this.#replicaReads((db) =>
      searchUsersByName(db, {
        query: trimmed,
        includeContains: length >= MIN_CONTAINS_QUERY,
        after: position,
        limit: first + 1,
      }),
    );
    const matches = rows.slice(0, first).map((row) => ({
      user: userFromRow(row),
      cursor: encodeSearchCursor(row.tier === 2 ? { tier: 2, id: row.id } : { tier: row.tier, sortName: row.sort_name }),
    }));
    if (rows.length > first) return { matches, hasMore: true, resumeCursor: null };
    if (resumeAfter) return { matches, hasMore: true, resumeCursor: encodeSearchCursor(resumeAfter) };
    return { matches, hasMore: false, resumeCursor: null };
  }

  /**
   * `follower` follows `followee` (nothing changes if they already do) and gets
   * the followee back. Both must have signed up; following oneself is refused.
   */
  async follow(follower: UserId, followee: UserId): Promise<User> {
    const target = await this.#checkFollow(follower, followee);
    await insertFollow(this.#db, follower, followee);
    // CONTACTS visibility: the followee may now see the follower.
    this.#onPresenceChange([follower]);
    return target;
  }

  /** `follower` stops following `followee`; true if they were following until now. */
  async unfollow(follower: UserId, followee: UserId): Promise<boolean> {
    await this.#checkFollow(follower, followee);
    const removed = await deleteFollow(this.#db, follower, followee);
    if (removed) this.#onPresenceChange([follower]);
    return removed;
  }

  /** The users `userId` follows, in name order. */
  async following(userId: UserId): Promise<User[]> {
    return (await findFollowees(this.#db, userId)).map(userFromRow);
  }

  /** The users who follow `userId`, in name order. */
  async followers(userId: UserId): Promise<User[]> {
    return (await findFollowers(this.#db, userId)).map(userFromRow);
  }

  // Private: the rules of a follow, in the words the caller needs to fix it.
  async #checkFollow(follower: UserId, followee: UserId): Promise<User> {
    if (follower === followee) throw new InvalidInputError(`Invalid userId ${followee}: you cannot follow yourself`);
    const rows = await findUsersByIds(this.#db, [follower, followee]);
    const target = rows.find((row) => row.id === followee);
    if (!target) throw new InvalidInputError(`Invalid userId ${followee}: no user has this id`);
    if (!rows.some((row) => row.id === follower)) {
      throw new InvalidInputError(`User ${follower} has not signed up: create a user with createUser before following anyone`);
    }
    return userFromRow(target);
  }
}
