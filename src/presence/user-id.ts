/**
 * User ids: the decimal string of a positive 64-bit integer, 1 to 2^63-1, which is
 * what fits in the pulse table's bigint. Ids stay strings everywhere (JavaScript
 * numbers lose precision past 2^53). Every id a caller sends, alone or in a
 * list, is checked here.
 */
import { InvalidInputError } from '../errors';

export const MAX_USER_ID = 9223372036854775807n;

/** A string that passed {@link parseUserId}. */
export type UserId = string & { readonly __brand: 'UserId' };

// No sign, no leading zeros, no spaces: one spelling per id, so "7" and "007" can
// never be two keys for the same user in a batch.
const DECIMAL = /^[1-9][0-9]{0,18}$/;

/**
 * Returns `value` as a {@link UserId}, or throws {@link InvalidInputError} naming it.
 */
export function parseUserId(value: unknown): UserId {
  if (typeof value === 'string' && DECIMAL.test(value) && BigInt(value) <= MAX_USER_ID) {
    return value as UserId;
  }
  throw new InvalidInputError(
    `Invalid user id ${describe(value)}: expected the decimal string of an integer from 1 to ${MAX_USER_ID}`,
  );
}

/**
 * Returns the ids a caller listed, each checked by {@link parseUserId}, in the
 * order given; more than `max` of them is refused as a whole, before any is
 * parsed. Both REST and GraphQL check lists of ids here, so the limit speaks
 * the same words on both.
 */
export function parseUserIds(given: readonly unknown[], max: number): UserId[] {
  if (given.length > max) throw new InvalidInputError(`Too many ids: ${given.length} given, at most ${max} per request`);
  return given.map(parseUserId);
}

// Private: show the bad value as the caller sent it, but never echo a megabyte.
function describe(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}
