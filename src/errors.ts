/**
 * The errors Pulse reports to its callers, independent of the protocol.
 *
 * Services throw these; the GraphQL and HTTP layers turn each into its code and
 * status (BAD_USER_INPUT / 400, USERNAME_TAKEN / 409, UNAUTHENTICATED / 401,
 * UNAVAILABLE / 503, RATE_LIMITED / 429, SIGNUP_DISABLED / 403). Anything else is a bug, logged with its cause and shown to
 * the caller only as an internal error.
 */

/** The caller sent something Pulse cannot accept; the message names the value. */
export class InvalidInputError extends Error {
  readonly code = 'BAD_USER_INPUT';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidInputError';
  }
}

/** Someone already has this user name (names are unique case-insensitively). */
export class UsernameTakenError extends Error {
  readonly code = 'USERNAME_TAKEN';
  constructor(message: string) {
    super(message);
    this.name = 'UsernameTakenError';
  }
}

/** The caller must prove who they are, and did not (or the proof was bad). */
export class AuthenticationError extends Error {
  readonly code = 'UNAUTHENTICATED';
  constructor(message: string) {
    super(message);
    this.name = 'AuthenticationError';
  }
}

/**
 * Sign-up is not offered by this server: its tokens come from an identity
 * provider (JWT_JWKS_URL) and it holds no key to sign one for a new user.
 */
export class SignupDisabledError extends Error {
  readonly code = 'SIGNUP_DISABLED';
  constructor(message: string) {
    super(message);
    this.name = 'SignupDisabledError';
  }
}

/** Pulse cannot serve this request right now (the database is unreachable or slow). */
export class UnavailableError extends Error {
  readonly code = 'UNAVAILABLE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UnavailableError';
  }
}

/**
 * This client has done this too often (sign-ups, searches): refused until a
 * token of its rate has come back, which `retryAfterSeconds` says.
 */
export class RateLimitedError extends Error {
  readonly code = 'RATE_LIMITED';
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
    this.name = 'RateLimitedError';
  }
}

export type PulseError = InvalidInputError | UsernameTakenError | AuthenticationError | UnavailableError | RateLimitedError | SignupDisabledError;

// PostgreSQL error classes that mean "not now", not "wrong request": connection
// exceptions (08), operator intervention such as a server shutting down (57P0x),
// query_canceled (57014, which is how statement_timeout fires), and running out of
// connections (53300).
const UNAVAILABLE_SQLSTATES = /^(08|57P0|57014|53300)/;
// What node-postgres reports without a SQLSTATE when the server is not there.
const UNAVAILABLE_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN']);
const UNAVAILABLE_MESSAGES = /timeout exceeded when trying to connect|Connection terminated|connection error|Client has encountered a connection error/i;

/**
 * Classifies an error thrown while serving a request: a {@link PulseError} as it is,
 * a database outage as {@link UnavailableError}, anything else as null (a bug).
 */
export function toPulseError(error: unknown): PulseError | null {
  if (
    error instanceof InvalidInputError ||
    error instanceof UsernameTakenError ||
    error instanceof AuthenticationError ||
    error instanceof UnavailableError ||
    error instanceof RateLimitedError ||
    error instanceof SignupDisabledError
  ) {
    return error;
  }
  // Duck-typed rather than `instanceof Error`: socket errors are created by Node's
  // core, which in some hosts (test sandboxes, workers) is another realm whose
  // Error is not this one's.
  if (typeof error === 'object' && error !== null) {
    const { code, message } = error as { code?: unknown; message?: unknown };
    if (
      (typeof code === 'string' && (UNAVAILABLE_SQLSTATES.test(code) || UNAVAILABLE_NODE_CODES.has(code))) ||
      (typeof message === 'string' && UNAVAILABLE_MESSAGES.test(message))
    ) {
      return new UnavailableError('The presence database is unavailable; try again shortly', { cause: error });
    }
  }
  return null;
}
