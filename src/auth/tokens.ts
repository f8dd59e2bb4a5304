/**
 * Bearer tokens: HS256 JWTs whose `sub` is the caller's user id.
 *
 * Verification pins the algorithm to HS256, so a token that names `none` or an
 * asymmetric algorithm is refused before its signature is considered, and honours
 * `exp` and `nbf`. Built on `jsonwebtoken` rather than hand-written crypto.
 */
import { createSecretKey } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { AuthenticationError } from '../errors';
import { parseUserId, type UserId } from '../presence/user-id';

const ALGORITHM = 'HS256';

export interface TokenIssuer {
  /** A signed token for `userId`, valid for `expiresInSeconds`. */
  sign(userId: UserId, expiresInSeconds: number): string;
  /** The user id a token proves, or {@link AuthenticationError} saying why not. */
  verify(token: string): UserId;
  /** The user id an `Authorization` header proves; throws when missing or bad. */
  authenticate(authorization: string | undefined): UserId;
}

export function createTokenIssuer(secret: string): TokenIssuer {
  // The key object is made once: given the secret as a string, jsonwebtoken
  // makes one on every call, which costs most of a millisecond and was what
  // limited heartbeats per core (docs/performance.md).
  const key = createSecretKey(Buffer.from(secret, 'utf8'));
  const verify = (token: string): UserId => {
    let payload: string | jwt.JwtPayload;
    try {
      payload = jwt.verify(token, key, { algorithms: [ALGORITHM] });
    } catch (error) {
      throw new AuthenticationError(explain(error));
    }
    if (typeof payload === 'string' || payload.sub === undefined) {
      throw new AuthenticationError('Invalid token: it has no `sub` claim naming the user');
    }
    try {
      return parseUserId(payload.sub);
    } catch {
      throw new AuthenticationError(
        `Invalid token: its \`sub\` claim ${JSON.stringify(payload.sub).slice(0, 40)} is not a user id (a decimal integer from 1 to 2^63-1)`,
      );
    }
  };

  return {
    sign: (userId, expiresInSeconds) => jwt.sign({}, key, { algorithm: ALGORITHM, subject: userId, expiresIn: expiresInSeconds }),
    verify,
    authenticate(authorization) {
      if (!authorization) {
        throw new AuthenticationError('Missing bearer token: send `Authorization: Bearer <token>`');
      }
      const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
      if (!match?.[1]) {
        throw new AuthenticationError('Malformed Authorization header: expected `Bearer <token>`');
      }
      return verify(match[1]);
    },
  };
}

// Private: jsonwebtoken's errors, in words that tell the caller what to do.
function explain(error: unknown): string {
  if (error instanceof jwt.TokenExpiredError) {
    return `Token expired at ${error.expiredAt.toISOString()}: get a new one`;
  }
  if (error instanceof jwt.NotBeforeError) {
    return `Token not valid before ${error.date.toISOString()}`;
  }
  if (error instanceof jwt.JsonWebTokenError) {
    if (/invalid signature/.test(error.message)) return 'Invalid token: signature verification failed';
    if (/invalid algorithm/.test(error.message)) return `Invalid token: only ${ALGORITHM} is accepted`;
    if (/jwt malformed|invalid token|jwt must be/.test(error.message)) return 'Invalid token: not a well-formed JWT';
    return `Invalid token: ${error.message}`;
  }
  return 'Invalid token';
}
