/**
 * Bearer tokens: JWTs whose `sub` is the caller's user id, from one of two
 * sources:
 *
 *  - Pulse's own HS256 tokens, signed with JWT_SECRET (sign-up, `npm run token`,
 *    simple setups where the login service shares the secret). Verified with
 *    `jsonwebtoken`, pinned to HS256.
 *  - an identity provider's tokens (Auth0, Okta, Keycloak, Cognito, Firebase,
 *    Entra ID), signed with RS256/ES256/EdDSA and checked against the key set it
 *    publishes at JWT_JWKS_URL. Verified with `jose`, which fetches the key set,
 *    caches it, fetches it again when a token names a key id it does not know
 *    (at most once per JWT_JWKS_COOLDOWN_SECONDS, 30 by default, so junk key ids
 *    cannot make Pulse hammer the provider) and when the cache is older than
 *    JWT_JWKS_CACHE_SECONDS (10 minutes): keys rotate without a restart.
 *
 * Which one applies is read from the token's header (`alg`) and is then pinned:
 * an HS* token is only ever checked against the secret and only when there is
 * one, an asymmetric token only against the key set with JWT_ALGORITHMS. `none`
 * is never accepted, and a public key is never used as an HMAC secret.
 *
 * Both honour `exp` and `nbf`, check `iss` and `aud` when configured, require
 * `exp` in production (a token without one would be valid forever once
 * leaked) and refuse tokens issued longer ago than JWT_MAX_TOKEN_AGE_SECONDS.
 */
import { createSecretKey } from 'node:crypto';
import { createRemoteJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import jwt from 'jsonwebtoken';
import { AuthenticationError, UnavailableError } from '../errors';
import { parseUserId, type UserId } from '../presence/user-id';
import { VerifiedTokens } from './verified-tokens';

const HS256 = 'HS256';

/** What tokens must say beyond a good signature. */
export interface TokenRules {
  /** Required `iss`; null: not checked. */
  issuer?: string | null;
  /** Accepted `aud` values (one must match); null: not checked. */
  audience?: readonly string[] | null;
  /** Refuse tokens without `exp`. */
  requireExp?: boolean;
  /** Refuse tokens whose `iat` is older than this; null: no limit. */
  maxTokenAgeSeconds?: number | null;
}

/** An identity provider's published keys. */
export interface KeySetOptions {
  /** Where the JSON Web Key Set is served (https://, or http:// on loopback). */
  url: string;
  /** Algorithms accepted (RS256, ES256, EdDSA, ...); never HS* or none. */
  algorithms: readonly string[];
  /** Fetch the set again after this long (default 600 s). */
  cacheSeconds?: number;
  /** An unknown key id fetches the set again at most this often (default 30 s). */
  cooldownSeconds?: number;
}

export interface TokenIssuer {
  /** True when Pulse can sign its own tokens (it has an HS256 secret). */
  readonly canSign: boolean;
  /** A signed HS256 token for `userId`, valid for `expiresInSeconds`. */
  sign(userId: UserId, expiresInSeconds: number): string;
  /** The user id a token proves, or {@link AuthenticationError} saying why not. */
  verify(token: string): Promise<UserId>;
  /** The user id an `Authorization` header proves; rejects when missing or bad. */
  authenticate(authorization: string | undefined): Promise<UserId>;
}

/**
 * Tokens checked against `secret` (HS256) and, when `keySet` is given, against
 * an identity provider's keys. At least one of the two must be given.
 */
export function createTokenIssuer(
  secret: string | null,
  options: {
    keySet?: KeySetOptions | null;
    rules?: TokenRules;
    /** Most recently verified tokens kept, so a client's next request skips the check (see VerifiedTokens); 0: none. */
    verifiedTokensKept?: number;
  } = {},
): TokenIssuer {
  const rules = options.rules ?? {};
  const verified = new VerifiedTokens(options.verifiedTokensKept ?? 0);
  const keySet = options.keySet ?? null;
  if (!secret && !keySet) throw new Error('createTokenIssuer: a secret or a key set is required');
  // The key object is made once: given the secret as a string, jsonwebtoken
  // makes one on every call, which costs most of a millisecond and was what
  // limited heartbeats per core (docs/performance.md).
  const key = secret ? createSecretKey(Buffer.from(secret, 'utf8')) : null;
  const remoteKeys = keySet
    ? createRemoteJWKSet(new URL(keySet.url), {
        cooldownDuration: (keySet.cooldownSeconds ?? 30) * 1000,
        cacheMaxAge: (keySet.cacheSeconds ?? 600) * 1000,
        timeoutDuration: 5_000,
      })
    : null;
  const audience = rules.audience ? [...rules.audience] : undefined;

  const verifyHs256 = (token: string): jwt.JwtPayload => {
    let payload: string | jwt.JwtPayload;
    try {
      payload = jwt.verify(token, key!, {
        algorithms: [HS256],
        ...(rules.issuer ? { issuer: rules.issuer } : {}),
        ...(audience ? { audience: audience as [string, ...string[]] } : {}),
        ...(rules.maxTokenAgeSeconds ? { maxAge: rules.maxTokenAgeSeconds } : {}),
      });
    } catch (error) {
      throw new AuthenticationError(explainJsonwebtoken(error));
    }
    if (typeof payload === 'string') throw new AuthenticationError('Invalid token: its payload is not a JSON object');
    return payload;
  };

  const verifyWithKeySet = async (token: string): Promise<JWTPayload> => {
    try {
      const { payload } = await jwtVerify(token, remoteKeys!, {
        algorithms: [...keySet!.algorithms],
        ...(rules.issuer ? { issuer: rules.issuer } : {}),
        ...(audience ? { audience } : {}),
        ...(rules.maxTokenAgeSeconds ? { maxTokenAge: rules.maxTokenAgeSeconds } : {}),
      });
      return payload;
    } catch (error) {
      // No answer from the provider is an outage, not a bad token.
      if (error instanceof joseErrors.JWKSTimeout || !(error instanceof joseErrors.JOSEError)) {
        throw new UnavailableError("The identity provider's key set cannot be fetched; try again shortly", { cause: error });
      }
      throw new AuthenticationError(explainJose(error));
    }
  };

  const verify = async (token: string): Promise<UserId> => {
    const now = Date.now();
    const known = verified.get(token, now);
    if (known !== undefined) return known;
    const { userId, exp, iat } = await verifyAfresh(token);
    verified.add(token, userId, now, {
      exp: typeof exp === 'number' ? exp : undefined,
      ageLimit: rules.maxTokenAgeSeconds && typeof iat === 'number' ? iat + rules.maxTokenAgeSeconds : undefined,
    });
    return userId;
  };

  // Private: the whole check, and the claims that bound how long it holds.
  const verifyAfresh = async (token: string): Promise<{ userId: UserId; exp: unknown; iat: unknown }> => {
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw new AuthenticationError('Invalid token: not a well-formed JWT');
    }
    let payload: { sub?: unknown; exp?: unknown; iat?: unknown };
    if (typeof alg === 'string' && alg.startsWith('HS')) {
      if (!key) throw new AuthenticationError(`Invalid token: ${alg} tokens are not accepted here; send a token from the identity provider`);
      payload = verifyHs256(token);
    } else if (typeof alg === 'string' && alg !== 'none' && remoteKeys) {
      payload = await verifyWithKeySet(token);
    } else {
      const accepted = [...(key ? [HS256] : []), ...(keySet?.algorithms ?? [])];
      throw new AuthenticationError(`Invalid token: only ${accepted.join(', ')} ${accepted.length === 1 ? 'is' : 'are'} accepted`);
    }
    if (rules.requireExp && typeof payload.exp !== 'number') {
      throw new AuthenticationError('Invalid token: it has no `exp` claim, and tokens must expire here');
    }
    if (rules.maxTokenAgeSeconds && typeof payload.iat !== 'number') {
      throw new AuthenticationError('Invalid token: it has no `iat` claim, so its age cannot be checked');
    }
    if (payload.sub === undefined) {
      throw new AuthenticationError('Invalid token: it has no `sub` claim naming the user');
    }
    try {
      return { userId: parseUserId(payload.sub), exp: payload.exp, iat: payload.iat };
    } catch {
      throw new AuthenticationError(
        `Invalid token: its \`sub\` claim ${JSON.stringify(payload.sub).slice(0, 40)} is not a user id (a decimal integer from 1 to 2^63-1)`,
      );
    }
  };

  return {
    canSign: key !== null,
    sign(userId, expiresInSeconds) {
      if (!key) throw new Error('Pulse has no JWT_SECRET, so it cannot sign tokens (tokens come from the identity provider)');
      return jwt.sign({}, key, { algorithm: HS256, subject: userId, expiresIn: expiresInSeconds });
    },
    verify,
    async authenticate(authorization) {
      if (!authorization) throw missingTokenError();
      const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
      if (!match?.[1]) {
        throw new AuthenticationError('Malformed Authorization header: expected `Bearer <token>`');
      }
      return verify(match[1]);
    },
  };
}

/** What a request without an Authorization header is told when it needs a user. */
export function missingTokenError(): AuthenticationError {
  return new AuthenticationError('Missing bearer token: send `Authorization: Bearer <token>`');
}

// Private: jsonwebtoken's errors, in words that tell the caller what to do.
function explainJsonwebtoken(error: unknown): string {
  if (error instanceof jwt.TokenExpiredError) {
    return `Token expired at ${error.expiredAt.toISOString()}: get a new one`;
  }
  if (error instanceof jwt.NotBeforeError) {
    return `Token not valid before ${error.date.toISOString()}`;
  }
  if (error instanceof jwt.JsonWebTokenError) {
    if (/invalid signature/.test(error.message)) return 'Invalid token: signature verification failed';
    if (/invalid algorithm/.test(error.message)) return `Invalid token: only ${HS256} is accepted`;
    if (/jwt malformed|invalid token|jwt must be/.test(error.message)) return 'Invalid token: not a well-formed JWT';
    if (/maxAge exceeded/.test(error.message)) return 'Invalid token: issued too long ago (JWT_MAX_TOKEN_AGE_SECONDS); get a new one';
    return `Invalid token: ${error.message}`;
  }
  return 'Invalid token';
}

// Private: jose's errors, likewise.
function explainJose(error: unknown): string {
  // jose reports a token past JWT_MAX_TOKEN_AGE_SECONDS as expired, on its `iat`.
  if (error instanceof joseErrors.JWTExpired && error.claim === 'iat') return 'Invalid token: issued too long ago (JWT_MAX_TOKEN_AGE_SECONDS); get a new one';
  if (error instanceof joseErrors.JWTExpired) return 'Token expired: get a new one';
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    return `Invalid token: its \`${error.claim}\` claim is not what this server accepts (${error.reason})`;
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'Invalid token: signature verification failed';
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'Invalid token: signed with a key the identity provider does not publish';
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'Invalid token: signed with an algorithm not in JWT_ALGORITHMS';
  if (error instanceof joseErrors.JWKSInvalid) return "Cannot check the token: the identity provider's key set is not a valid JWKS";
  if (error instanceof joseErrors.JWTInvalid || error instanceof joseErrors.JWSInvalid) return 'Invalid token: not a well-formed JWT';
  return `Invalid token: ${(error as Error)?.message ?? 'rejected'}`;
}
