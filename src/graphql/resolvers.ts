/**
 * Resolvers: the GraphQL contract in schema.graphql, mapped onto the services.
 * One file per concern (presence, users); this one puts them together.
 *
 * Resolvers validate what arrives, call a service or a loader, and let
 * {@link toGraphQLError} (through {@link guard}) turn whatever is thrown into the
 * caller's error code.
 */
import { DateTimeScalar } from './date-time';
import { createPresenceResolvers, type PresenceResolverDependencies } from './presence-resolvers';
import { createUserResolvers, type UserResolverDependencies } from './user-resolvers';

export type ResolverDependencies = PresenceResolverDependencies & UserResolverDependencies;

export function createResolvers(deps: ResolverDependencies) {
  const presence = createPresenceResolvers(deps);
  const users = createUserResolvers(deps);
  return {
    DateTime: DateTimeScalar,
    User: users.User,
    UserStatus: presence.UserStatus,
    Subscription: presence.Subscription,
    Query: { ...presence.Query, ...users.Query },
    Mutation: { ...presence.Mutation, ...users.Mutation },
  };
}
