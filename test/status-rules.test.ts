/**
 * What each viewer sees: manual status (away, busy, invisible, expiry, text) and
 * privacy (visibility, last seen), checked from the side of other users, of the
 * user themself and of an anonymous reader, over GraphQL, on a real database.
 */
import { sql } from 'kysely';
import { parseUserId } from '../src/presence/user-id';
import { PresenceService } from '../src/presence/presence-service';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startTestServer, type TestServer } from './support/test-server';

let t: TestDatabase;
let server: TestServer;

interface Person {
  id: string;
  token: string;
}
let alice: Person;
let bob: Person;
let carol: Person;

interface SeenStatus {
  userId: string;
  state: string;
  online: boolean;
  lastSeen: string | null;
  statusText: string | null;
  manualStatus: string | null;
  idle: boolean;
}
const FIELDS = 'userId state online lastSeen statusText manualStatus idle';

beforeAll(async () => {
  t = await createTestDatabase();
  server = await startTestServer({ DATABASE_URL: t.url, HEARTBEAT_MIN_INTERVAL_MS: '0' });
});
afterAll(async () => {
  await server.stop();
  await t.destroy();
});
beforeEach(async () => {
  await sql`truncate users, follows, presence_settings, pulse restart identity`.execute(t.db);
  alice = await signUp('alice');
  bob = await signUp('bob');
  carol = await signUp('carol');
});

const signUp = (name: string): Promise<Person> => server.signUp(name);

/** What `viewer` (null: anonymous) sees of `target`. */
async function seen(viewer: Person | null, target: Person): Promise<SeenStatus> {
  const reply = await server.graphql(`query ($id: ID!) { status(id: $id) { ${FIELDS} } }`, {
    variables: { id: target.id },
    token: viewer?.token,
  });
  expect(reply.body.errors).toBeUndefined();
  return reply.body.data!.status;
}

async function heartbeat(person: Person): Promise<SeenStatus> {
  const reply = await server.graphql(`mutation { heartbeat { ${FIELDS} } }`, { token: person.token });
  expect(reply.body.errors).toBeUndefined();
  return reply.body.data!.heartbeat;
}

async function setStatus(person: Person, status: string, text?: string | null, expiresAt?: string | null) {
  const reply = await server.graphql(
    `mutation ($status: ManualStatus!, $text: String, $expiresAt: DateTime) {
       setStatus(status: $status, text: $text, expiresAt: $expiresAt) { ${FIELDS} }
     }`,
    { token: person.token, variables: { status, text, expiresAt } },
  );
  return reply;
}

async function updatePrivacy(person: Person, variables: { visibility?: string; showLastSeen?: boolean }) {
  const reply = await server.graphql(
    'mutation ($v: Visibility, $s: Boolean) { updatePrivacy(visibility: $v, showLastSeen: $s) { visibility showLastSeen } }',
    { token: person.token, variables: { v: variables.visibility, s: variables.showLastSeen } },
  );
  expect(reply.body.errors).toBeUndefined();
  return reply.body.data!.updatePrivacy;
}

async function follow(follower: Person, followee: Person): Promise<void> {
  const reply = await server.graphql('mutation ($id: ID!) { follow(userId: $id) { id } }', {
    token: follower.token,
    variables: { id: followee.id },
  });
  expect(reply.body.errors).toBeUndefined();
}

/** A never-seen user, as anyone sees them. */
const neverSeen = (person: Person): SeenStatus => ({
  userId: person.id,
  state: 'OFFLINE',
  online: false,
  lastSeen: null,
  statusText: null,
  manualStatus: null,
  idle: false,
});

describe('AUTO: heartbeats decide', () => {
  it('shows a connected user ONLINE and a disconnected one OFFLINE with lastSeen, to everyone', async () => {
    const own = await heartbeat(alice);
    for (const viewer of [bob, null]) {
      expect(await seen(viewer, alice)).toEqual({ ...own, manualStatus: null });
      expect((await seen(viewer, alice)).state).toBe('ONLINE');
    }
    await t.setLastHeartbeat(alice.id, 300);
    const later = await seen(bob, alice);
    expect(later).toMatchObject({ state: 'OFFLINE', online: false, statusText: null });
    expect(later.lastSeen).not.toBeNull();
    expect(await seen(null, carol)).toEqual(neverSeen(carol));
  });

  it('shows the text of an AUTO status while the user is online', async () => {
    await heartbeat(alice);
    await setStatus(alice, 'AUTO', 'On the train');
    expect(await seen(bob, alice)).toMatchObject({ state: 'ONLINE', statusText: 'On the train' });
    await t.setLastHeartbeat(alice.id, 300);
    expect(await seen(bob, alice)).toMatchObject({ state: 'OFFLINE', statusText: null });
  });
});

describe('AWAY and BUSY', () => {
  it.each(['AWAY', 'BUSY'])('shows %s with its text while connected, OFFLINE without text when disconnected', async (manual) => {
    await heartbeat(alice);
    const own = await setStatus(alice, manual, 'back at 3');
    expect(own.body.data!.setStatus).toMatchObject({ state: manual, online: true, statusText: 'back at 3', manualStatus: manual });

    for (const viewer of [bob, null]) {
      expect(await seen(viewer, alice)).toMatchObject({ state: manual, online: true, statusText: 'back at 3', manualStatus: null });
    }
    // A heartbeat does not undo a manual status; it answers with the caller's own view.
    expect(await heartbeat(alice)).toMatchObject({ state: manual, manualStatus: manual, statusText: 'back at 3' });

    await t.setLastHeartbeat(alice.id, 120);
    const offline = await seen(bob, alice);
    expect(offline).toMatchObject({ state: 'OFFLINE', online: false, statusText: null, manualStatus: null });
    expect(offline.lastSeen).not.toBeNull();
    // The user still sees what they chose, and that they are disconnected.
    expect(await seen(alice, alice)).toMatchObject({ state: 'OFFLINE', manualStatus: manual, statusText: 'back at 3' });
  });

  it('shows a user who set a status but never connected as never seen', async () => {
    await setStatus(alice, 'BUSY', 'hi');
    expect(await seen(bob, alice)).toEqual(neverSeen(alice));
  });
});

describe('INVISIBLE', () => {
  it('looks like a real offline user to others, with lastSeen frozen, while the user sees their real state', async () => {
    await t.setLastHeartbeat(alice.id, 20);
    const before = await seen(bob, alice);
    expect(before.state).toBe('ONLINE');

    await setStatus(alice, 'INVISIBLE', 'you cannot see this');
    // Alice keeps sending heartbeats.
    const own = await heartbeat(alice);
    expect(own).toMatchObject({ state: 'ONLINE', online: true, manualStatus: 'INVISIBLE' });
    expect(new Date(own.lastSeen!).getTime()).toBeGreaterThan(new Date(before.lastSeen!).getTime());

    // Bob sees what he would see had Alice closed the app 20 s ago: the same as
    // for Carol, who really is offline.
    await t.setLastHeartbeat(carol.id, 600);
    const aliceToBob = await seen(bob, alice);
    expect(aliceToBob).toEqual({ userId: alice.id, state: 'OFFLINE', online: false, lastSeen: before.lastSeen, statusText: null, manualStatus: null, idle: false });
    const carolToBob = await seen(bob, carol);
    expect(Object.keys(aliceToBob).sort()).toEqual(Object.keys(carolToBob).sort());
    expect({ ...aliceToBob, userId: '', lastSeen: '' }).toEqual({ ...carolToBob, userId: '', lastSeen: '' });
    expect(await seen(null, alice)).toEqual(aliceToBob);

    // Choosing INVISIBLE again does not move the frozen lastSeen.
    await setStatus(alice, 'INVISIBLE');
    expect((await seen(bob, alice)).lastSeen).toBe(before.lastSeen);

    // Back to AUTO: the real state shows again.
    await setStatus(alice, 'AUTO');
    expect(await seen(bob, alice)).toMatchObject({ state: 'ONLINE', lastSeen: own.lastSeen });
  });

  it('keeps a user who was never seen before going invisible never seen', async () => {
    await setStatus(alice, 'INVISIBLE');
    await heartbeat(alice);
    expect(await seen(bob, alice)).toEqual(neverSeen(alice));
    expect((await seen(alice, alice)).state).toBe('ONLINE');
  });
});

describe('expiry', () => {
  it('turns a status with a past expiresAt back to AUTO, text included, with no job', async () => {
    await heartbeat(alice);
    const future = new Date(Date.now() + 3_600_000).toISOString();
    await setStatus(alice, 'BUSY', 'in a meeting', future);
    expect(await seen(bob, alice)).toMatchObject({ state: 'BUSY', statusText: 'in a meeting' });

    await sql`update presence_settings set expires_at = now() - interval '1 second' where user_id = ${alice.id}`.execute(t.db);
    expect(await seen(bob, alice)).toMatchObject({ state: 'ONLINE', statusText: null });
    expect(await seen(alice, alice)).toMatchObject({ state: 'ONLINE', manualStatus: 'AUTO', statusText: null });
  });

  it('ends invisibility when it expires', async () => {
    await heartbeat(alice);
    await setStatus(alice, 'INVISIBLE', null, '2020-01-01T00:00:00Z');
    expect((await seen(bob, alice)).state).toBe('ONLINE');
  });

  it('accepts an expiresAt already past and answers with the status in force: AUTO', async () => {
    await heartbeat(alice);
    const reply = await setStatus(alice, 'AWAY', 'gone', '2020-01-01T00:00:00Z');
    expect(reply.body.data!.setStatus).toMatchObject({ state: 'ONLINE', manualStatus: 'AUTO', statusText: null });
  });
});

describe('setStatus input', () => {
  it('takes text up to 140 characters and refuses longer with BAD_USER_INPUT', async () => {
    await heartbeat(alice);
    const ok = await setStatus(alice, 'AWAY', 'x'.repeat(140));
    expect(ok.body.data!.setStatus.statusText).toHaveLength(140);
    const tooLong = await setStatus(alice, 'AWAY', 'y'.repeat(141));
    expect(tooLong.body.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
    expect(tooLong.body.errors![0]!.message).toBe('Invalid text: 141 characters, expected at most 140');
    expect((await seen(bob, alice)).statusText).toBe('x'.repeat(140));

    const nul = await setStatus(alice, 'AWAY', 'a\u0000b');
    expect(nul.body.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
    expect(nul.body.errors![0]!.message).toMatch(/control character/);
  });

  it('refuses an unknown status or a malformed expiresAt with BAD_USER_INPUT, and a missing token with 401', async () => {
    const unknown = await setStatus(alice, 'SLEEPING');
    expect(unknown.body.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
    const badDate = await setStatus(alice, 'AWAY', null, 'tomorrow');
    expect(badDate.body.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
    expect(badDate.body.errors![0]!.message).toMatch(/Invalid DateTime "tomorrow"/);
    const anonymous = await server.graphql('mutation { setStatus(status: AWAY) { state } }');
    expect(anonymous.status).toBe(401);
  });

  it('works for a user known only by id', async () => {
    const token = server.token('42');
    await server.graphql('mutation { heartbeat { online } }', { token });
    await server.graphql('mutation { setStatus(status: BUSY) { state } }', { token });
    expect((await server.graphql('{ status(id: "42") { state } }')).body.data).toEqual({ status: { state: 'BUSY' } });
  });
});

describe('visibility', () => {
  it('NOBODY: everyone else sees a never-seen user; the user sees themself', async () => {
    await heartbeat(alice);
    await setStatus(alice, 'AWAY', 'secret');
    await follow(alice, bob);
    expect(await updatePrivacy(alice, { visibility: 'NOBODY' })).toEqual({ visibility: 'NOBODY', showLastSeen: true });
    for (const viewer of [bob, carol, null]) expect(await seen(viewer, alice)).toEqual(neverSeen(alice));
    expect(await seen(alice, alice)).toMatchObject({ state: 'AWAY', statusText: 'secret' });
  });

  it('CONTACTS: only the users the user follows see them; never an anonymous viewer', async () => {
    await heartbeat(alice);
    await updatePrivacy(alice, { visibility: 'CONTACTS' });
    await follow(alice, bob);
    await follow(carol, alice); // Carol following Alice does not make Carol Alice's contact.

    expect((await seen(bob, alice)).state).toBe('ONLINE');
    expect(await seen(carol, alice)).toEqual(neverSeen(alice));
    expect(await seen(null, alice)).toEqual(neverSeen(alice));

    await server.graphql('mutation ($id: ID!) { unfollow(userId: $id) }', { token: alice.token, variables: { id: bob.id } });
    expect(await seen(bob, alice)).toEqual(neverSeen(alice));
  });

  it('a bad token reads as an anonymous viewer', async () => {
    await heartbeat(alice);
    await updatePrivacy(alice, { visibility: 'CONTACTS' });
    await follow(alice, bob);
    const reply = await server.graphql(`{ status(id: "${alice.id}") { state } }`, { token: 'garbage' });
    expect(reply.body.data).toEqual({ status: { state: 'OFFLINE' } });
  });

  it('showLastSeen false hides lastSeen from others, online or not', async () => {
    await heartbeat(alice);
    expect(await updatePrivacy(alice, { showLastSeen: false })).toEqual({ visibility: 'EVERYONE', showLastSeen: false });
    expect(await seen(bob, alice)).toMatchObject({ state: 'ONLINE', lastSeen: null });
    await t.setLastHeartbeat(alice.id, 600);
    expect(await seen(bob, alice)).toEqual(neverSeen(alice));
    expect((await seen(alice, alice)).lastSeen).not.toBeNull();
  });

  it('changes only what is given, and reads back through privacy', async () => {
    expect((await server.graphql('{ privacy { visibility showLastSeen } }', { token: alice.token })).body.data).toEqual({
      privacy: { visibility: 'EVERYONE', showLastSeen: true },
    });
    await updatePrivacy(alice, { visibility: 'CONTACTS' });
    await updatePrivacy(alice, { showLastSeen: false });
    expect(await updatePrivacy(alice, {})).toEqual({ visibility: 'CONTACTS', showLastSeen: false });
    expect((await server.graphql('{ privacy { visibility } }')).status).toBe(401);
  });
});

describe('every path that returns a status applies the same rules', () => {
  it('status, statuses, user, me, searchUsers, following and PresenceService.statuses agree', async () => {
    await heartbeat(alice);
    await setStatus(alice, 'BUSY', 'deep work');
    await follow(bob, alice);
    await updatePrivacy(alice, { visibility: 'CONTACTS' });
    await follow(alice, carol);

    const query = `query ($id: ID!) {
      status(id: $id) { ${FIELDS} }
      statuses(ids: [$id]) { ${FIELDS} }
      user(id: $id) { status { ${FIELDS} } }
      searchUsers(query: "alice") { edges { node { status { ${FIELDS} } } } }
    }`;
    const presence = new PresenceService({ db: t.db, thresholdSeconds: 30 });
    const expectations: Array<[Person | null, Partial<SeenStatus>]> = [
      [bob, neverSeen(alice)],
      [null, neverSeen(alice)],
      [carol, { state: 'BUSY', statusText: 'deep work', manualStatus: null }],
      [alice, { state: 'BUSY', statusText: 'deep work', manualStatus: 'BUSY' }],
    ];
    for (const [viewer, expected] of expectations) {
      const reply = await server.graphql(query, { variables: { id: alice.id }, token: viewer?.token });
      const data = reply.body.data!;
      const all = [data.status, data.statuses[0], data.user.status, data.searchUsers.edges[0].node.status];
      const [direct] = await presence.statuses([parseUserId(alice.id)], viewer ? parseUserId(viewer.id) : null);
      all.push({ ...direct!, lastSeen: direct!.lastSeen?.toISOString() ?? null });
      for (const status of all) expect(status).toMatchObject(expected);
      for (const status of all) expect(status).toEqual(all[0]);
    }

    const bobsList = await server.graphql(`{ following { status { ${FIELDS} } } }`, { token: bob.token });
    expect(bobsList.body.data!.following).toEqual([{ status: neverSeen(alice) }]);
    const own = await server.graphql(`{ me { status { ${FIELDS} } } }`, { token: alice.token });
    expect(own.body.data!.me.status).toMatchObject({ state: 'BUSY', manualStatus: 'BUSY' });
  });

  it('answers several viewers rules for a mixed batch in one statement', async () => {
    await heartbeat(alice);
    await heartbeat(bob);
    await heartbeat(carol);
    await updatePrivacy(bob, { visibility: 'NOBODY' });
    await setStatus(carol, 'AWAY');
    server.statements.length = 0;
    const reply = await server.graphql(`{ statuses(ids: ["${alice.id}", "${bob.id}", "${carol.id}", "42"]) { state } }`, {
      token: alice.token,
    });
    expect(reply.body.data!.statuses.map((s: { state: string }) => s.state)).toEqual(['ONLINE', 'OFFLINE', 'AWAY', 'OFFLINE']);
    expect(server.statements).toHaveLength(1);
  });
});
