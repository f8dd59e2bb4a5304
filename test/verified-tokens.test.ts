/**
 * Verified tokens kept for a client's next request (src/auth/verified-tokens.ts):
 * a kept token never outlives its `exp`, its age limit or the 60 s bound; the
 * bound on entries holds; and through the token issuer, a token that expired
 * while kept is refused with the usual reason.
 */
import { createTokenIssuer } from '../src/auth/tokens';
import { MAX_KEPT_MS, VerifiedTokens } from '../src/auth/verified-tokens';
import { AuthenticationError } from '../src/errors';
import { parseUserId } from '../src/presence/user-id';

const alice = parseUserId('1');
const bob = parseUserId('2');

describe('VerifiedTokens', () => {
  it('keeps a token until its exp, and no longer', () => {
    const kept = new VerifiedTokens(10);
    kept.add('a', alice, 0, { exp: 10 });
    expect(kept.get('a', 9_999)).toBe(alice);
    expect(kept.get('a', 10_000)).toBeUndefined();
    expect(kept.size).toBe(0);
  });

  it('keeps a token until the end of its allowed age, and never past the bound', () => {
    const kept = new VerifiedTokens(10);
    kept.add('aged', alice, 0, { exp: 3_600, ageLimit: 5 });
    kept.add('long', bob, 0, { exp: 3_600 });
    kept.add('forever', bob, 0, {});
    expect(kept.get('aged', 4_999)).toBe(alice);
    expect(kept.get('aged', 5_000)).toBeUndefined();
    expect(kept.get('long', MAX_KEPT_MS - 1)).toBe(bob);
    expect(kept.get('long', MAX_KEPT_MS)).toBeUndefined();
    expect(kept.get('forever', MAX_KEPT_MS)).toBeUndefined();
  });

  it('does not keep a token that is already past its exp', () => {
    const kept = new VerifiedTokens(10);
    kept.add('late', alice, 20_000, { exp: 20 });
    expect(kept.size).toBe(0);
  });

  it('holds at most its capacity, the least recently used token leaving first', () => {
    const kept = new VerifiedTokens(2);
    kept.add('a', alice, 0, {});
    kept.add('b', bob, 0, {});
    expect(kept.get('a', 1)).toBe(alice); // a is now the most recently used
    kept.add('c', bob, 1, {});
    expect(kept.size).toBe(2);
    expect(kept.get('b', 2)).toBeUndefined();
    expect(kept.get('a', 2)).toBe(alice);
    expect(kept.get('c', 2)).toBe(bob);
  });

  it('keeps nothing with capacity 0', () => {
    const kept = new VerifiedTokens(0);
    kept.add('a', alice, 0, {});
    expect(kept.get('a', 1)).toBeUndefined();
  });
});

describe('the token issuer with verified tokens kept', () => {
  const secret = 'a-secret-of-at-least-32-characters-for-tests';
  afterEach(() => jest.useRealTimers());

  it('refuses a kept token once it has expired, saying so', async () => {
    jest.useFakeTimers({ now: new Date('2026-12-02T12:00:00Z'), doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    const tokens = createTokenIssuer(secret, { verifiedTokensKept: 100 });
    const token = tokens.sign(alice, 5);
    await expect(tokens.verify(token)).resolves.toBe(alice);
    await expect(tokens.verify(token)).resolves.toBe(alice);
    jest.setSystemTime(new Date('2026-12-02T12:00:05Z'));
    const refusal = tokens.verify(token);
    await expect(refusal).rejects.toBeInstanceOf(AuthenticationError);
    await expect(refusal).rejects.toThrow(/Token expired at 2026-12-02T12:00:05.000Z/);
  });

  it('checks a token that differs by one character afresh', async () => {
    const tokens = createTokenIssuer(secret, { verifiedTokensKept: 100 });
    const token = tokens.sign(bob, 3600);
    await expect(tokens.verify(token)).resolves.toBe(bob);
    const tampered = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
    await expect(tokens.verify(tampered)).rejects.toThrow(/signature verification failed/);
  });
});
