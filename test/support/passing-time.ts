/**
 * Time passing for live presence, without waiting for it.
 *
 * Two clocks decide when a watched status changes by itself: the database's,
 * which every status read compares the stored times with (last heartbeat,
 * manual status expiry, the last seen kept while invisible), and the watching
 * process's, which keeps a deadline for each watched user
 * (src/live/live-presence.ts). {@link letTimePass} moves both by the same
 * amount: the users' stored times go that far into the past, and this process's
 * clock (faked from before the servers start, see {@link fakeProcessClock})
 * runs that far ahead, so their deadlines come due and subscribers see what
 * they would have seen after waiting.
 */
import { sql } from 'kysely';
import type { Database } from '../../src/db/database';

/**
 * Fakes this process's clock (`Date`) and repeating timers (`setInterval`, which
 * drives live presence's deadlines); both still follow real time, and
 * {@link letTimePass} moves them on. Everything else (timeouts, I/O) stays real.
 * Call before starting the servers whose deadlines a test lets pass.
 */
export function fakeProcessClock(): void {
  jest.useFakeTimers({
    advanceTimers: true,
    doNotFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate', 'nextTick', 'queueMicrotask', 'hrtime', 'performance'],
  });
}

/** Lets `seconds` pass for `userIds`, in the database and in this process. */
export async function letTimePass(db: Database, seconds: number, userIds: readonly string[]): Promise<void> {
  await sql`update pulse set last_hb = last_hb - make_interval(secs => ${seconds}) where user_id = any(${userIds}::bigint[])`.execute(db);
  await sql`
    update presence_settings
    set expires_at = expires_at - make_interval(secs => ${seconds}),
        invisible_last_seen = invisible_last_seen - make_interval(secs => ${seconds})
    where user_id = any(${userIds}::bigint[])
  `.execute(db);
  jest.advanceTimersByTime(seconds * 1000);
}
