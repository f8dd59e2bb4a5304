/**
 * What Pulse says about one user: online or not, and when they were last seen.
 */
import type { UserId } from './user-id';
import type { PulseRow } from './pulse-repository';

export interface UserStatus {
  userId: UserId;
  /** True iff the last heartbeat is within the threshold, by the database clock. */
  online: boolean;
  /** The last heartbeat; null for a user who never sent one. */
  lastSeen: Date | null;
}

/** The status of a user with no pulse row: offline, never seen. */
export function neverSeen(userId: UserId): UserStatus {
  return { userId, online: false, lastSeen: null };
}

export function statusFromRow(userId: UserId, row: PulseRow): UserStatus {
  return { userId, online: row.online, lastSeen: row.last_hb };
}
