/**
 * How an error is answered over HTTP, on every path (GraphQL, the plain
 * endpoints, load shedding): one status per error code, and the Retry-After
 * that tells a client when a temporary refusal is worth retrying.
 */
import type { GraphQLError } from 'graphql';
import type { PulseError } from '../errors';

/** Seconds a client is asked to wait before retrying a request refused for now. */
export const RETRY_AFTER_SECONDS = 1;

export interface ErrorAnswer {
  /** The HTTP status of a response that fails with this code. */
  status: number;
  /**
   * Over GraphQL, whether the code fails the whole request. A bad id in one
   * field, or a taken name, is an answer about that field: the response stays
   * 200 so that clients keep the other fields' answers, which a 4xx would tell
   * them to discard.
   */
  failsGraphQLRequest: boolean;
}

export const ERROR_ANSWERS: Readonly<Record<PulseError['code'], ErrorAnswer>> = {
  BAD_USER_INPUT: { status: 400, failsGraphQLRequest: false },
  USERNAME_TAKEN: { status: 409, failsGraphQLRequest: false },
  UNAUTHENTICATED: { status: 401, failsGraphQLRequest: true },
  UNAVAILABLE: { status: 503, failsGraphQLRequest: true },
  // Too often from this client (sign-ups, searches): the request is refused whole.
  RATE_LIMITED: { status: 429, failsGraphQLRequest: true },
  // Sign-up on a server whose tokens come from an identity provider: an answer
  // about createUser, which that server does not offer.
  SIGNUP_DISABLED: { status: 403, failsGraphQLRequest: false },
};

/**
 * The headers an answer with `status` carries: Retry-After when the refusal is
 * temporary (503, 429), so clients come back later instead of at once, deepening
 * an outage. A rate limit knows when its next token comes back and says so.
 */
export function errorHeaders(status: number, retryAfterSeconds: number = RETRY_AFTER_SECONDS): Record<string, string> {
  return status === 503 || status === 429 ? { 'retry-after': String(retryAfterSeconds) } : {};
}

/** How long the client that met `error` should wait, when the error says. */
export function retryAfterOf(error: PulseError): number | undefined {
  return error.code === 'RATE_LIMITED' ? error.retryAfterSeconds : undefined;
}

/** How a GraphQL operation refused as a whole is answered over HTTP. */
export interface Refusal {
  status: number;
  headers: Record<string, string>;
}

/**
 * The HTTP answer to an operation that failed with `errors` before it produced
 * anything (a subscription refused before its first event): the status and
 * headers of the first error whose code fails the whole request (503 with
 * Retry-After in a database outage, 401 without a valid token, 429 with the
 * rate's Retry-After), as /graphql answers them; null when every error is
 * about a field (a bad id), which is an ordinary GraphQL answer.
 */
export function refusalOf(errors: readonly GraphQLError[]): Refusal | null {
  for (const error of errors) {
    // Set from ERROR_ANSWERS when the error became a GraphQLError (toGraphQLError).
    const http = error.extensions?.http as { status?: number; headers?: Map<string, string> } | undefined;
    if (http?.status) return { status: http.status, headers: { ...errorHeaders(http.status), ...Object.fromEntries(http.headers ?? []) } };
  }
  return null;
}
