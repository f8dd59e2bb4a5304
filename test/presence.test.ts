/**
 * Presence rules against a real PostgreSQL: heartbeats, the threshold (judged by
 * the database clock), never-seen users, order and duplicates, one statement per
 * batch of look-ups.
 */
import { sql } from 'kysely';
import { PresenceService } from '../src/presence/presence-service';
import { parseUserId } from '../src/presence/user-id';
import type { UserStatus } from '../src/presence/user-status';
import { createTestDatabase, type TestDatabase } from './support/test-database';

const id = parseUserId;
let t: TestDatabase;
let presence: PresenceService;

beforeAll(async () => {
  t = await createTestDatabase();
  presence = new PresenceService({ db: t.db, thresholdSeconds: 30 });
});
afterAll(() => t.destroy());
beforeEach(async () => {
  await sql`truncate pulse, users, follows, presence_settings`.execute(t.db);
  t.statements.length = 0;
});

describe('heartbeat', () => {
  it('marks a new user online, with lastSeen the database time of the write', async () => {
    const before = await dbNow();
    const status = await presence.heartbeat(id('42'));
    const after = await dbNow();
    expect(status.userId).toBe('42');
    expect(status.online).toBe(true);
    expect(status.lastSeen!.getTime()).toBeGreaterThanOrEqual(before.getTime() - 1);
    expect(status.lastSeen!.getTime()).toBeLessThanOrEqual(after.getTime() + 1);
  });

  it('brings a stale user back online and moves lastSeen forward', async () => {
    await t.setLastHeartbeat('7', 3600);
    const [stale] = await presence.statuses([id('7')], null);
    const fresh = await presence.heartbeat(id('7'));
    expect(stale!.online).toBe(false);
    expect(fresh.online).toBe(true);
    expect(fresh.lastSeen!.getTime()).toBeGreaterThan(stale!.lastSeen!.getTime() + 3_500_000);
  });

  it('keeps one row per user however many heartbeats arrive', async () => {
    await Promise.all([1, 2, 3, 4, 5].map(() => presence.heartbeat(id('9'))));
    const { rows } = await sql<{ n: string }>`select count(*) as n from pulse where user_id = 9`.execute(t.db);
    expect(rows[0]!.n).toBe('1');
  });
});

describe('statuses', () => {
  it('reports a user who never sent a heartbeat as offline with no lastSeen', async () => {
    expect(await presence.statuses([id('1')], null)).toEqual([{ userId: '1', state: 'OFFLINE', online: false, lastSeen: null, statusText: null, manualStatus: null, idle: false }]);
  });

  it('reports a stale user as offline with the time of their last heartbeat', async () => {
    await t.setLastHeartbeat('5', 300);
    const now = await dbNow();
    const [status] = await presence.statuses([id('5')], null);
    expect(status!.online).toBe(false);
    expect(Math.abs(now.getTime() - status!.lastSeen!.getTime() - 300_000)).toBeLessThan(5_000);
  });

  it('is online just inside the threshold and offline just outside it', async () => {
    await t.setLastHeartbeat('100', 29);
    await t.setLastHeartbeat('101', 31);
    const [inside, outside] = await presence.statuses([id('100'), id('101')], null);
    expect(inside!.online).toBe(true);
    expect(outside!.online).toBe(false);
  });

  it('applies the configured threshold, not a fixed one', async () => {
    const strict = new PresenceService({ db: t.db, thresholdSeconds: 5 });
    await t.setLastHeartbeat('200', 10);
    expect((await strict.statuses([id('200')], null))[0]!.online).toBe(false);
    expect((await presence.statuses([id('200')], null))[0]!.online).toBe(true);
  });

  it('judges by the database clock: a heartbeat stamped in the future counts as online', async () => {
    // A row written by a database whose clock is ahead of this process's still
    // compares against now() in SQL, never against Date.now() here.
    await t.setLastHeartbeat('300', -120);
    expect((await presence.statuses([id('300')], null))[0]!.online).toBe(true);
  });

  it('answers in input order, duplicates included, in one statement', async () => {
    await presence.heartbeat(id('2'));
    await t.setLastHeartbeat('3', 600);
    t.statements.length = 0;
    const statuses = await presence.statuses([id('3'), id('1'), id('2'), id('3'), id('2')], null);
    expect(statuses.map((s) => [s.userId, s.online])).toEqual([
      ['3', false],
      ['1', false],
      ['2', true],
      ['3', false],
      ['2', true],
    ]);
    expect(t.statements).toHaveLength(1);
  });

  it('batches every load of one tick into one statement through the request loader', async () => {
    const loader = presence.createStatusLoader(null);
    t.statements.length = 0;
    const results = await Promise.all([loader.load(id('10')), loader.loadMany([id('11'), id('12')]), loader.load(id('10'))]);
    // Each caller gets its own users' statuses, in the order it asked.
    const [first, many, again] = results as [UserStatus, UserStatus[], UserStatus];
    expect(first.userId).toBe('10');
    expect(many.map((status) => status.userId)).toEqual(['11', '12']);
    expect(again).toEqual(first);
    expect(t.statements).toHaveLength(1);
  });

  it('handles the largest id', async () => {
    const max = id('9223372036854775807');
    await presence.heartbeat(max);
    expect((await presence.statuses([max], null))[0]).toMatchObject({ userId: '9223372036854775807', online: true });
  });
});

describe('statuses as a viewer sees them', () => {
  // The rules in full are tested over GraphQL (status-rules.test.ts); these check
  // that the service itself, which the REST endpoints call, applies them.
  beforeEach(async () => {
    await sql`insert into users (id, name) values (5, 'five'), (6, 'six'), (7, 'seven')`.execute(t.db);
    await presence.heartbeat(id('5'));
  });

  it('hides a NOBODY user from others and anonymous readers, not from the user', async () => {
    await sql`insert into presence_settings (user_id, visibility) values (5, 'NOBODY')`.execute(t.db);
    const hidden = { userId: '5', state: 'OFFLINE', online: false, lastSeen: null, statusText: null, manualStatus: null, idle: false };
    expect(await presence.statuses([id('5')], null)).toEqual([hidden]);
    expect(await presence.statuses([id('5')], id('6'))).toEqual([hidden]);
    expect(await presence.statuses([id('5')], id('5'))).toMatchObject([{ state: 'ONLINE', manualStatus: 'AUTO' }]);
  });

  it('shows a CONTACTS user only to the users they follow, through loaders of each viewer', async () => {
    await sql`insert into presence_settings (user_id, visibility) values (5, 'CONTACTS')`.execute(t.db);
    await sql`insert into follows (follower_id, followee_id) values (5, 6), (7, 5)`.execute(t.db);
    t.statements.length = 0;
    const [bySix, bySeven] = await Promise.all([
      presence.createStatusLoader(id('6')).load(id('5')),
      presence.createStatusLoader(id('7')).load(id('5')),
    ]);
    expect(bySix!.state).toBe('ONLINE');
    expect(bySeven!.state).toBe('OFFLINE');
    expect(bySeven!.lastSeen).toBeNull();
    expect(t.statements).toHaveLength(2);
  });
});

async function dbNow(): Promise<Date> {
  const { rows } = await sql<{ now: Date }>`select now() as now`.execute(t.db);
  return rows[0]!.now;
}
