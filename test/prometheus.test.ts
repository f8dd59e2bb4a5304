/**
 * Operators' alerts and dashboard, checked against what Pulse really exports:
 *  - every metric that ops/prometheus/pulse.rules.yml and the Grafana dashboard
 *    name is on a running Pulse's /metrics (no Prometheus needed);
 *  - `promtool check rules` and `promtool test rules` (each alert fires on its
 *    series and stays quiet on the others), when promtool is installed;
 *  - a real `prometheus` (Debian's package) scrapes a running Pulse every second:
 *    every metric the rules use arrives, the rules evaluate without error, a
 *    recording rule yields a value, and every dashboard expression is valid PromQL.
 *
 * The Prometheus parts are skipped, saying so, on a machine without Debian's
 * `prometheus` package (CI installs it).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { freePort } from './support/free-port';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startTestServer, type TestServer } from './support/test-server';

const OPS = path.join(__dirname, '..', 'ops');
const RULES = path.join(OPS, 'prometheus', 'pulse.rules.yml');
const RULE_TESTS = path.join(OPS, 'prometheus', 'pulse.rules.test.yml');
const DASHBOARD = path.join(OPS, 'grafana', 'pulse-dashboard.json');

const hasBinary = (name: string) => spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
const PROMTOOL = hasBinary('promtool');
const PROMETHEUS = hasBinary('prometheus');
if (!PROMTOOL || !PROMETHEUS) {
  console.warn("prometheus.test.ts: promtool or prometheus is not installed (Debian's `prometheus` package): the rule tests and the real-Prometheus test are skipped");
}
const itWithPromtool = PROMTOOL ? it : it.skip;
const describeWithPrometheus = PROMETHEUS ? describe : describe.skip;

/**
 * Metrics a rule uses that Pulse exports only when configured so; each with the
 * setting that turns it on. Everything else must be on every Pulse's /metrics.
 */
const CONDITIONAL: Record<string, string> = {
  pulse_read_replica_lag_seconds: 'READ_DATABASE_URL (read replicas)',
};
/** Series Prometheus makes itself for each target. */
const PROMETHEUS_OWN = new Set(['up']);

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
}
const rules: Rule[] = (parseYaml(fs.readFileSync(RULES, 'utf8')) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((g) => g.rules);
const recorded = new Set(rules.flatMap((r) => (r.record ? [r.record] : [])));
const dashboardExprs: string[] = (JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as { panels: Array<{ targets: Array<{ expr: string }> }> }).panels.flatMap((p) =>
  p.targets.map((t) => t.expr),
);

/** The metric names a PromQL expression reads (not functions, labels or keywords). */
function metricNames(expr: string): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const withoutLabels = withoutStrings.replace(/\{[^}]*\}/g, '{}').replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  const names = withoutLabels.match(/[a-zA-Z_:][a-zA-Z0-9_:]*(?=\s*(\{|\[|$|\)|\s|[-+*/<>=!]))/g) ?? [];
  return [...new Set(names.filter((n) => n.startsWith('pulse') || PROMETHEUS_OWN.has(n)))];
}

const ruleMetrics = [...new Set(rules.flatMap((r) => metricNames(r.expr)))].filter((n) => !recorded.has(n));
const dashboardMetrics = [...new Set(dashboardExprs.flatMap(metricNames))];

describe('the rules and the dashboard name what Pulse exports', () => {
  let t: TestDatabase;
  let server: TestServer;
  let exported: Set<string>;

  beforeAll(async () => {
    t = await createTestDatabase();
    server = await startTestServer({ DATABASE_URL: t.url });
    await traffic(server);
    exported = sampleNames(await (await fetch(`http://127.0.0.1:${server.pulse.port}/metrics`)).text());
  });
  afterAll(async () => {
    await server.stop();
    await t.destroy();
  });

  it('every metric an alert or recording rule uses is on /metrics (or is listed as exported only when configured)', () => {
    expect(ruleMetrics.length).toBeGreaterThan(10);
    const missing = ruleMetrics.filter((n) => !exported.has(n) && !PROMETHEUS_OWN.has(n) && !(n in CONDITIONAL));
    expect(missing).toEqual([]);
    // The exceptions are real: each is used by a rule.
    for (const name of Object.keys(CONDITIONAL)) expect(ruleMetrics).toContain(name);
  });

  it('every dashboard expression names metrics on /metrics', () => {
    expect(dashboardExprs.length).toBeGreaterThanOrEqual(10);
    for (const expr of dashboardExprs) expect(metricNames(expr).length).toBeGreaterThan(0);
    expect(dashboardMetrics.filter((n) => !exported.has(n))).toEqual([]);
  });

  it('the dashboard shows heartbeats/s, statements/s, batch size, latency percentiles, pool, streams, events/s and errors by code', () => {
    for (const name of [
      'pulse_heartbeats_total',
      'pulse_sql_statements_total',
      'pulse_heartbeat_batch_size_bucket',
      'pulse_request_duration_seconds_bucket',
      'pulse_db_pool_in_use',
      'pulse_live_subscriptions',
      'pulse_live_events_total',
      'pulse_graphql_errors_total',
    ]) {
      expect(dashboardMetrics).toContain(name);
    }
  });
});

describe('promtool', () => {
  itWithPromtool('accepts the rules', () => {
    const run = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
    expect(run.stdout + run.stderr).toMatch(/SUCCESS: \d+ rules found/);
    expect(run.status).toBe(0);
  });

  itWithPromtool('passes the rules unit tests: each alert fires on its series and not on the others', () => {
    const run = spawnSync('promtool', ['test', 'rules', RULE_TESTS], { encoding: 'utf8', cwd: path.dirname(RULE_TESTS) });
    expect(run.stdout + run.stderr).toMatch(/SUCCESS/);
    expect(run.status).toBe(0);
    // Every alert has a case that makes it fire.
    const tests = fs.readFileSync(RULE_TESTS, 'utf8');
    for (const rule of rules.filter((r) => r.alert)) expect(tests).toMatch(new RegExp(`alertname: ${rule.alert}\\n\\s+exp_alerts:\\n\\s+- exp_labels`));
  });
});

describeWithPrometheus('a real Prometheus scraping a running Pulse', () => {
  let t: TestDatabase;
  let server: TestServer;
  let dir: string;
  let prometheus: ChildProcess;
  let exited: Promise<void>;
  let api: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    server = await startTestServer({ DATABASE_URL: t.url });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-prometheus-'));
    fs.writeFileSync(
      path.join(dir, 'prometheus.yml'),
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        `rule_files: [${JSON.stringify(RULES)}]`,
        'scrape_configs:',
        '  - job_name: pulse',
        `    static_configs: [{ targets: ["127.0.0.1:${server.pulse.port}"] }]`,
        '',
      ].join('\n'),
    );
    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    const log = fs.openSync(path.join(dir, 'prometheus.log'), 'w');
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${path.join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--storage.tsdb.retention.time=1h',
      ],
      { stdio: ['ignore', log, log] },
    );
    exited = new Promise((resolve) => prometheus.once('exit', () => resolve()));
    await until(async () => (await fetch(`${api}/-/ready`).catch(() => null))?.ok === true, 'Prometheus to be ready', dir);
    await traffic(server);
  });
  afterAll(async () => {
    prometheus?.kill('SIGTERM');
    await exited;
    await server.stop();
    await t.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('scrapes every metric the rules use', async () => {
    const needed = ruleMetrics.filter((n) => !(n in CONDITIONAL));
    const missing = new Set(needed);
    await until(
      async () => {
        for (const name of [...missing]) if ((await query(api, `count({__name__="${name}"})`)).length > 0) missing.delete(name);
        return missing.size === 0;
      },
      `every metric to be scraped (still missing: ${[...missing].join(', ')})`,
      dir,
    );
    expect([...missing]).toEqual([]);
  });

  it('evaluates every rule without error, and a recording rule yields heartbeats per second', async () => {
    // A few heartbeats spread over scrapes give the rate something to see.
    for (let i = 0; i < 3; i++) await traffic(server);
    const series = await until(
      async () => {
        const result = await query(api, 'pulse:heartbeats:rate1m{outcome="accepted"}');
        return result.length > 0 && Number(result[0]!.value[1]) > 0 ? result : null;
      },
      'pulse:heartbeats:rate1m to be recorded',
      dir,
    );
    expect(series[0]!.metric).toMatchObject({ job: 'pulse', outcome: 'accepted' });

    const groups = (await (await fetch(`${api}/api/v1/rules`)).json()) as {
      data: { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string }> }> };
    };
    const evaluated = groups.data.groups.flatMap((g) => g.rules);
    expect(evaluated).toHaveLength(rules.length);
    expect(evaluated.filter((r) => r.health !== 'ok')).toEqual([]);
    // A healthy Pulse raises none of them.
    const alerts = (await (await fetch(`${api}/api/v1/alerts`)).json()) as { data: { alerts: Array<{ labels: { alertname: string } }> } };
    expect(alerts.data.alerts.map((a) => a.labels.alertname)).toEqual([]);
  });

  it('accepts every dashboard expression', async () => {
    for (const expr of dashboardExprs) {
      const promql = expr.replaceAll('$__rate_interval', '1m').replaceAll('$job', '.+');
      const response = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(promql)}`);
      const body = (await response.json()) as { status: string; error?: string };
      expect({ expr, status: body.status, error: body.error }).toEqual({ expr, status: 'success', error: undefined });
    }
  });
});

// Private: a little of everything a rule or panel reads: heartbeats over GraphQL
// and REST, a read, an error, a subscription that sees a change.
async function traffic(server: TestServer): Promise<void> {
  const token = server.token('77');
  await server.graphql('mutation { heartbeat { online } }', { token });
  await fetch(`http://127.0.0.1:${server.pulse.port}/pulse`, { method: 'POST', headers: { authorization: `Bearer ${server.token('78')}` } });
  await server.graphql('{ status(id: "abc") { online } }');
}

// Private: sample names in Prometheus's text format.
function sampleNames(text: string): Set<string> {
  return new Set(text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(/[{\s]/)[0]!));
}

async function query(api: string, promql: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> {
  const body = (await (await fetch(`${api}/api/v1/query?query=${encodeURIComponent(promql)}`)).json()) as {
    status: string;
    error?: string;
    data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> };
  };
  if (body.status !== 'success') throw new Error(`query ${promql} failed: ${body.error}`);
  return body.data.result;
}

// Private: polls until `check` gives something, up to 30 s; on failure shows Prometheus's log.
async function until<T>(check: () => Promise<T | null | false>, what: string, dir: string): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const result = await check();
    if (result) return result;
    if (Date.now() > deadline) {
      const log = fs.existsSync(path.join(dir, 'prometheus.log')) ? fs.readFileSync(path.join(dir, 'prometheus.log'), 'utf8').slice(-2000) : '';
      throw new Error(`waited 30 s for ${what}\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
