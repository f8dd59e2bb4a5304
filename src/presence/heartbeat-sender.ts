/**
 * Who a heartbeat is from, and the first count of its outcome.
 *
 * REST and GraphQL take every heartbeat's sender through here, so both transports
 * count `accepted` (the caller proved a user) and `rejected` (it did not; why is
 * thrown to the caller) the same way. What happens to an accepted heartbeat next
 * (`limited`, `written`, `skipped`, `failed`) the presence service counts.
 */
import type { Metrics } from '../observability/metrics';
import type { UserId } from './user-id';

/** `identify` gives the caller's user or throws why there is none. */
export function heartbeatSender(identify: () => UserId, metrics: Pick<Metrics, 'heartbeats'> | undefined): UserId {
  let userId: UserId;
  try {
    userId = identify();
  } catch (error) {
    metrics?.heartbeats.inc({ outcome: 'rejected' });
    throw error;
  }
  metrics?.heartbeats.inc({ outcome: 'accepted' });
  return userId;
}
