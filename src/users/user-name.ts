/**
 * User names: what people call themselves, shown to others and searched.
 */
import { parseText } from './parse-text';

/** The longest name, in characters (Unicode code points), after trimming. */
export const MAX_NAME_LENGTH = 64;

/**
 * Returns `value` trimmed, or throws an InvalidInputError saying what is wrong
 * with it: empty, longer than {@link MAX_NAME_LENGTH} characters, or containing a
 * control character.
 */
export function parseUserName(value: string): string {
  return parseText('name', value, MAX_NAME_LENGTH);
}
