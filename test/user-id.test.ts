import { InvalidInputError } from '../src/errors';
import { parseUserId, parseUserIds } from '../src/presence/user-id';

describe('parseUserId', () => {
  it.each(['1', '42', '9007199254740993', '9223372036854775807'])('accepts %s', (value) => {
    expect(parseUserId(value)).toBe(value);
  });

  it.each([
    ['abc'],
    ['0'],
    ['-1'],
    ['1.5'],
    [''],
    ['12345678901234567890'], // 20 digits
    ['9223372036854775808'], // 2^63, one past the largest bigint
    ['007'],
    [' 7'],
    ['1e3'],
    ['0x10'],
  ])('rejects %j, naming it', (value) => {
    expect(() => parseUserId(value)).toThrow(InvalidInputError);
    expect(() => parseUserId(value)).toThrow(`Invalid user id ${JSON.stringify(value)}`);
  });

  it('rejects values that are not strings', () => {
    expect(() => parseUserId(7)).toThrow('Invalid user id 7');
    expect(() => parseUserId(null)).toThrow('Invalid user id null');
  });

  it('shortens a huge value in the message instead of echoing it', () => {
    const error = (() => {
      try {
        parseUserId('9'.repeat(10_000));
      } catch (e) {
        return e as Error;
      }
    })();
    expect(error!.message.length).toBeLessThan(200);
  });
});

describe('parseUserIds', () => {
  it('returns the ids in the order given, duplicates included', () => {
    expect(parseUserIds(['3', '1', '3'], 3)).toEqual(['3', '1', '3']);
  });

  it('refuses more than the most, saying how many came and how many may', () => {
    expect(() => parseUserIds(['1', '2', '3'], 2)).toThrow(new InvalidInputError('Too many ids: 3 given, at most 2 per request'));
  });

  it('names the first bad id', () => {
    expect(() => parseUserIds(['1', 'x', 'y'], 5)).toThrow('Invalid user id "x"');
  });
});
