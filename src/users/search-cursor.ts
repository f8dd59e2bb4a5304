/**
 * Search cursors: where the next page of a name search starts, as an opaque string.
 * Inside, base64url JSON `[tier, sortName]`; clients must not build or read them.
 */
import { InvalidInputError } from '../errors';
import type { SearchPosition } from './user-repository';

/** The cursor of a search result: the position right after it. */
export function encodeSearchCursor(position: SearchPosition): string {
  return Buffer.from(JSON.stringify([position.tier, position.sortName])).toString('base64url');
}

/** The position `cursor` names, or {@link InvalidInputError} if it is not a search cursor. */
export function decodeSearchCursor(cursor: string): SearchPosition {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  if (Array.isArray(value) && value.length === 2 && (value[0] === 0 || value[0] === 1) && typeof value[1] === 'string') {
    return { tier: value[0], sortName: value[1] };
  }
  throw new InvalidInputError(
    `Invalid cursor ${JSON.stringify(cursor.slice(0, 40))}: expected an endCursor or edge cursor from a previous searchUsers page`,
  );
}
