/**
 * Who sent a request, as its Authorization header proves: the token's user, or
 * why it proves no one (no header, a malformed one, a refused token, an identity
 * provider that cannot be reached).
 *
 * The one place a header becomes a caller: REST and GraphQL both build one per
 * request and use it the same way. A read never fails on a token, it only sees
 * less ({@link Caller.viewer} is null: anonymous); what needs a user
 * ({@link Caller.userId}) fails with why the token was refused.
 */
import type { UserId } from '../presence/user-id';
import { missingTokenError, type TokenIssuer } from './tokens';

export interface Caller {
  /** Who is reading: the token's user, or null (anonymous) without a valid token. */
  readonly viewer: UserId | null;
  /**
   * The token's user; throws why there is none (an AuthenticationError, or
   * UnavailableError while the identity provider's keys cannot be fetched).
   */
  userId(): UserId;
}

/**
 * Verifies the bearer token in `authorization` (the header as sent, if any) once,
 * and keeps the outcome.
 */
export async function identifyCaller(tokens: Pick<TokenIssuer, 'authenticate'>, authorization: string | undefined): Promise<Caller> {
  // Most reads are anonymous: no token to check, and no error made unless
  // something asks for the user.
  if (!authorization) return { viewer: null, userId: () => refuse(missingTokenError()) };
  try {
    const userId = await tokens.authenticate(authorization);
    return { viewer: userId, userId: () => userId };
  } catch (error) {
    return { viewer: null, userId: () => refuse(error) };
  }
}

function refuse(error: unknown): never {
  throw error;
}
