/**
 * The per-user heartbeat rate limit: repeats within the interval cost nothing.
 */
import { sql } from 'kysely';
import { HeartbeatRateLimit } from '../src/presence/heartbeat-rate-limit';
import { PresenceService } from '../src/presence/presence-service';
import { parseUserId } from '../src/presence/user-id';
import { createTestDatabase, type TestDatabase } from './support/test-database';

describe('HeartbeatRateLimit', () => {
  it('answers repeats within the interval with the first answer, and works again after it', async () => {
    let now = 0;
    const limit = new HeartbeatRateLimit<number>(1000, () => now);
    let calls = 0;
    const work = async () => ++calls;

    expect(await limit.answer('7', work).answer).toBe(1);
    now = 999;
    expect(limit.answer('7', work)).toMatchObject({ limited: true });
    expect(await limit.answer('8', work).answer).toBe(2); // another user is not limited
    now = 1000;
    expect(limit.answer('7', work).limited).toBe(false);
    expect(calls).toBe(3);
  });

  it('forgets a failed answer so the next heartbeat tries again', async () => {
    const limit = new HeartbeatRateLimit<number>(1000, () => 0);
    await expect(limit.answer('7', () => Promise.reject(new Error('down'))).answer).rejects.toThrow('down');
    expect(limit.answer('7', async () => 1).limited).toBe(false);
  });

  it('keeps only the users of the last two intervals', () => {
    let now = 0;
    const limit = new HeartbeatRateLimit<number>(1000, () => now);
    for (let id = 1; id <= 100; id++) limit.answer(String(id), async () => id);
    now = 1500;
    limit.answer('x', async () => 0);
    expect(limit.size).toBe(101);
    now = 3600; // more than two intervals after x: everything before is gone
    limit.answer('y', async () => 0);
    expect(limit.size).toBe(1);
  });

  it('is off with an interval of 0', () => {
    const limit = new HeartbeatRateLimit<number>(0, () => 0);
    limit.answer('7', async () => 1);
    expect(limit.answer('7', async () => 2).limited).toBe(false);
  });
});

describe('PresenceService with a rate limit', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(() => t.destroy());

  it('writes once for a burst of heartbeats from one user, and answers them all', async () => {
    const presence = new PresenceService({ db: t.db, thresholdSeconds: 30, heartbeatMinIntervalMs: 60_000 });
    t.statements.length = 0;
    const answers = await Promise.all([1, 2, 3, 4, 5].map(() => presence.heartbeat(parseUserId('42'))));
    expect(t.statements).toHaveLength(1);
    expect(new Set(answers.map((a) => a.lastSeen!.toISOString())).size).toBe(1);
    expect(answers.every((a) => a.online)).toBe(true);
    const { rows } = await sql<{ n: string }>`select count(*) as n from pulse`.execute(t.db);
    expect(rows[0]!.n).toBe('1');
  });
});
