/**
 * Resolvers: the GraphQL contract in schema.graphql, mapped onto the services.
 *
 * Resolvers validate what arrives, call a service or a loader, and let
 * {@link toGraphQLError} turn whatever is thrown into the caller's error code.
 */
import { InvalidInputError } from '../errors';
import type { Metrics } from '../observability/metrics';
import type { LivePresence } from '../live/live-presence';
import type { PresenceService } from '../presence/presence-service';
import { parseUserId } from '../presence/user-id';
import type { UserStatus } from '../presence/user-status';
import type { PulseContext } from './context';
import { DateTimeScalar } from './date-time';
import { toGraphQLError } from './errors';

export interface ResolverDependencies {
  presence: PresenceService;
  /** Live statuses for subscriptions; absent, subscriptions are refused. */
  live?: LivePresence;
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
        const ids = parseUserIds(args.ids, deps.statusesMaxIds);
        return Promise.all(ids.map((id) => ctx.loaders.status.load(id)));
      }),
    },

    Subscription: {
      presenceChanged: {
        subscribe: guard(async (_: unknown, args: { ids?: string[] | null }, ctx: PulseContext) => {
          if (!deps.live) throw new InvalidInputError('Live presence is not available on this server');
          if (!args.ids) throw new InvalidInputError('Missing ids: name the users to watch, e.g. presenceChanged(ids: ["42"])');
          const ids = parseUserIds(args.ids, deps.statusesMaxIds);
          return deps.live.watch(ids, ctx.viewer());
        }),
        resolve: (status: UserStatus) => status,
      },
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

// Private: a list of ids as the caller sent it, each checked, at most `max` of them.
function parseUserIds(given: readonly string[], max: number) {
  if (given.length > max) throw new InvalidInputError(`Too many ids: ${given.length} given, at most ${max} per request`);
  return given.map(parseUserId);
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
