/**
 * Read replicas, against a real streaming replica made for this file: status
 * reads are served by the replica, writes and the answers that show them by the
 * primary; a replica that stops, or falls too far behind, is skipped (reads keep
 * working) and used again when it is back.
 */
import { createDatabase } from '../src/db/database';
import { ReadReplicas, type ReadRoute } from '../src/db/read-replicas';
import { createLogger, silentLogger } from '../src/logger';
import { freePort } from './support/free-port';
import { subscribe } from './support/event-stream';
import { startStreamingReplica, streamingReplicaUnavailable, type StreamingReplica } from './support/streaming-replica';
import { startTestServer, type GraphQLReply, type TestServer } from './support/test-server';
import { eventually } from './support/eventually';

const unavailable = streamingReplicaUnavailable();
if (unavailable) {
  // eslint-disable-next-line no-console
  console.warn(`read replica tests skipped: ${unavailable}`);
}
const describeWithReplica = unavailable ? describe.skip : describe;

const MAX_LAG_SECONDS = 2;
const ok = (reply: GraphQLReply) => reply.status === 200 && !reply.body.errors;

describeWithReplica('read replicas', () => {
  let replica: StreamingReplica;
  let server: TestServer;
  const logLines: string[] = [];

  beforeAll(async () => {
    replica = await startStreamingReplica();
    server = await startTestServer(
      {
        DATABASE_URL: replica.primaryUrl(),
        READ_DATABASE_URL: replica.replicaUrl(),
        READ_REPLICA_MAX_LAG_SECONDS: String(MAX_LAG_SECONDS),
        READ_REPLICA_CHECK_INTERVAL_MS: '200',
        DB_POOL_MAX: '3',
        DB_CONNECTION_TIMEOUT_MS: '2000',
      },
      createLogger('info', (line) => logLines.push(line)),
    );
  }, 120_000);

  afterAll(async () => {
    try {
      await server?.stop();
    } finally {
      await replica?.destroy();
    }
  });

  // The status read is the one statement that joins presence_settings and
  // follows (the heartbeat, search and live timers touch neither or only one).
  async function statusReadsOn(where: 'primary' | 'replica'): Promise<number> {
    const rows = await replica.query<{ calls: string }>(
      where,
      `select coalesce(sum(calls), 0)::text as calls from pg_stat_statements
        where query like $1 and query like $2 and query not like $3`,
      ['%presence_settings%', '%follows%', '%pg_stat_statements%'],
    );
    return Number(rows[0]!.calls);
  }

  const replicaState = () => server.pulse.readReplicas!.health[0]!.state;
  const metricsText = () => server.pulse.metrics.registry.metrics();

  async function replicaServing(): Promise<void> {
    await replica.caughtUp();
    await eventually('the replica to serve reads', () => replicaState() === 'serving', 30_000);
  }

  it('serves status reads (GraphQL, REST, search) from the replica, and mutations and their answers from the primary', async () => {
    const ann = await server.signUp('Ann');
    const bob = await server.signUp('Bob');
    expect(ok(await server.graphql('mutation { heartbeat { online } }', { token: ann.token }))).toBe(true);
    await replicaServing();

    const [replicaBefore, primaryBefore] = [await statusReadsOn('replica'), await statusReadsOn('primary')];
    const statuses = await server.graphql(`{ statuses(ids: ["${ann.id}", "${bob.id}"]) { userId online } }`);
    expect(statuses.body.data!.statuses).toEqual([
      { userId: ann.id, online: true },
      { userId: bob.id, online: false },
    ]);
    const asBob = await server.graphql(`{ status(id: "${ann.id}") { state } }`, { token: bob.token });
    expect(asBob.body.data!.status.state).toBe('ONLINE');
    const rest = await fetch(server.pulse.graphqlUrl.replace('/graphql', `/status/${ann.id}`));
    expect(((await rest.json()) as { online: boolean }).online).toBe(true);
    const search = await server.graphql('{ searchUsers(query: "an") { edges { node { name status { online } } } } }');
    expect(search.body.data!.searchUsers.edges).toEqual([{ node: { name: 'Ann', status: { online: true } } }]);

    expect((await statusReadsOn('replica')) - replicaBefore).toBeGreaterThanOrEqual(4);
    expect((await statusReadsOn('primary')) - primaryBefore).toBe(0);
    expect(await metricsText()).toMatch(/pulse_replica_reads_total\{route="replica"\} [1-9]/);

    // A mutation's answer, and the caller's own status right after it, come from
    // the primary: they show the write whether or not the replica has it yet.
    const away = await server.graphql('mutation { setStatus(status: AWAY, text: "lunch") { state statusText } }', { token: ann.token });
    expect(away.body.data!.setStatus).toEqual({ state: 'AWAY', statusText: 'lunch' });
    const me = await server.graphql('{ me { status { state statusText } } }', { token: ann.token });
    expect(me.body.data!.me.status).toEqual({ state: 'AWAY', statusText: 'lunch' });
    expect((await statusReadsOn('primary')) - primaryBefore).toBeGreaterThanOrEqual(2);
  });

  it('skips a replica that stops, with a log line and a metric, keeps answering, and uses it again when it returns', async () => {
    const carl = await server.signUp('Carl');
    await server.graphql('mutation { heartbeat { online } }', { token: carl.token });
    await replicaServing();
    const read = () => server.graphql(`{ status(id: "${carl.id}") { online } }`);
    expect((await read()).body.data!.status.online).toBe(true);

    // A connection checked out between two statements when the replica goes
    // away: its error must not end the process.
    const checkedOut = await server.pulse.readReplicas!.pools[0]!.pool.connect();
    const ended = new Promise((resolve) => checkedOut.once('end', resolve));
    await replica.stopReplica();
    await ended;
    checkedOut.release(true);
    // Reads right after the stop find the replica gone under them, or already
    // skipped: either way they are answered, from the primary.
    for (let i = 0; i < 5; i++) {
      const reply = await read();
      expect(ok(reply)).toBe(true);
      expect(reply.body.data!.status.online).toBe(true);
    }
    await eventually('the replica to be marked down', () => replicaState() === 'down', 30_000);
    expect(logLines.some((line) => /read replica .* unreachable/.test(line))).toBe(true);
    const down = await metricsText();
    expect(down).toMatch(/pulse_read_replica_down_total\{replica="127\.0\.0\.1:\d+\/pulse"\} [1-9]/);
    expect(down).toMatch(/pulse_read_replica_up\{replica="127\.0\.0\.1:\d+\/pulse"\} 0/);
    const primaryWhileDown = await statusReadsOn('primary');
    expect(ok(await read())).toBe(true);
    expect(await statusReadsOn('primary')).toBeGreaterThan(primaryWhileDown);

    await replica.startReplica();
    await replicaServing();
    expect(logLines.some((line) => /read replica .* serving reads again/.test(line))).toBe(true);
    const replicaBack = await statusReadsOn('replica');
    expect((await read()).body.data!.status.online).toBe(true);
    expect(await statusReadsOn('replica')).toBeGreaterThan(replicaBack);
  });

  it('sends reads to the primary while the replica is more than READ_REPLICA_MAX_LAG_SECONDS behind, and back when it catches up', async () => {
    const dana = await server.signUp('Dana');
    await replicaServing();
    await replica.query('replica', 'select pg_wal_replay_pause()');
    try {
      // Written on the primary; the paused replica does not apply it.
      await server.graphql('mutation { heartbeat { online } }', { token: dana.token });
      await eventually('the replica to be skipped as lagging', () => replicaState() === 'lagging', 30_000);
      expect(logLines.some((line) => /read replica .* behind the primary \(more than READ_REPLICA_MAX_LAG_SECONDS/.test(line))).toBe(true);
      const lag = /pulse_read_replica_lag_seconds\{replica="[^"]+"\} ([\d.]+)/.exec(await metricsText());
      expect(Number(lag?.[1])).toBeGreaterThan(MAX_LAG_SECONDS);

      // The replica would say "never seen"; the primary knows Dana is online.
      const [primaryBefore, replicaBefore] = [await statusReadsOn('primary'), await statusReadsOn('replica')];
      const reply = await server.graphql(`{ status(id: "${dana.id}") { online } }`);
      expect(reply.body.data!.status.online).toBe(true);
      expect(await statusReadsOn('primary')).toBeGreaterThan(primaryBefore);
      expect(await statusReadsOn('replica')).toBe(replicaBefore);
    } finally {
      await replica.query('replica', 'select pg_wal_replay_resume()');
    }
    await replicaServing();
    const replicaAfter = await statusReadsOn('replica');
    expect((await server.graphql(`{ status(id: "${dana.id}") { online } }`)).body.data!.status.online).toBe(true);
    expect(await statusReadsOn('replica')).toBeGreaterThan(replicaAfter);
  });

  it('never reads from a server that is not a standby, nor from one that is not there at start', async () => {
    const primary = createDatabase({
      url: replica.primaryUrl(),
      poolMax: 2,
      connectionTimeoutMs: 2000,
      statementTimeoutMs: 5000,
      logger: silentLogger,
    });
    const lines: string[] = [];
    const routes: ReadRoute[] = [];
    // The primary itself (as a promoted replica would be), and a port nobody listens on.
    const replicas = new ReadReplicas({
      primary,
      urls: [replica.primaryUrl(), `postgres://postgres@127.0.0.1:${await freePort()}/pulse`],
      maxLagSeconds: MAX_LAG_SECONDS,
      checkIntervalMs: 60_000,
      poolMax: 2,
      connectionTimeoutMs: 2000,
      statementTimeoutMs: 5000,
      logger: createLogger('info', (line) => lines.push(line)),
      onRead: (route) => routes.push(route),
    });
    try {
      await replicas.start();
      expect(replicas.health.map((r) => r.state)).toEqual(['not-standby', 'down']);
      expect(lines.some((line) => /not a standby \(pg_is_in_recovery\(\) is false\)/.test(line))).toBe(true);
      expect(lines.some((line) => /unreachable/.test(line))).toBe(true);
      const answer = await replicas.read(async (db) => db.selectFrom('pulse').select((eb) => eb.fn.countAll().as('n')).executeTakeFirst());
      expect(answer).toBeDefined();
      expect(routes).toEqual(['primary']);
    } finally {
      await replicas.close();
      await primary.destroy();
    }
  });

  it('shows a subscriber a user who came online just before it subscribed, even if the replica has not replayed it', async () => {
    const erin = await server.signUp('Erin');
    await replicaServing();
    await replica.query('replica', 'select pg_wal_replay_pause()');
    let subscription;
    try {
      await server.graphql('mutation { heartbeat { online } }', { token: erin.token });
      // The snapshot may come from the paused replica (Erin never seen); the
      // change the bus announced a moment ago is then re-read from the primary.
      subscription = await subscribe(`${server.pulse.graphqlUrl}/stream`, 'subscription ($ids: [ID!]) { presenceChanged(ids: $ids) { userId state } }', {
        variables: { ids: [erin.id] },
      });
      const online = await subscription.next((event) => event.data?.presenceChanged?.state === 'ONLINE', 10_000);
      expect(online.data!.presenceChanged.userId).toBe(erin.id);
    } finally {
      subscription?.close();
      await replica.query('replica', 'select pg_wal_replay_resume()');
    }
  });
});
