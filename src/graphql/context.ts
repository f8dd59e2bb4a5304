/**
 * The per-request GraphQL context: who is calling, and the request's loaders.
 *
 * Built once per request by the HTTP layer; resolvers only read it. The bearer
 * token is verified lazily, on the first resolver that needs the caller, so reads
 * (which need no token) never pay for or fail on one.
 */
import type DataLoader from 'dataloader';
import type { TokenIssuer } from '../auth/tokens';
import type { PresenceService } from '../presence/presence-service';
import type { UserId } from '../presence/user-id';
import type { UserStatus } from '../presence/user-status';

export interface PulseContext {
  /** The caller's user id; throws AuthenticationError without a valid token. */
  authenticate(): UserId;
  readonly loaders: {
    readonly status: DataLoader<UserId, UserStatus>;
  };
}

export interface ContextDependencies {
  presence: PresenceService;
  tokens: TokenIssuer;
}

export function createContext(deps: ContextDependencies, authorization: string | undefined): PulseContext {
  let caller: { userId: UserId } | { error: unknown } | undefined;
  return {
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
    loaders: { status: deps.presence.createStatusLoader() },
  };
}
