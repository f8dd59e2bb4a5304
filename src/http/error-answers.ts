/**
 * How an error is answered over HTTP, on every path (GraphQL, the plain
 * endpoints, load shedding): one status per error code, and the Retry-After
 * that tells a client when a temporary refusal is worth retrying.
 */
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
