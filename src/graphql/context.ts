/**
 * The per-request GraphQL context: who is calling, and the request's loaders.
 *
 * Built once per request by the HTTP layer; resolvers only read it. The bearer
 * token is verified lazily, on the first resolver that needs the caller, so reads
 * (which need no token) never pay for or fail on one.
 */
import type DataLoader from 'dataloader';
import type { TokenIssuer } from '../auth/tokens';
import type { Logger } from '../logger';
import type { PresenceService } from '../presence/presence-service';
import type { UserId } from '../presence/user-id';
import type { UserStatus } from '../presence/user-status';

export interface PulseContext {
  /** The request's id, sent back in the x-request-id header. */
  readonly requestId: string;
  /** Logs lines tagged with the request id. */
  readonly logger: Logger;
  /** The caller's user id; throws AuthenticationError without a valid token. */
  authenticate(): UserId;
  /**
   * Who is looking: the caller's user id, or null without an Authorization
   * header. A header with a bad token is an error, not an anonymous viewer.
   */
  viewer(): UserId | null;
  readonly loaders: {
    readonly status: DataLoader<UserId, UserStatus>;
  };
}

export interface ContextDependencies {
  presence: PresenceService;
  tokens: TokenIssuer;
}

export interface RequestInfo {
  requestId: string;
  logger: Logger;
  /** The Authorization header as sent, if any. */
  authorization: string | undefined;
}

export function createContext(deps: ContextDependencies, request: RequestInfo): PulseContext {
  const { authorization } = request;
  let caller: { userId: UserId } | { error: unknown } | undefined;
  return {
    requestId: request.requestId,
    logger: request.logger,
    authenticate() {
      if (!caller) {
        try {
          caller = { userId: deps.tokens.authenticate(authorization) };
        } catch (error) {
          caller = { error };
        }
      }
      if ('error' in caller) throw caller.error;
      return caller.userId;
    },
    viewer() {
      return authorization ? this.authenticate() : null;
    },
    loaders: { status: deps.presence.createStatusLoader() },
  };
}
