/**
 * User names: what people call themselves, shown to others and searched.
 */
import { InvalidInputError } from '../errors';

/** The longest name, in characters (Unicode code points), after trimming. */
export const MAX_NAME_LENGTH = 64;

// Control characters (newlines, tabs, NUL and the rest of C0/C1) break every
// list a name or status is shown in, and PostgreSQL's text type refuses NUL.
const CONTROL = /\p{Cc}/u;

/** True if `text` holds a control character (newline, tab, NUL, ...). */
export function hasControlCharacter(text: string): boolean {
  return CONTROL.test(text);
}

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
  if (hasControlCharacter(name)) {
    throw new InvalidInputError('Invalid name: it contains a control character (such as a newline or tab)');
  }
  return name;
}
