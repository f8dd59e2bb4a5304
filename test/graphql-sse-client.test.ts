/**
 * The README's GraphQL-over-SSE example, run as written: the real `graphql-sse`
 * client (distinct connections mode, its default) subscribes at /graphql/stream
 * and gets the current statuses, then a change; a bad id reaches it as an error
 * that names the id; leaving the loop frees what the stream watched.
 */
import { createClient } from 'graphql-sse';
import { eventually } from './support/eventually';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startTestServer, type TestServer } from './support/test-server';

interface Status {
  userId: string;
  state: string;
}

describe('presenceChanged from the graphql-sse client on /graphql/stream', () => {
  let t: TestDatabase;
  let server: TestServer;

  beforeAll(async () => {
    t = await createTestDatabase();
    server = await startTestServer({ DATABASE_URL: t.url, HEARTBEAT_MIN_WRITE_GAP_SECONDS: '0' });
  });
  afterAll(async () => {
    await server.stop();
    await t.destroy();
  });

  const streamUrl = () => server.pulse.graphqlUrl.replace(/\/graphql$/, '/graphql/stream');

  it('gets the current statuses, then a change; leaving the loop frees what it watched', async () => {
    await t.setLastHeartbeat('201', 600);
    const client = createClient({ url: streamUrl(), headers: {}, retryAttempts: 0 });
    const seen: Status[] = [];
    for await (const event of client.iterate<{ presenceChanged: Status }>({
      query: 'subscription { presenceChanged(ids: ["201", "202"]) { userId state } }',
    })) {
      expect(event.errors).toBeUndefined();
      seen.push(event.data!.presenceChanged);
      if (seen.length === 2) {
        expect(seen).toEqual(
          expect.arrayContaining([
            { userId: '201', state: 'OFFLINE' },
            { userId: '202', state: 'OFFLINE' },
          ]),
        );
        const beat = await server.graphql('mutation { heartbeat { online } }', { token: server.token('201') });
        expect(beat.body.data).toEqual({ heartbeat: { online: true } });
      }
      if (seen.length === 3) break;
    }
    expect(seen[2]).toEqual({ userId: '201', state: 'ONLINE' });
    client.dispose();
    await eventually('the stream to be freed', () => server.pulse.live.size.subscriptions === 0);
  });

  it('hears of a bad id as a GraphQL error that names it', async () => {
    const client = createClient({ url: streamUrl(), retryAttempts: 0 });
    const messages: string[] = [];
    for await (const event of client.iterate({ query: 'subscription { presenceChanged(ids: ["201", "abc"]) { userId } }' })) {
      for (const error of event.errors ?? []) messages.push(error.message);
    }
    client.dispose();
    expect(messages.join(' ')).toMatch(/abc/);
  });
});
