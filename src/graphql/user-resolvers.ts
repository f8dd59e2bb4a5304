/**
 * Resolvers for users: sign-up, look-up, search and follows. A user's status is
 * resolved through the request's status loader, so a page of users costs one
 * status statement.
 */
import type { TokenIssuer } from '../auth/tokens';
import { RateLimitedError, SignupDisabledError } from '../errors';
import type { TokenBucket } from '../limits/token-bucket';
import type { Metrics } from '../observability/metrics';
import { parseUserId } from '../presence/user-id';
import type { UserStatus } from '../presence/user-status';
import type { User } from '../users/user';
import type { SearchPage, UserService } from '../users/user-service';
import type { GraphQLResolveInfo } from 'graphql';
import { statusLoaderFor, type PulseContext } from './context';
import { guard } from './guard';

export interface UserResolverDependencies {
  users: UserService;
  tokens: TokenIssuer;
  /** How long the token createUser returns is valid. */
  signupTokenTtlSeconds: number;
  /** Sign-ups per client address (SIGNUP_RATE); absent: unlimited. */
  signupRate?: TokenBucket | null;
  /** Searches per client (SEARCH_RATE); absent: unlimited. */
  searchRate?: TokenBucket | null;
  metrics?: Pick<Metrics, 'rateLimited'>;
}

/** A page of search results in the shape of the schema's UserConnection (Relay's connection). */
export interface UserConnection {
  edges: Array<{ cursor: string; node: User }>;
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

export function createUserResolvers(deps: UserResolverDependencies) {
  // Private: takes one of `client`'s tokens for `action`, or refuses with when to come back.
  const limit = (bucket: TokenBucket | null | undefined, client: string, action: 'signup' | 'search', what: string) => {
    const decision = bucket?.take(client);
    if (!decision || decision.allowed) return;
    deps.metrics?.rateLimited.inc({ action });
    throw new RateLimitedError(`Too many ${what} from this client; retry after ${decision.retryAfterSeconds} s`, decision.retryAfterSeconds);
  };

  return {
    User: {
      status: guard(
        (user: User, _args: unknown, ctx: PulseContext, info: GraphQLResolveInfo): Promise<UserStatus> =>
          statusLoaderFor(ctx, info).load(user.id),
      ),
    },

    Query: {
      me: guard((_: unknown, _args: unknown, ctx: PulseContext): Promise<User | null> | null => {
        const viewer = ctx.viewer();
        return viewer === null ? null : deps.users.findUser(viewer);
      }),

      user: guard((_: unknown, args: { id: string }): Promise<User | null> => deps.users.findUser(parseUserId(args.id))),

      searchUsers: guard(async (_: unknown, args: { query: string; first?: number | null; after?: string | null }, ctx: PulseContext): Promise<UserConnection> => {
        // Per user when signed in, else per address: a search is the costliest read.
        const viewer = ctx.viewer();
        limit(deps.searchRate, viewer ? `user:${viewer}` : `address:${ctx.clientAddress}`, 'search', 'searches');
        return userConnection(await deps.users.searchUsers(args.query, args.first ?? 20, args.after ?? null));
      }),

      following: guard((_: unknown, _args: unknown, ctx: PulseContext): Promise<User[]> => deps.users.following(ctx.authenticate())),

      followers: guard((_: unknown, _args: unknown, ctx: PulseContext): Promise<User[]> => deps.users.followers(ctx.authenticate())),
    },

    Mutation: {
      createUser: guard(async (_: unknown, args: { name: string }, ctx: PulseContext): Promise<{ user: User; token: string }> => {
        // Refused before the rate is charged: there is nothing to retry.
        if (!deps.tokens.canSign) {
          throw new SignupDisabledError('Sign-up is not offered here: this server takes tokens from an identity provider (JWT_JWKS_URL); sign up there');
        }
        limit(deps.signupRate, ctx.clientAddress, 'signup', 'sign-ups');
        const user = await deps.users.createUser(args.name);
        return { user, token: deps.tokens.sign(user.id, deps.signupTokenTtlSeconds) };
      }),

      follow: guard((_: unknown, args: { userId: string }, ctx: PulseContext): Promise<User> => {
        return deps.users.follow(ctx.authenticate(), parseUserId(args.userId));
      }),

      unfollow: guard((_: unknown, args: { userId: string }, ctx: PulseContext): Promise<boolean> => {
        return deps.users.unfollow(ctx.authenticate(), parseUserId(args.userId));
      }),
    },
  };
}

// Private: a search page as the schema's connection.
function userConnection(page: SearchPage): UserConnection {
  const edges = page.matches.map(({ user, cursor }) => ({ cursor, node: user }));
  return { edges, pageInfo: { hasNextPage: page.hasMore, endCursor: page.resumeCursor ?? edges.at(-1)?.cursor ?? null } };
}
