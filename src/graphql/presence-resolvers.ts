/**
 * Resolvers for presence: statuses in, heartbeats, manual status and privacy out.
 * Every status goes through the request's status loader, which sees as the viewer.
 */
import { InvalidInputError } from '../errors';
import type { Metrics } from '../observability/metrics';
import type { LivePresence } from '../live/live-presence';
import type { Presence } from '../presence/presence-service';
import { heartbeatSender } from '../presence/heartbeat-sender';
import type { UserService } from '../users/user-service';
import type { Visibility } from '../presence/visibility';
import { parseUserId, parseUserIds } from '../presence/user-id';
import type { ManualStatus, UserStatus } from '../presence/user-status';
import type { PrivacySettings, SettingsService } from '../users/settings-service';
import type { PulseContext } from './context';
import { toGraphQLError } from './errors';
import { guard } from './guard';

export interface PresenceResolverDependencies {
  presence: Pick<Presence, 'heartbeat'>;
  /** Live statuses for subscriptions; absent, subscriptions are refused. */
  live?: LivePresence;
  /** The users a viewer follows: what `presenceChanged` without ids watches. */
  users: Pick<UserService, 'following'>;
  settings: SettingsService;
  /** Most ids one `statuses` call may ask for. */
  statusesMaxIds: number;
  metrics?: Pick<Metrics, 'heartbeats'>;
}

// Private: marks a status known only from the heartbeat's write (online and
// lastSeen, which the caller sees as written); its other fields need the
// caller's settings and are read only if asked for.
const FROM_WRITE = Symbol('status from the heartbeat write');
type HeartbeatStatus = UserStatus & { [FROM_WRITE]?: true };

export function createPresenceResolvers(deps: PresenceResolverDependencies) {
  // A field of the caller's own status: as written, or, for a heartbeat's answer,
  // from the status read on the primary, which has the write (one statement for
  // all such fields of the request). Only the read can fail, so only the read is
  // guarded (a database outage is UNAVAILABLE, not a masked internal error); the
  // plain field stays synchronous.
  const ownField =
    <K extends 'state' | 'statusText' | 'manualStatus' | 'idle'>(field: K) =>
    (parent: HeartbeatStatus, _args: unknown, ctx: PulseContext): UserStatus[K] | Promise<UserStatus[K]> =>
      parent[FROM_WRITE] ? ctx.loaders.freshStatus.load(parent.userId).then((status) => status[field], toGraphQLError) : parent[field];

  return {
    UserStatus: {
      state: ownField('state'),
      statusText: ownField('statusText'),
      manualStatus: ownField('manualStatus'),
      idle: ownField('idle'),
    },

    Query: {
      status: guard((_: unknown, args: { id: string }, ctx: PulseContext): Promise<UserStatus> => {
        return ctx.loaders.status.load(parseUserId(args.id));
      }),

      statuses: guard((_: unknown, args: { ids: string[] }, ctx: PulseContext): Promise<UserStatus[]> => {
        const ids = parseUserIds(args.ids, deps.statusesMaxIds);
        return Promise.all(ids.map((id) => ctx.loaders.status.load(id)));
      }),

      privacy: guard((_: unknown, _args: unknown, ctx: PulseContext): Promise<PrivacySettings> => {
        return deps.settings.privacy(ctx.authenticate());
      }),
    },

    Subscription: {
      presenceChanged: {
        subscribe: guard(async (_: unknown, args: { ids?: string[] | null }, ctx: PulseContext) => {
          if (!deps.live) throw new InvalidInputError('Live presence is not available on this server');
          const viewer = ctx.viewer();
          let ids;
          if (args.ids) {
            ids = parseUserIds(args.ids, deps.statusesMaxIds);
          } else {
            // Without ids: the users the viewer follows, as they are now.
            if (!viewer) throw new InvalidInputError('Missing ids: name the users to watch, or send a bearer token to watch the users you follow');
            ids = (await deps.users.following(viewer)).map((user) => user.id).slice(0, deps.statusesMaxIds);
          }
          return deps.live.watch(ids, viewer);
        }),
        resolve: (status: UserStatus) => status,
      },
    },

    Mutation: {
      heartbeat: guard(async (_: unknown, args: { idle?: boolean | null }, ctx: PulseContext): Promise<HeartbeatStatus> => {
        const userId = heartbeatSender(() => ctx.authenticate(), deps.metrics);
        const written = await deps.presence.heartbeat(userId, args.idle ?? false);
        // Later reads of this user in the same request see the write. The answer
        // costs no read unless the caller asks for fields only a read knows
        // (state, statusText, manualStatus): a heartbeat stays one share of one
        // batched statement.
        ctx.loaders.freshStatus.clear(userId);
        return { ...written, [FROM_WRITE]: true };
      }),

      setStatus: guard(
        async (
          _: unknown,
          args: { status: ManualStatus; text?: string | null; expiresAt?: Date | null },
          ctx: PulseContext,
        ): Promise<UserStatus> => {
          const userId = ctx.authenticate();
          await deps.settings.setStatus(userId, args.status, args.text ?? null, args.expiresAt ?? null);
          return ctx.loaders.freshStatus.clear(userId).load(userId);
        },
      ),

      updatePrivacy: guard(
        (_: unknown, args: { visibility?: Visibility | null; showLastSeen?: boolean | null }, ctx: PulseContext): Promise<PrivacySettings> => {
          return deps.settings.updatePrivacy(ctx.authenticate(), args.visibility ?? null, args.showLastSeen ?? null);
        },
      ),
    },
  };
}
