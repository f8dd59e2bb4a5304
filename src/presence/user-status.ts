/**
 * What Pulse says about one user, as one viewer sees it: a presence state, when
 * they were last seen, and the text of their status.
 */
import type { UserId } from './user-id';
import type { PulseRow } from './pulse-repository';

/** What a viewer is shown: online, away, busy or offline. */
export type PresenceState = 'ONLINE' | 'AWAY' | 'BUSY' | 'OFFLINE';

/** What a user chose by hand; AUTO lets heartbeats decide. */
export type ManualStatus = 'AUTO' | 'AWAY' | 'BUSY' | 'INVISIBLE';

export interface UserStatus {
  userId: UserId;
  state: PresenceState;
  /** True iff `state` is not OFFLINE. */
  online: boolean;
  /** The last heartbeat the viewer may know of; null for never seen or hidden. */
  lastSeen: Date | null;
  /** The user's status text, while the viewer is shown their status. */
  statusText: string | null;
  /** The manual status in force: shown to the user themself only, null for others. */
  manualStatus: ManualStatus | null;
  /** AWAY because the user is idle (connected, not using the app), not by choice. */
  idle: boolean;
}

/** The status of a user with no pulse row: offline, never seen. */
export function neverSeen(userId: UserId): UserStatus {
  return { userId, state: 'OFFLINE', online: false, lastSeen: null, statusText: null, manualStatus: null, idle: false };
}

/**
 * The status a pulse row alone implies: online or offline by heartbeats, with no
 * manual status or privacy applied. What a heartbeat's write knows.
 */
export function statusFromRow(userId: UserId, row: PulseRow): UserStatus {
  return {
    userId,
    state: row.online ? 'ONLINE' : 'OFFLINE',
    online: row.online,
    lastSeen: row.last_hb,
    statusText: null,
    manualStatus: null,
    // Known only with the manual status (a chosen one wins): read when asked for.
    idle: false,
  };
}
