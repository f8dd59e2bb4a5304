/**
 * Resolvers for presence: statuses in, heartbeats, manual status and privacy out.
 * Every status goes through the request's status loader, which sees as the viewer.
 */
import { InvalidInputError } from '../errors';
import type { Metrics } from '../observability/metrics';
import type { PresenceService } from '../presence/presence-service';
import type { Visibility } from '../presence/status-repository';
import { parseUserId } from '../presence/user-id';
import type { ManualStatus, UserStatus } from '../presence/user-status';
import type { PrivacySettings, SettingsService } from '../users/settings-service';
import type { PulseContext } from './context';
import { guard } from './guard';

export interface PresenceResolverDependencies {
  presence: PresenceService;
  settings: SettingsService;
  /** Most ids one `statuses` call may ask for. */
  statusesMaxIds: number;
  metrics?: Pick<Metrics, 'heartbeats'>;
}

export function createPresenceResolvers(deps: PresenceResolverDependencies) {
  return {
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

      privacy: guard((_: unknown, _args: unknown, ctx: PulseContext): Promise<PrivacySettings> => {
        return deps.settings.privacy(ctx.authenticate());
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
        await deps.presence.heartbeat(userId);
        // The caller's own view, with their manual status and text, read after
        // the write (so later reads of this user in the same request see it too).
        return ctx.loaders.status.clear(userId).load(userId);
      }),

      setStatus: guard(
        async (
          _: unknown,
          args: { status: ManualStatus; text?: string | null; expiresAt?: Date | null },
          ctx: PulseContext,
        ): Promise<UserStatus> => {
          const userId = ctx.authenticate();
          await deps.settings.setStatus(userId, args.status, args.text ?? null, args.expiresAt ?? null);
          return ctx.loaders.status.clear(userId).load(userId);
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
