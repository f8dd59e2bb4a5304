/**
 * The one rule for text a user types and others read (names, name searches,
 * status text), so every path says the same thing about the same mistake.
 */
import { InvalidInputError } from '../errors';

// Control characters (newlines, tabs, NUL and the rest of C0/C1) break every
// list a name or status is shown in, and PostgreSQL's text type refuses NUL.
const CONTROL = /\p{Cc}/u;

/**
 * Returns `value` trimmed, or throws {@link InvalidInputError} naming `label` and
 * what is wrong: empty, longer than `max` characters (Unicode code points, after
 * trimming), or containing a control character.
 *
 * @example parseText('name', '  Ann ', 64) // 'Ann'
 */
export function parseText(label: string, value: string, max: number): string {
  const text = value.trim();
  const length = [...text].length;
  if (length === 0) throw new InvalidInputError(`Invalid ${label}: it is empty; expected 1 to ${max} characters`);
  if (length > max) throw new InvalidInputError(`Invalid ${label}: ${length} characters, expected at most ${max}`);
  if (CONTROL.test(text)) {
    throw new InvalidInputError(`Invalid ${label}: it contains a control character (such as a newline or tab)`);
  }
  return text;
}
