/**
 * Resolvers for users: sign-up, look-up, search and follows. A user's status is
 * resolved through the request's status loader, so a page of users costs one
 * status statement.
 */
import type { TokenIssuer } from '../auth/tokens';
import { parseUserId } from '../presence/user-id';
import type { UserStatus } from '../presence/user-status';
import type { User } from '../users/user';
import type { UserPage, UserService } from '../users/user-service';
import type { GraphQLResolveInfo } from 'graphql';
import { statusLoaderFor, type PulseContext } from './context';
import { guard } from './guard';

export interface UserResolverDependencies {
  users: UserService;
  tokens: TokenIssuer;
  /** How long the token createUser returns is valid. */
  signupTokenTtlSeconds: number;
}

export function createUserResolvers(deps: UserResolverDependencies) {
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

      searchUsers: guard((_: unknown, args: { query: string; first?: number | null; after?: string | null }): Promise<UserPage> => {
        return deps.users.searchUsers(args.query, args.first ?? 20, args.after ?? null);
      }),

      following: guard((_: unknown, _args: unknown, ctx: PulseContext): Promise<User[]> => deps.users.following(ctx.authenticate())),

      followers: guard((_: unknown, _args: unknown, ctx: PulseContext): Promise<User[]> => deps.users.followers(ctx.authenticate())),
    },

    Mutation: {
      createUser: guard(async (_: unknown, args: { name: string }): Promise<{ user: User; token: string }> => {
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
