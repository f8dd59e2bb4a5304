/**
 * /metrics in Prometheus format: what an operator graphs and alerts on.
 */
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startTestServer, type TestServer } from './support/test-server';

let t: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  t = await createTestDatabase();
  server = await startTestServer({ DATABASE_URL: t.url, RETENTION_CRON: '* * * * * *' });
});
afterAll(async () => {
  await server.stop();
  await t.destroy();
});

async function scrape(): Promise<string> {
  const response = await fetch(server.pulse.graphqlUrl.replace('/graphql', '/metrics'));
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
  return response.text();
}

function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : NaN;
}

it('counts heartbeats by outcome, statements, and latency per operation', async () => {
  await server.graphql('mutation { heartbeat { online } }', { token: server.token('1') });
  await server.graphql('mutation { heartbeat { online } }', { token: server.token('2') });
  await server.graphql('mutation { heartbeat { online } }', { token: 'forged' });
  await server.graphql('{ statuses(ids: ["1", "2", "3"]) { online } }');

  const text = await scrape();
  expect(value(text, 'pulse_heartbeats_total{outcome="accepted"}')).toBe(2);
  expect(value(text, 'pulse_heartbeats_total{outcome="rejected"}')).toBe(1);
  expect(value(text, 'pulse_heartbeats_total{outcome="written"}')).toBe(2);
  expect(value(text, 'pulse_sql_statements_total')).toBeGreaterThanOrEqual(3);
  expect(value(text, 'pulse_request_duration_seconds_count{operation="mutation:heartbeat"}')).toBe(3);
  expect(value(text, 'pulse_request_duration_seconds_count{operation="query:statuses"}')).toBe(1);
  expect(value(text, 'pulse_db_pool_waiting')).toBe(0);
  expect(value(text, 'pulse_db_pool_idle')).toBeGreaterThanOrEqual(1);
  expect(text).toContain('pulse_db_pool_in_use');
  expect(text).toContain('pulse_heartbeat_batch_size_bucket');
});

it('counts scheduled job runs', async () => {
  let runs = 0;
  for (let waited = 0; runs < 1 && waited < 10_000; waited += 200) {
    await new Promise((r) => setTimeout(r, 200));
    runs = value(await scrape(), 'pulse_job_runs_total{job="retention",outcome="ok"}') || 0;
  }
  expect(runs).toBeGreaterThanOrEqual(1);
});
