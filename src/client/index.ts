/**
 * Pulse's browser client: heartbeats and live statuses, over Pulse's public HTTP
 * API only. Bundled for browsers at /sdk.js.
 */
export { startHeartbeat, type Heartbeat, type HeartbeatOptions } from './heartbeat';
export { watchPresence, type LiveStatus, type PresenceState, type Watch, type WatchOptions } from './watch-presence';
