/**
 * /metrics in Prometheus format: what an operator graphs and alerts on.
 */
import perfHooks from 'node:perf_hooks';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startTestServer, type TestServer } from './support/test-server';

let t: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  t = await createTestDatabase();
  // Retention is configured so the job exists, on a schedule that does not come
  // round during the test (midnight of February 29th): the test runs it itself.
  server = await startTestServer({ DATABASE_URL: t.url, RETENTION_CRON: '0 0 29 2 *' });
});
afterAll(async () => {
  await server.stop();
  await t.destroy();
});

async function scrape(from: TestServer = server): Promise<string> {
  const response = await fetch(from.pulse.graphqlUrl.replace('/graphql', '/metrics'));
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
  // Every statement sent is counted (migrations at start included), no more, no less.
  expect(value(text, 'pulse_sql_statements_total')).toBe(server.statements.length);
  expect(value(text, 'pulse_request_duration_seconds_count{operation="mutation:heartbeat"}')).toBe(3);
  expect(value(text, 'pulse_request_duration_seconds_count{operation="query:statuses"}')).toBe(1);
  expect(value(text, 'pulse_db_pool_waiting')).toBe(0);
  expect(value(text, 'pulse_db_pool_idle')).toBeGreaterThanOrEqual(1);
  expect(value(text, 'pulse_db_pool_in_use')).toBe(0); // nothing is running between requests
  // The two accepted heartbeats were written by heartbeat statements, whatever their grouping.
  expect(value(text, 'pulse_heartbeat_batch_size_sum')).toBe(2);
  expect(value(text, 'pulse_heartbeat_batch_size_bucket{le="1000"}')).toBe(value(text, 'pulse_heartbeat_batch_size_count'));
});

it('counts scheduled job runs', async () => {
  const series = 'pulse_job_runs_total{job="retention",outcome="ok"}';
  const before = value(await scrape(), series) || 0;
  await server.pulse.scheduler.runRetention();
  expect(value(await scrape(), series)).toBe(before + 1);
});

it('shows the process figures once, and a Pulse started and stopped again in the process adds no collectors', async () => {
  // prom-client's process collectors that nothing can stop: one made per start
  // would be one more left behind per stop.
  const eventLoopMonitors = jest.spyOn(perfHooks, 'monitorEventLoopDelay');
  const observe = jest.spyOn(perfHooks.PerformanceObserver.prototype, 'observe');
  try {
    for (const round of [1, 2]) {
      const again = await startTestServer({ DATABASE_URL: t.url });
      try {
        await again.graphql('mutation { heartbeat { online } }', { token: again.token(String(100 + round)) });
        const text = await scrape(again);
        // Its own counters, not those of the Pulse started before it...
        expect(value(text, 'pulse_heartbeats_total{outcome="accepted"}')).toBe(1);
        // ...beside the process's figures, and every metric once.
        const types = text.split('\n').filter((line) => line.startsWith('# TYPE '));
        expect(types).toEqual([...new Set(types)]);
        expect(types).toEqual(
          expect.arrayContaining([
            '# TYPE pulse_process_nodejs_gc_duration_seconds histogram',
            '# TYPE pulse_process_nodejs_eventloop_lag_p99_seconds gauge',
            '# TYPE pulse_process_process_cpu_seconds_total counter',
          ]),
        );
      } finally {
        await again.stop();
      }
    }
    expect(eventLoopMonitors).not.toHaveBeenCalled();
    expect(observe.mock.calls.filter(([options]) => JSON.stringify(options).includes('"gc"'))).toEqual([]);
  } finally {
    eventLoopMonitors.mockRestore();
    observe.mockRestore();
  }
});
