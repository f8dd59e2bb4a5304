/**
 * Search cursors: where the next page of a name search starts, as an opaque string.
 * Inside, base64url JSON `[tier, sortName]` (tiers 0 and 1, in name order) or
 * `[2, id]` (contains matches in sign-up order); clients must not build or read them.
 */
import { InvalidInputError } from '../errors';
import type { SearchPosition } from './user-repository';

/** The cursor of a search result: the position right after it. */
export function encodeSearchCursor(position: SearchPosition): string {
  const inside = position.tier === 2 ? [2, position.id] : [position.tier, position.sortName];
  return Buffer.from(JSON.stringify(inside)).toString('base64url');
}

/** The position `cursor` names, or {@link InvalidInputError} if it is not a search cursor. */
export function decodeSearchCursor(cursor: string): SearchPosition {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  if (Array.isArray(value) && value.length === 2 && typeof value[1] === 'string') {
    if (value[0] === 0 || value[0] === 1) return { tier: value[0], sortName: value[1] };
    if (value[0] === 2 && isBigint(value[1])) return { tier: 2, id: value[1] };
  }
  throw new InvalidInputError(
    `Invalid cursor ${JSON.stringify(cursor.slice(0, 40))}: expected an endCursor or edge cursor from a previous searchUsers page`,
  );
}

// Private: whether `text` is a bigint as PostgreSQL writes it (an id, in range).
function isBigint(text: string): boolean {
  if (!/^-?\d{1,19}$/.test(text)) return false;
  const value = BigInt(text);
  return value >= -(2n ** 63n) && value < 2n ** 63n;
}
