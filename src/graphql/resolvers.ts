/**
 * Resolvers: the GraphQL contract in schema.graphql, mapped onto the services.
 *
 * Resolvers validate what arrives, call a service or a loader, and let
 * {@link toGraphQLError} turn whatever is thrown into the caller's error code.
 */
import { InvalidInputError } from '../errors';
import type { Metrics } from '../observability/metrics';
import type { PresenceService } from '../presence/presence-service';
import { parseUserId } from '../presence/user-id';
import type { UserStatus } from '../presence/user-status';
import type { PulseContext } from './context';
import { DateTimeScalar } from './date-time';
import { toGraphQLError } from './errors';

export interface ResolverDependencies {
  presence: PresenceService;
  /** Most ids one `statuses` call may ask for. */
  statusesMaxIds: number;
  metrics?: Pick<Metrics, 'heartbeats'>;
}

export function createResolvers(deps: ResolverDependencies) {
  return {
    DateTime: DateTimeScalar,

    Query: {
      status: guard((_: unknown, args: { id: string }, ctx: PulseContext): Promise<UserStatus> => {
        return ctx.loaders.status.load(parseUserId(args.id));
      }),

      statuses: guard((_: unknown, args: { ids: string[] }, ctx: PulseContext): Promise<UserStatus[]> => {
        if (args.ids.length > deps.statusesMaxIds) {
          throw new InvalidInputError(
            `Too many ids: ${args.ids.length} given, at most ${deps.statusesMaxIds} per request`,
          );
        }
        const ids = args.ids.map(parseUserId);
        return Promise.all(ids.map((id) => ctx.loaders.status.load(id)));
      }),
    },

    Mutation: {
      heartbeat: guard(async (_: unknown, _args: unknown, ctx: PulseContext): Promise<UserStatus> => {
        let userId;
        try {
          userId = ctx.authenticate();
        } catch (error) {
          deps.metrics?.heartbeats.inc({ outcome: 'rejected' });
          throw error;
        }
        deps.metrics?.heartbeats.inc({ outcome: 'accepted' });
        const status = await deps.presence.heartbeat(userId);
        // Later reads of this user in the same request see the write.
        ctx.loaders.status.clear(userId).prime(userId, status);
        return status;
      }),
    },
  };
}

// Private: every resolver's errors go through toGraphQLError, sync or async.
function guard<A extends unknown[], R>(resolve: (...args: A) => R | Promise<R>) {
  return async (...args: A): Promise<R> => {
    try {
      return await resolve(...args);
    } catch (error) {
      return toGraphQLError(error);
    }
  };
}
