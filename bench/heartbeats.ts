/**
 * `npm run bench`: what a heartbeat costs, side by side in one run.
 *
 * Pulse runs as a separate process per scenario, on a database created for the
 * run (DATABASE_URL's server, or an embedded PostgreSQL), pre-filled with
 * BENCH_USERS users so heartbeats update existing rows, as they do in steady
 * state. Load comes from another process (autocannon) on loopback, each heartbeat
 * from a different user. SQL statements and heartbeats are read from the
 * server's own exact counters (/metrics) before and after each measured run.
 *
 *   npm run bench                                   # embedded PostgreSQL
 *   DATABASE_URL=postgres://root@127.0.0.1:5432/test npm run bench
 *   REDIS_URL=redis://127.0.0.1:6379 npm run bench  # adds the TTL-store comparator
 *
 * Settings (environment): BENCH_SECONDS (10 per scenario), BENCH_CONNECTIONS (50),
 * BENCH_USERS (200000), BENCH_ONLY (scenario numbers, e.g. 3,4), BENCH_DATABASE=off to skip the raw database part (which
 * bench/database.ts documents; `npm run bench:db` runs it alone). The whole run
 * takes about 10 minutes on 2 cores.
 * PULSE_WORKERS=N (N > 1, or auto) runs every scenario twice, side by side: with
 * one worker (no primary) and with N workers, and reports per-instance and
 * per-worker figures (each worker's share read from pulse_worker_requests_total).
 * BENCH_ROUNDS=R repeats each scenario's 1-worker and N-worker runs R times,
 * alternating, and compares medians: on a shared machine the load from others
 * drifts, and alternation spreads that drift over both.
 * Pulse's own settings (HEARTBEAT_BATCH_WINDOW_MS, ...) pass through to the
 * servers it starts. Writes bench/results/bench-<time>.md and .json. Stops by itself.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { databaseBenchMarkdown, runDatabaseBench } from './database';
import type { LoadKind, LoadResult, LoadSpec } from './load';
import { benchDatabase, freePort, log, machineLabel, ROOT, startServer, stopServer } from './support';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const USERS = Number(process.env.BENCH_USERS ?? 200_000);
const WARMUP_SECONDS = 2;
// The cluster size to compare with a single process; 1: no comparison.
const WORKERS = process.env.PULSE_WORKERS === 'auto' ? os.availableParallelism() : Number(process.env.PULSE_WORKERS ?? 1);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1);
const SECRET = 'bench-secret-that-is-at-least-32-characters';

interface Scenario {
  name: string;
  kind: LoadKind;
  env: Record<string, string>;
  /** Another server script than src/main.ts. */
  script?: string;
  /** Only when this returns a reason is the scenario skipped. */
  skip?: () => string | null;
}

interface Measured {
  scenario: string;
  /** PULSE_WORKERS of the server measured. */
  workers: number;
  /** Requests each worker answered during the measured run (cluster only). */
  requestsPerWorker: number[];
  kind: LoadKind;
  load: LoadResult;
  heartbeats: number;
  written: number;
  skipped: number;
  statements: number;
  /** Statements per heartbeat (heartbeat scenarios) or per request (reads). */
  statementsPerUnit: number | null;
  skippedReason?: string;
}

const scenarios: Scenario[] = [
  { name: '1. API ceiling: GraphQL mutation with no I/O', kind: 'graphql-noop', env: {} },
  { name: '2. Day-0 heartbeat mutation (HEARTBEAT_BATCHING=off)', kind: 'graphql-heartbeat', env: { HEARTBEAT_BATCHING: 'off' } },
  { name: '3. Group-commit heartbeat mutation', kind: 'graphql-heartbeat', env: {} },
  { name: '4. POST /pulse, group commit', kind: 'rest-pulse', env: {} },
  {
    name: '5. TTL store: heartbeat mutation writing SET ... EX to Redis',
    kind: 'graphql-heartbeat',
    env: { REDIS_URL: process.env.REDIS_URL ?? '' },
    script: 'bench/ttl-store-server.ts',
    skip: () => (process.env.REDIS_URL ? null : 'REDIS_URL not set'),
  },
  { name: '6. statuses, 100 ids per request (GraphQL)', kind: 'graphql-statuses', env: {} },
  { name: '7. GET /status/profile, 100 ids per request', kind: 'rest-statuses', env: {} },
];

async function main(): Promise<void> {
  const started = Date.now();
  log(`Pulse heartbeat benchmark: ${scenarios.length} scenarios x ${SECONDS} s at ${CONNECTIONS} connections, ${USERS} users`);
  const database = await benchDatabase('pulse_bench');
  log(`database: ${database.label}`);
  const results: Measured[] = [];
  let databaseReport = '';
  // Where each phase's round robin over its users resumes: a user is heartbeated
  // again only after every other user of its half, so never within the
  // minimum write gap unless a run sends more than USERS / 2 heartbeats.
  const cursors = { measured: 0, warmup: 0 };
  try {
    await prefill(database.url);
    const only = process.env.BENCH_ONLY?.split(',').map((n) => `${n.trim()}.`);
    for (const scenario of scenarios.filter((s) => !only || only.some((prefix) => s.name.startsWith(prefix)))) {
      const reason = scenario.skip?.();
      if (reason) {
        log(`\n${scenario.name}: skipped (${reason})`);
        results.push({ scenario: scenario.name, kind: scenario.kind, skippedReason: reason } as Measured);
        continue;
      }
      // The TTL-store comparator is its own server script, without a cluster.
      const runs = (WORKERS > 1 && !scenario.script ? [1, WORKERS] : [1]).flatMap((w) => Array.from({ length: ROUNDS }, (_, round) => ({ w, round })));
      runs.sort((a, b) => a.round - b.round);
      for (const { w: workers, round } of runs) {
        log(`\n${scenario.name}${WORKERS > 1 ? `, PULSE_WORKERS=${workers}` : ''}${ROUNDS > 1 ? `, round ${round + 1} of ${ROUNDS}` : ''}`);
        const measured = await runScenario(scenario, database.url, cursors, workers);
        results.push(measured);
        log(
          `  ${measured.load.requestsPerSecond.toFixed(0)} req/s, p50 ${measured.load.p50Ms} ms, p99 ${measured.load.p99Ms} ms, ` +
            `${measured.load.non2xx} non-2xx, ${measured.load.errors} errors` +
            (measured.statementsPerUnit !== null ? `, ${measured.statementsPerUnit.toFixed(4)} statements per ${measured.kind.includes('statuses') ? 'request' : 'heartbeat'}` : '') +
            (workers > 1 ? `, requests per worker ${measured.requestsPerWorker.join(' / ')}` : ''),
        );
      }
    }
    if (process.env.BENCH_DATABASE !== 'off') {
      log('\nThe database alone: raw write ceilings, size per row, growth from 1M to 10M rows');
      const result = await runDatabaseBench({ url: database.url, progress: (line) => log(`  ${line}`) });
      databaseReport = databaseBenchMarkdown(result);
    }
  } finally {
    await database.stop();
  }

  const report = render(results, database.label, (Date.now() - started) / 1000) + (databaseReport ? `\n${databaseReport}` : '');
  const stamp = new Date().toISOString().slice(0, 19).replace(/:/g, '');
  const dir = path.join(ROOT, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `bench-${stamp}.md`), report);
  fs.writeFileSync(path.join(dir, `bench-${stamp}.json`), JSON.stringify({ database: database.label, machine: machineLabel(), seconds: SECONDS, connections: CONNECTIONS, users: USERS, results }, null, 2));
  log(`\n${report}\nwritten to bench/results/bench-${stamp}.md and .json`);
}

// Private: BENCH_USERS rows, so heartbeats update existing rows (HOT updates) the
// way they do once a service has been running, instead of inserting.
async function prefill(url: string): Promise<void> {
  const port = await freePort();
  // The first start applies the migrations.
  const server = await startServer({ DATABASE_URL: url, JWT_SECRET: SECRET, PULSE_WORKERS: '1' }, port);
  await stopServer(server);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  log(`pre-filling ${USERS} users`);
  await client.query(
    `insert into pulse (user_id, last_hb) select g, now() - interval '1 hour' from generate_series(1, $1::bigint) g on conflict do nothing`,
    [USERS],
  );
  await client.query('vacuum analyze pulse');
  await client.end();
}

async function runScenario(scenario: Scenario, url: string, cursors: { measured: number; warmup: number }, workers: number): Promise<Measured> {
  const port = await freePort();
  const server = await startServer(
    { DATABASE_URL: url, JWT_SECRET: SECRET, DB_POOL_MAX: '10', ...scenario.env, PULSE_WORKERS: String(workers) },
    port,
    scenario.script,
  );
  try {
    const reads = scenario.kind.includes('statuses');
    const spec = (seconds: number, phase: 'measured' | 'warmup'): LoadSpec => ({
      port,
      kind: scenario.kind,
      connections: CONNECTIONS,
      seconds,
      users: reads ? USERS : USERS / 2,
      firstUserId: reads || phase === 'measured' ? 1 : USERS / 2 + 1,
      startIndex: cursors[phase],
      idsPerRead: 100,
      jwtSecret: SECRET,
    });
    // Warm-up (JIT, pool connections) on users of the other half, so the
    // measured heartbeats find rows last written long enough ago to be written.
    const warmup = await runLoad(spec(WARMUP_SECONDS, 'warmup'));
    const before = await counters(port);
    const load = await runLoad(spec(SECONDS, 'measured'));
    const after = await counters(port);
    if (!reads) {
      cursors.warmup = (cursors.warmup + warmup.requests) % (USERS / 2);
      cursors.measured = (cursors.measured + load.requests) % (USERS / 2);
    }
    const heartbeats = after.accepted - before.accepted;
    const statements = after.statements - before.statements;
    const units = scenario.kind.includes('statuses') ? load.requests : heartbeats;
    return {
      scenario: scenario.name,
      workers,
      requestsPerWorker: after.requestsPerWorker.map((n, i) => n - (before.requestsPerWorker[i] ?? 0)),
      kind: scenario.kind,
      load,
      heartbeats,
      written: after.written - before.written,
      skipped: after.skipped - before.skipped,
      statements,
      statementsPerUnit: scenario.kind === 'graphql-noop' || units === 0 ? null : statements / units,
    };
  } finally {
    await stopServer(server);
  }
}

function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'bench/load.ts', JSON.stringify(spec)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`load generator exited with ${code}`));
      resolve(JSON.parse(out.trim().split('\n').pop()!) as LoadResult);
    });
  });
}

// Private: the server's exact counters, from its Prometheus endpoint.
async function counters(port: number) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? 0);
  return {
    statements: value(/^pulse_sql_statements_total (\S+)$/m),
    accepted: value(/^pulse_heartbeats_total\{outcome="accepted"\} (\S+)$/m),
    written: value(/^pulse_heartbeats_total\{outcome="written"\} (\S+)$/m),
    skipped: value(/^pulse_heartbeats_total\{outcome="skipped"\} (\S+)$/m),
    // Per worker, in slot order (empty for a single process).
    requestsPerWorker: [...text.matchAll(/^pulse_worker_requests_total\{worker="(\d+)"\} (\S+)$/gm)]
      .sort((a, b) => Number(a[1]) - Number(b[1]))
      .map((m) => Number(m[2])),
  };
}

function render(all: Measured[], databaseLabel: string, elapsedSeconds: number): string {
  const results = all.filter((r) => r.skippedReason || r.workers === 1);
  const byNumber = (n: number) => results.find((r) => r.scenario.startsWith(`${n}.`) && !r.skippedReason);
  const rps = (n: number) => byNumber(n)?.load.requestsPerSecond;
  const ratio = (a?: number, b?: number) => (a !== undefined && b !== undefined && b > 0 ? (a / b).toFixed(2) : 'n/a');
  const lines = [
    `# Pulse heartbeat benchmark`,
    '',
    `${new Date().toISOString()}. Machine: ${machineLabel()}. Database: ${databaseLabel}.`,
    `${SECONDS} s per scenario after a ${WARMUP_SECONDS} s warm-up, ${CONNECTIONS} connections, ${USERS} users (each heartbeat from a different user), DB_POOL_MAX=10. Run took ${elapsedSeconds.toFixed(0)} s.`,
    '',
    '| scenario | req/s | p50 ms | p99 ms | non-2xx | errors | SQL statements per heartbeat (per request for reads) | written | skipped |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map((r) =>
      r.skippedReason
        ? `| ${r.scenario} | skipped: ${r.skippedReason} | | | | | | | |`
        : `| ${r.scenario} | ${r.load.requestsPerSecond.toFixed(0)} | ${r.load.p50Ms} | ${r.load.p99Ms} | ${r.load.non2xx} | ${r.load.errors} | ${
            r.kind === 'graphql-noop'
              ? '0 (no I/O)'
              : r.scenario.startsWith('5.')
                ? '0 (1 Redis command)'
                : r.statementsPerUnit === null
                  ? 'n/a'
                  : r.statementsPerUnit.toFixed(4)
          } | ${r.kind.includes('statuses') || r.kind === 'graphql-noop' ? '' : r.written} | ${r.kind.includes('statuses') || r.kind === 'graphql-noop' ? '' : r.skipped} |`,
    ),
    '',
    '| ratio | target | measured |',
    '|---|---|---:|',
    `| group-commit mutation / no-I/O ceiling (3 / 1) | >= 0.9 | ${ratio(rps(3), rps(1))} |`,
    `| group-commit mutation / Redis TTL comparator (3 / 5) | >= 1 | ${ratio(rps(3), rps(5))} |`,
    `| POST /pulse / Day-0 mutation (4 / 2) | >= 5 | ${ratio(rps(4), rps(2))} |`,
    `| SQL statements per heartbeat, group-commit mutation at ${CONNECTIONS} connections (3) | <= 0.02 | ${byNumber(3)?.statementsPerUnit?.toFixed(4) ?? 'n/a'} |`,
    `| SQL statements per heartbeat, POST /pulse at ${CONNECTIONS} connections (4) | <= 0.02 | ${byNumber(4)?.statementsPerUnit?.toFixed(4) ?? 'n/a'} |`,
    '',
    ...renderWorkers(all),
  ];
  return lines.join('\n');
}

// Private: with PULSE_WORKERS > 1, each scenario's cluster run beside its
// single-process run of the same bench.
function renderWorkers(all: Measured[]): string[] {
  const clusteredRuns = all.filter((r) => !r.skippedReason && r.workers > 1);
  if (clusteredRuns.length === 0) return [];
  const n = clusteredRuns[0]!.workers;
  // One row per scenario: the run with the median req/s of its rounds.
  const median = (runs: Measured[]) => [...runs].sort((a, b) => a.load.requestsPerSecond - b.load.requestsPerSecond)[Math.floor((runs.length - 1) / 2)];
  const scenarios = [...new Set(clusteredRuns.map((r) => r.scenario))];
  const clustered = scenarios.map((name) => median(clusteredRuns.filter((r) => r.scenario === name))!);
  const rounds = (name: string, workers: number) =>
    all.filter((r) => r.scenario === name && r.workers === workers && !r.skippedReason).map((r) => r.load.requestsPerSecond.toFixed(0)).join(', ');
  return [
    `## ${n} workers (PULSE_WORKERS=${n}) beside 1, same run`,
    '',
    ROUNDS > 1 ? `Medians of ${ROUNDS} alternating rounds; every round's req/s in the second table.` : '',
    '',
    `| scenario | 1 worker req/s | ${n} workers req/s | ${n} / 1 | per worker req/s | requests per worker (share) | p99 ms 1 / ${n} | statements per unit 1 / ${n} |`,
    '|---|---:|---:|---:|---:|---|---:|---:|',
    ...clustered.map((c) => {
      const single = median(all.filter((r) => r.scenario === c.scenario && r.workers === 1 && !r.skippedReason));
      const total = c.requestsPerWorker.reduce((a, b) => a + b, 0);
      const shares = c.requestsPerWorker.map((k) => `${k} (${total > 0 ? ((100 * k) / total).toFixed(0) : 0}%)`).join(' / ');
      const rps = c.load.requestsPerSecond;
      const spu = (r?: Measured) => (r?.statementsPerUnit == null ? 'n/a' : r.statementsPerUnit.toFixed(4));
      return `| ${c.scenario} | ${single?.load.requestsPerSecond.toFixed(0) ?? 'n/a'} | ${rps.toFixed(0)} | ${single ? (rps / single.load.requestsPerSecond).toFixed(2) : 'n/a'} | ${(rps / n).toFixed(0)} | ${shares} | ${single?.load.p99Ms ?? 'n/a'} / ${c.load.p99Ms} | ${spu(single)} / ${spu(c)} |`;
    }),
    '',
    ...(ROUNDS > 1
      ? ['| scenario | 1 worker, each round (req/s) | ' + `${n} workers, each round (req/s) |`, '|---|---|---|', ...scenarios.map((name) => `| ${name} | ${rounds(name, 1)} | ${rounds(name, n)} |`), '']
      : []),
  ];
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
