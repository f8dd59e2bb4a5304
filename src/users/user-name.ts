/**
 * User names: what people call themselves, shown to others and searched.
 */
import { InvalidInputError } from '../errors';

/** The longest name, in characters (Unicode code points), after trimming. */
export const MAX_NAME_LENGTH = 64;

// Control characters (newlines, tabs, NUL, bidi-free C0/C1) break every list a
// name is shown in, and NUL is refused by PostgreSQL's text type anyway.
const CONTROL = /\p{Cc}/u;

/**
 * Returns `value` trimmed, or throws {@link InvalidInputError} saying what is wrong
 * with it: empty, longer than {@link MAX_NAME_LENGTH} characters, or containing a
 * control character.
 */
export function parseUserName(value: string): string {
  const name = value.trim();
  const length = [...name].length;
  if (length === 0) throw new InvalidInputError('Invalid name: it is empty; expected 1 to 64 characters');
  if (length > MAX_NAME_LENGTH) {
    throw new InvalidInputError(`Invalid name: ${length} characters, expected at most ${MAX_NAME_LENGTH}`);
  }
  if (CONTROL.test(name)) {
    throw new InvalidInputError('Invalid name: it contains a control character (such as a newline or tab)');
  }
  return name;
}
