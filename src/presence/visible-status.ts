/**
 * The presence rules: what one viewer sees of one user. The only place they live;
 * every path that returns a status (GraphQL and REST alike) goes through
 * PresenceService.statuses, which applies this to each row of the status read.
 *
 * In order:
 *  1. Users see their own real state: connected or not, their manual status and
 *     its text, their real last heartbeat.
 *  2. A viewer the privacy settings do not admit sees exactly what a never-seen
 *     user looks like: OFFLINE, no lastSeen, no text. NOBODY admits no one;
 *     CONTACTS admits the users the target follows (never an anonymous viewer);
 *     EVERYONE admits all.
 *  3. INVISIBLE looks like a real offline user: OFFLINE, with lastSeen frozen at
 *     the last heartbeat before going invisible.
 *  4. Otherwise the heartbeats decide: a disconnected user is OFFLINE whatever
 *     they chose; a connected one is AWAY or BUSY if they said so, else AWAY if
 *     their latest heartbeat said idle (away when idle), else ONLINE.
 *     The status text is shown only with a state other than OFFLINE.
 *  5. With showLastSeen off, others never see lastSeen.
 *
 * An expired manual status arrives here as AUTO already (the read compares the
 * expiry with the database clock).
 */
import type { StatusRow } from './status-repository';
import type { UserId } from './user-id';
import { neverSeen, type PresenceState, type UserStatus } from './user-status';

/** What `viewer` (null: anonymous) sees of the user in `row`. */
export function visibleStatus(row: StatusRow, viewer: UserId | null): UserStatus {
  const userId = row.user_id as UserId;
  if (viewer === userId) return ownStatus(row, userId);
  if (!admits(row, viewer)) return neverSeen(userId);

  const lastSeen = (seen: Date | null) => (row.show_last_seen ? seen : null);
  if (row.manual_status === 'INVISIBLE' || !row.connected) {
    const seen = row.manual_status === 'INVISIBLE' ? row.invisible_last_seen : row.last_hb;
    return { ...neverSeen(userId), lastSeen: lastSeen(seen) };
  }
  const state = connectedState(row);
  return {
    userId,
    state,
    online: true,
    lastSeen: lastSeen(row.last_hb),
    statusText: row.status_text,
    manualStatus: null,
    idle: awayWhenIdle(row),
  };
}

// Private: may `viewer` see anything of this user's presence at all?
function admits(row: StatusRow, viewer: UserId | null): boolean {
  switch (row.visibility) {
    case 'EVERYONE':
      return true;
    case 'CONTACTS':
      return viewer !== null && row.follows_viewer;
    case 'NOBODY':
      return false;
  }
}

// Private: a user looking at themself sees the truth, including invisibility
// (as their manual status) and an away or busy state.
function ownStatus(row: StatusRow, userId: UserId): UserStatus {
  const state = row.connected ? connectedState(row) : 'OFFLINE';
  return {
    userId,
    state,
    online: state !== 'OFFLINE',
    lastSeen: row.last_hb,
    statusText: row.status_text,
    manualStatus: row.manual_status,
    idle: row.connected && awayWhenIdle(row),
  };
}

// Private: away by idleness rather than by choice (a chosen status wins).
function awayWhenIdle(row: StatusRow): boolean {
  return row.idle && row.manual_status !== 'AWAY' && row.manual_status !== 'BUSY';
}

// Private: a connected user shows AWAY or BUSY if they chose it, else AWAY while
// idle, else ONLINE (INVISIBLE is handled before this, for everyone but the user
// themself, who sees ONLINE or AWAY by their activity).
function connectedState(row: StatusRow): PresenceState {
  if (row.manual_status === 'AWAY' || row.manual_status === 'BUSY') return row.manual_status;
  return row.idle ? 'AWAY' : 'ONLINE';
}
