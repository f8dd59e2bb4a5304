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
 *   npm run build && BENCH_SERVER=dist npm run bench # the production build
 *   BENCH_SERVER=dist PULSE_WORKERS=2 npm run bench  # 1 worker and 2, side by side
 *
 * Heartbeat scenarios run at BENCH_CONNECTIONS (400: saturation), status reads at
 * BENCH_READ_CONNECTIONS (50). Anchors (bench/anchor-servers.ts: bare node:http,
 * stock Apollo + pg, node:http + pg) and the Redis TTL comparator (on a
 * redis-server the bench starts on a free port, or REDIS_URL) run in the same
 * rounds as what they are compared with; BENCH_ROUNDS rounds (2) go through every
 * scenario in turn and each figure is the median over the rounds. Besides
 * requests/s, the server's own CPU time per request (from /proc) is reported: on
 * a shared machine it moves far less than throughput.
 *
 * Then the open loop (bench/open-loop.ts): heartbeats at fixed arrival rates
 * (BENCH_RATES, default 1000,2000,4000,8000 per second, BENCH_RATE_SECONDS each)
 * from BENCH_USERS users against one server, with SQL statements per second.
 *
 * PULSE_WORKERS=N (N > 1, or auto for one per core) runs every Pulse scenario
 * (not the anchors, not the TTL comparator) twice in each round, alternating: with
 * one worker (one process, no primary) and with N (a primary and N workers on one
 * port), 1 first in odd rounds and N first in even ones, so drift in the machine's
 * load falls on both. The usual report is the single-worker one; a second part
 * gives the instance's figures with 1 and N workers (req/s, p99, server CPU per
 * request over the primary and every worker, statements per heartbeat) and each
 * worker's share of the requests (pulse_worker_requests_total) with its CPU per
 * request. The open loop runs one worker either way.
 *
 * Settings (environment): BENCH_SECONDS (10 per scenario), BENCH_CONNECTIONS,
 * BENCH_READ_CONNECTIONS, BENCH_ROUNDS, BENCH_USERS (100000), BENCH_ONLY
 * (scenario numbers, e.g. 3,4), BENCH_RATES (`off` skips the open loop),
 * BENCH_DATABASE=off to skip the raw database part (which bench/database/run.ts
 * documents; `npm run bench:db` runs it alone).
 * Pulse's own settings (HEARTBEAT_BATCH_WINDOW_MS, ...) pass through to the
 * servers it starts, except PULSE_WORKERS, which the bench sets per run.
 * Writes bench/results/bench-<time>.md and .json. Stops by itself.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { databaseBenchMarkdown } from './database/report';
import { runDatabaseBench } from './database/run';
import type { LoadKind, LoadResult, LoadSpec } from './load';
import type { OpenLoopResult, OpenLoopSpec } from './open-loop';
import { benchDatabase, freePort, log, machineLabel, processCpuMs, ROOT, startServer, stopServer } from './support';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 400);
const READ_CONNECTIONS = Number(process.env.BENCH_READ_CONNECTIONS ?? 50);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const USERS = Number(process.env.BENCH_USERS ?? 100_000);
const RATES = process.env.BENCH_RATES === 'off' ? [] : (process.env.BENCH_RATES ?? '1000,2000,4000,8000').split(',').map(Number);
const RATE_SECONDS = Number(process.env.BENCH_RATE_SECONDS ?? 10);
const WARMUP_SECONDS = 2;
// The cluster size each Pulse scenario is also run with; 1: none.
const WORKERS = clusterSize(process.env.PULSE_WORKERS);
const SECRET = 'bench-secret-that-is-at-least-32-characters';

interface Scenario {
  name: string;
  kind: LoadKind;
  env: Record<string, string>;
  /** Another server script than src/main.ts. */
  script?: string;
  /** Arguments for that script. */
  args?: string[];
  /** An anchor: not Pulse, so no /metrics and no /readyz of Pulse's. */
  anchor?: boolean;
  /** Only when this returns a reason is the scenario skipped. */
  skip?: () => string | null;
}

interface Measured {
  scenario: string;
  /** PULSE_WORKERS of the server measured (1: one process, no primary). */
  workers: number;
  kind: LoadKind;
  connections: number;
  load: LoadResult;
  /** Server CPU time per request, in ms (null where /proc is missing). */
  cpuMsPerRequest: number | null;
  heartbeats: number;
  written: number;
  skipped: number;
  statements: number;
  /** Statements per heartbeat (heartbeat scenarios) or per request (reads). */
  statementsPerUnit: number | null;
  /** With workers > 1: each worker's part of the measured run, then the primary's. */
  perWorker: WorkerPart[];
  skippedReason?: string;
}

/** One process of a cluster during a measured run. */
interface WorkerPart {
  /** The `worker` label of its metrics: the slot (1..N), or `primary`. */
  worker: string;
  /** Requests it answered (pulse_worker_requests_total; 0 for the primary, which serves none). */
  requests: number;
  /** Its CPU time in ms (pulse_process_process_cpu_seconds_total), null when not exported. */
  cpuMs: number | null;
}

/** Where Redis for the TTL comparator is: REDIS_URL, or a redis-server of the bench's own. */
const redis: { url: string | null; stop(): void } = { url: process.env.REDIS_URL ?? null, stop: () => {} };

const scenarios: Scenario[] = [
  { name: '1. GraphQL mutation with no I/O (`mutation { __typename }`)', kind: 'graphql-noop', env: {} },
  { name: '2. Day-0 heartbeat mutation (HEARTBEAT_BATCHING=off)', kind: 'graphql-heartbeat', env: { HEARTBEAT_BATCHING: 'off' } },
  { name: '3. Group-commit heartbeat mutation', kind: 'graphql-heartbeat', env: {} },
  { name: '4. POST /pulse, group commit', kind: 'rest-pulse', env: {} },
  {
    name: '5. Anchor: Pulse with the mutation writing Redis `SET ... EX` (the TTL design)',
    kind: 'graphql-heartbeat',
    env: {},
    script: 'bench/ttl-store-server.ts',
    skip: () => (redis.url ? null : 'no REDIS_URL and no redis-server on PATH'),
  },
  { name: '6. Anchor: bare node:http answering 204', kind: 'rest-pulse', env: {}, script: 'bench/anchor-servers.ts', args: ['http-204'], anchor: true },
  { name: '7. `statuses`, 100 ids per request (GraphQL)', kind: 'graphql-statuses', env: {} },
  { name: '8. Anchor: stock Apollo + pg, one `= ANY($1)` select, 100 ids', kind: 'graphql-statuses', env: {}, script: 'bench/anchor-servers.ts', args: ['apollo-pg'], anchor: true },
  { name: '9. `GET /status/profile`, 100 ids per request', kind: 'rest-statuses', env: {} },
  { name: '10. Anchor: node:http + pg, the same select, timestamps formatted by PostgreSQL', kind: 'rest-statuses', env: {}, script: 'bench/anchor-servers.ts', args: ['http-pg'], anchor: true },
];

interface OpenLoopStep {
  rate: number;
  result: OpenLoopResult;
  statementsPerSecond: number;
  heartbeatsPerStatement: number | null;
  cpuMsPerHeartbeat: number | null;
}

async function main(): Promise<void> {
  const started = Date.now();
  log(`Pulse benchmark: ${scenarios.length} scenarios x ${ROUNDS} rounds x ${SECONDS} s, heartbeats at ${CONNECTIONS} connections, reads at ${READ_CONNECTIONS}, ${USERS} users`);
  if (WORKERS > 1) log(`each Pulse scenario with PULSE_WORKERS=1 and PULSE_WORKERS=${WORKERS}, alternating`);
  log(`load average before: ${loadAverage()}`);
  const database = await benchDatabase('pulse_bench');
  log(`database: ${database.label}`);
  if (!redis.url) startRedis();
  const rounds: Measured[][] = [];
  const openLoop: OpenLoopStep[] = [];
  let databaseReport = '';
  // Where each phase's round robin over its users resumes: a user is heartbeated
  // again only after every other user of its half, so never within the
  // minimum write gap unless a run sends more than USERS / 2 heartbeats.
  const cursors = { measured: 0, warmup: 0 };
  try {
    await prefill(database.url);
    const only = process.env.BENCH_ONLY?.split(',').map((n) => `${n.trim()}.`);
    const chosen = scenarios.filter((s) => !only || only.some((prefix) => s.name.startsWith(prefix)));
    for (let round = 1; round <= ROUNDS; round++) {
      const results: Measured[] = [];
      for (const scenario of chosen) {
        const reason = scenario.skip?.();
        if (reason) {
          if (round === 1) log(`\n${scenario.name}: skipped (${reason})`);
          results.push({ scenario: scenario.name, workers: 1, kind: scenario.kind, skippedReason: reason } as Measured);
          continue;
        }
        // Pulse itself in both shapes; the anchors and the TTL comparator
        // (servers of their own, no cluster) once.
        const sizes = WORKERS > 1 && !scenario.script ? (round % 2 === 1 ? [1, WORKERS] : [WORKERS, 1]) : [1];
        for (const workers of sizes) {
          log(`\nround ${round}: ${scenario.name}${WORKERS > 1 && !scenario.script ? `, PULSE_WORKERS=${workers}` : ''}`);
          const measured = await runScenario(scenario, database.url, cursors, workers);
          results.push(measured);
          const shares = measured.perWorker.filter((w) => w.worker !== 'primary').map((w) => w.requests);
          log(
            `  ${measured.load.requestsPerSecond.toFixed(0)} req/s, p50 ${measured.load.p50Ms} ms, p99 ${measured.load.p99Ms} ms, ` +
              `${measured.load.non2xx} non-2xx, ${measured.load.errors} errors` +
              (measured.cpuMsPerRequest !== null ? `, ${measured.cpuMsPerRequest.toFixed(3)} ms server CPU per request` : '') +
              (measured.statementsPerUnit !== null ? `, ${measured.statementsPerUnit.toFixed(4)} statements per ${measured.kind.includes('statuses') ? 'request' : 'heartbeat'}` : '') +
              (shares.length > 0 ? `, requests per worker ${shares.join(' / ')}` : ''),
          );
        }
      }
      rounds.push(results);
    }
    if (RATES.length > 0) {
      log(`\nOpen loop: ${RATES.join(', ')} heartbeats/s, ${RATE_SECONDS} s each, ${USERS} users`);
      openLoop.push(...(await runOpenLoop(database.url, cursors)));
    }
    if (process.env.BENCH_DATABASE !== 'off') {
      log('\nThe database alone: raw write ceilings, size per row, growth from 1M to 10M rows');
      const result = await runDatabaseBench({ url: database.url, progress: (line) => log(`  ${line}`) });
      databaseReport = databaseBenchMarkdown(result);
    }
  } finally {
    redis.stop();
    await database.stop();
  }

  const results = medians(rounds);
  const loadAfter = loadAverage();
  const report = render(results, openLoop, database.label, (Date.now() - started) / 1000, loadAfter) + (databaseReport ? `\n${databaseReport}` : '');
  const stamp = new Date().toISOString().slice(0, 19).replace(/:/g, '');
  const dir = path.join(ROOT, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `bench-${stamp}.md`), report);
  fs.writeFileSync(
    path.join(dir, `bench-${stamp}.json`),
    JSON.stringify({ database: database.label, machine: machineLabel(), seconds: SECONDS, connections: CONNECTIONS, readConnections: READ_CONNECTIONS, users: USERS, workers: WORKERS, rounds, results, openLoop }, null, 2),
  );
  log(`\n${report}\nwritten to bench/results/bench-${stamp}.md and .json`);
}

// Private: a redis-server of the bench's own on a free port, for the TTL
// comparator, when one is installed; never the machine's shared Redis.
function startRedis(): void {
  if (spawnSync('redis-server', ['--version']).status !== 0) return;
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  redis.url = `redis://127.0.0.1:${port}`;
  redis.stop = () => {
    child.kill('SIGTERM');
  };
  process.once('exit', () => child.kill('SIGTERM'));
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
  const env = {
    DATABASE_URL: url,
    JWT_SECRET: SECRET,
    DB_POOL_MAX: '10',
    ...(scenario.script === 'bench/ttl-store-server.ts' ? { REDIS_URL: redis.url! } : {}),
    ...scenario.env,
    PULSE_WORKERS: String(workers),
  };
  const server = await startServer(env, port, scenario.script, { args: scenario.args, anyAnswerIsReady: scenario.anchor });
  try {
    const reads = scenario.kind.includes('statuses');
    const connections = reads ? READ_CONNECTIONS : CONNECTIONS;
    const spec = (seconds: number, phase: 'measured' | 'warmup'): LoadSpec => ({
      port,
      kind: scenario.kind,
      connections,
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
    const before = scenario.anchor ? null : await counters(port);
    const cpuBefore = instanceCpuMs(server.pid);
    const load = await runLoad(spec(SECONDS, 'measured'));
    const cpuAfter = instanceCpuMs(server.pid);
    const after = scenario.anchor ? null : await counters(port);
    if (!reads) {
      cursors.warmup = (cursors.warmup + warmup.requests) % (USERS / 2);
      cursors.measured = (cursors.measured + load.requests) % (USERS / 2);
    }
    const heartbeats = before && after ? after.accepted - before.accepted : 0;
    const statements = before && after ? after.statements - before.statements : 0;
    const units = reads ? load.requests : heartbeats;
    return {
      scenario: scenario.name,
      workers,
      kind: scenario.kind,
      connections,
      load,
      cpuMsPerRequest: cpuBefore !== null && cpuAfter !== null && load.requests > 0 ? (cpuAfter - cpuBefore) / load.requests : null,
      heartbeats,
      written: before && after ? after.written - before.written : 0,
      skipped: before && after ? after.skipped - before.skipped : 0,
      statements,
      statementsPerUnit: scenario.anchor || scenario.kind === 'graphql-noop' || units === 0 ? null : statements / units,
      perWorker: workers > 1 && before && after ? workerParts(before, after) : [],
    };
  } finally {
    await stopServer(server);
  }
}

// Private: one Pulse server, the arrival rates in turn, statements counted by
// the server per step.
async function runOpenLoop(url: string, cursors: { measured: number }): Promise<OpenLoopStep[]> {
  const port = await freePort();
  const server = await startServer({ DATABASE_URL: url, JWT_SECRET: SECRET, DB_POOL_MAX: '10', PULSE_WORKERS: '1' }, port);
  const steps: OpenLoopStep[] = [];
  try {
    // Warm-up at the lowest rate, on the users the steps reach last.
    await runOpenLoopStep({ port, rate: RATES[0]!, seconds: 2, users: USERS, firstUserId: 1, startIndex: USERS - RATES[0]! * 2, maxConnections: 1000, jwtSecret: SECRET, path: 'graphql' });
    for (const rate of RATES) {
      const before = await counters(port);
      const cpuBefore = processCpuMs(server.pid);
      const result = await runOpenLoopStep({ port, rate, seconds: RATE_SECONDS, users: USERS, firstUserId: 1, startIndex: cursors.measured, maxConnections: 1000, jwtSecret: SECRET, path: 'graphql' });
      const cpuAfter = processCpuMs(server.pid);
      const after = await counters(port);
      cursors.measured = (cursors.measured + result.due) % USERS;
      const statements = after.statements - before.statements;
      const written = after.written - before.written;
      const step: OpenLoopStep = {
        rate,
        result,
        statementsPerSecond: statements / RATE_SECONDS,
        heartbeatsPerStatement: statements > 0 ? written / statements : null,
        cpuMsPerHeartbeat: cpuBefore !== null && cpuAfter !== null && result.completed > 0 ? (cpuAfter - cpuBefore) / result.completed : null,
      };
      steps.push(step);
      log(
        `  ${rate}/s: ${result.completedPerSecond.toFixed(0)} answered/s, p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, ` +
          `${result.non2xx} non-2xx, ${result.errors} errors, ${step.statementsPerSecond.toFixed(0)} statements/s`,
      );
    }
  } finally {
    await stopServer(server);
  }
  return steps;
}

function runOpenLoopStep(spec: OpenLoopSpec): Promise<OpenLoopResult> {
  return runJson<OpenLoopResult>('bench/open-loop.ts', spec);
}

function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return runJson<LoadResult>('bench/load.ts', spec);
}

// Private: a load generator as a process of its own; its last line of output is the result.
function runJson<T>(script: string, spec: object): Promise<T> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', script, JSON.stringify(spec)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`${script} exited with ${code}`));
      resolve(JSON.parse(out.trim().split('\n').pop()!) as T);
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
    // Only an instance with workers exports these, one series per worker label.
    requestsByWorker: byWorker(text, 'pulse_worker_requests_total'),
    cpuSecondsByWorker: byWorker(text, 'pulse_process_process_cpu_seconds_total'),
  };
}

// Private: `name{worker="..."} value` series of a Prometheus text, by worker label.
function byWorker(text: string, name: string): Map<string, number> {
  return new Map([...text.matchAll(new RegExp(`^${name}\\{worker="([^"]+)"\\} (\\S+)$`, 'gm'))].map((m) => [m[1]!, Number(m[2])]));
}

// Private: each worker's requests and CPU between two readings of an instance's
// counters, workers in slot order, then the primary.
function workerParts(before: Awaited<ReturnType<typeof counters>>, after: Awaited<ReturnType<typeof counters>>): WorkerPart[] {
  const labels = [...new Set([...after.requestsByWorker.keys(), ...after.cpuSecondsByWorker.keys()])];
  const order = (label: string) => (label === 'primary' ? Number.MAX_SAFE_INTEGER : Number(label));
  return labels
    .sort((a, b) => order(a) - order(b))
    .map((worker) => {
      const cpuAfter = after.cpuSecondsByWorker.get(worker);
      const cpuBefore = before.cpuSecondsByWorker.get(worker);
      return {
        worker,
        requests: (after.requestsByWorker.get(worker) ?? 0) - (before.requestsByWorker.get(worker) ?? 0),
        // A worker replaced during the run has a new counter: no figure for it.
        cpuMs: cpuAfter !== undefined && cpuBefore !== undefined && cpuAfter >= cpuBefore ? (cpuAfter - cpuBefore) * 1000 : null,
      };
    });
}

// Private: the CPU time of a server and its direct children (the workers a
// primary forked), so an instance of N workers is measured whole, as one
// process is; null where /proc is missing.
function instanceCpuMs(pid: number | undefined): number | null {
  const own = processCpuMs(pid);
  if (own === null) return null;
  let total = own;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Field 4 of /proc/<pid>/stat, the first after the command's closing parenthesis and the state.
      const parent = Number(fs.readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      if (parent === pid) total += processCpuMs(Number(entry)) ?? 0;
    } catch {
      /* the process ended meanwhile */
    }
  }
  return total;
}

// Private: PULSE_WORKERS as the bench reads it (a whole number, or auto). Read
// before anything starts, so anything else ends the bench at once with one line
// rather than a run of NaN workers.
function clusterSize(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return 1;
  if (value.trim().toLowerCase() === 'auto') return os.availableParallelism();
  if (/^\d+$/.test(value.trim()) && Number(value) >= 1) return Number(value);
  process.stderr.write(`bench failed: PULSE_WORKERS: expected a whole number of workers (1 or more) or auto, got ${JSON.stringify(value)}\n`);
  process.exit(1);
}

// Private: per scenario and worker count, the round with the median throughput
// (its other figures come with it, so a row is one real measurement).
function medians(rounds: Measured[][]): Measured[] {
  return rounds[0]!.map((first) => {
    if (first.skippedReason) return first;
    const all = rounds
      .map((round) => round.find((m) => m.scenario === first.scenario && m.workers === first.workers)!)
      .sort((a, b) => a.load.requestsPerSecond - b.load.requestsPerSecond);
    return all[Math.floor((all.length - 1) / 2)]!;
  });
}

function loadAverage(): string {
  return fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

function render(all: Measured[], openLoop: OpenLoopStep[], databaseLabel: string, elapsedSeconds: number, loadAfter: string): string {
  // The usual report is the single-worker one; cluster runs have a part of their own.
  const results = all.filter((r) => r.workers === 1);
  const byNumber = (n: number) => results.find((r) => r.scenario.startsWith(`${n}.`) && !r.skippedReason);
  const rps = (n: number) => byNumber(n)?.load.requestsPerSecond;
  const ratio = (a?: number, b?: number) => (a !== undefined && b !== undefined && b > 0 ? (a / b).toFixed(2) : 'n/a');
  const lines = [
    `# Pulse benchmark`,
    '',
    `${new Date().toISOString()}. Machine: ${machineLabel()}. Database: ${databaseLabel}. Server: ${process.env.BENCH_SERVER === 'dist' ? 'the build (dist/)' : 'the sources under tsx'}.`,
    `${SECONDS} s per scenario after a ${WARMUP_SECONDS} s warm-up, ${ROUNDS} rounds (each row: the round with the median req/s), heartbeats at ${CONNECTIONS} connections, reads at ${READ_CONNECTIONS}, ${USERS} users (each heartbeat from a different user), DB_POOL_MAX=10. Run took ${elapsedSeconds.toFixed(0)} s; load average at the end ${loadAfter}.`,
    '',
    '| scenario | conn. | req/s | p50 ms | p99 ms | non-2xx | errors | server CPU ms per request | SQL statements per heartbeat (per request for reads) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map((r) =>
      r.skippedReason
        ? `| ${r.scenario} | skipped: ${r.skippedReason} | | | | | | | |`
        : `| ${r.scenario} | ${r.connections} | ${r.load.requestsPerSecond.toFixed(0)} | ${r.load.p50Ms} | ${r.load.p99Ms} | ${r.load.non2xx} | ${r.load.errors} | ${r.cpuMsPerRequest?.toFixed(3) ?? 'n/a'} | ${
            r.statementsPerUnit === null ? '' : r.statementsPerUnit.toFixed(4)
          } |`,
    ),
    '',
    '| ratio | target | measured |',
    '|---|---|---:|',
    `| GraphQL heartbeat / Pulse's \`{ __typename }\` mutation (3 / 1) | >= 0.9 | ${ratio(rps(3), rps(1))} |`,
    `| GraphQL heartbeat / Apollo + Redis TTL (3 / 5) | >= 1.2 | ${ratio(rps(3), rps(5))} |`,
    `| GraphQL heartbeat p99 at ${CONNECTIONS} connections (3) | < 250 ms | ${byNumber(3)?.load.p99Ms ?? 'n/a'} ms |`,
    `| \`POST /pulse\` / bare node:http (4 / 6) | >= 0.6 | ${ratio(rps(4), rps(6))} |`,
    `| \`statuses\` / Apollo + pg (7 / 8) | >= 1.0 | ${ratio(rps(7), rps(8))} |`,
    `| \`statuses\` / node:http + pg (7 / 10) | >= 0.5 | ${ratio(rps(7), rps(10))} |`,
    `| \`GET /status/profile\` / node:http + pg (9 / 10) | >= 0.8 | ${ratio(rps(9), rps(10))} |`,
    '',
  ];
  if (openLoop.length > 0) {
    lines.push(
      `Open loop: GraphQL heartbeat mutations at a fixed arrival rate, ${RATE_SECONDS} s per rate, ${USERS} users, one server; latency from when each request was due.`,
      '',
      '| heartbeats/s offered | answered/s | p50 ms | p99 ms | max ms | non-2xx | errors | SQL statements/s | heartbeats per statement | server CPU ms per heartbeat |',
      '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...openLoop.map(
        (s) =>
          `| ${s.rate} | ${s.result.completedPerSecond.toFixed(0)} | ${s.result.p50Ms} | ${s.result.p99Ms} | ${s.result.maxMs} | ${s.result.non2xx} | ${s.result.errors} | ${s.statementsPerSecond.toFixed(0)} | ${s.heartbeatsPerStatement?.toFixed(1) ?? 'n/a'} | ${s.cpuMsPerHeartbeat?.toFixed(3) ?? 'n/a'} |`,
      ),
      '',
    );
  }
  lines.push(...renderWorkers(all));
  return lines.join('\n');
}

// Private: with PULSE_WORKERS > 1, each Pulse scenario's instance with N
// workers beside its single process, then what each worker did.
function renderWorkers(all: Measured[]): string[] {
  const clustered = all.filter((r) => !r.skippedReason && r.workers > 1);
  if (clustered.length === 0) return [];
  const n = clustered[0]!.workers;
  const single = (c: Measured) => all.find((r) => r.scenario === c.scenario && r.workers === 1 && !r.skippedReason);
  const perUnit = (r: Measured) => (r.statementsPerUnit === null ? '' : r.statementsPerUnit.toFixed(4));
  const instanceRow = (r: Measured, ratio: string) =>
    `| ${r.scenario} | ${r.workers} | ${r.load.requestsPerSecond.toFixed(0)} | ${ratio} | ${r.load.p50Ms} | ${r.load.p99Ms} | ${r.load.non2xx} | ${r.load.errors} | ${r.cpuMsPerRequest?.toFixed(3) ?? 'n/a'} | ${perUnit(r)} |`;
  const workerRows = (c: Measured) => {
    const total = c.perWorker.reduce((sum, w) => sum + w.requests, 0);
    return c.perWorker.map((w) => {
      if (w.worker === 'primary') {
        // The primary answers no requests: its CPU is given per request of the instance.
        const perRequest = w.cpuMs !== null && c.load.requests > 0 ? (w.cpuMs / c.load.requests).toFixed(3) : 'n/a';
        return `| ${c.scenario} | primary | | | | ${perRequest} (per instance request) |`;
      }
      const share = total > 0 ? w.requests / total : 0;
      const perRequest = w.cpuMs !== null && w.requests > 0 ? (w.cpuMs / w.requests).toFixed(3) : 'n/a';
      return `| ${c.scenario} | worker ${w.worker} | ${w.requests} | ${(100 * share).toFixed(0)}% | ${(c.load.requestsPerSecond * share).toFixed(0)} | ${perRequest} |`;
    });
  };
  return [
    `## PULSE_WORKERS=${n} beside 1, same rounds`,
    '',
    `Each Pulse scenario ran with 1 worker (one process, no primary) and with ${n} (a primary and ${n} workers on one port, DB_POOL_MAX=10 each), ` +
      `alternating in every round; each row is the round with the median req/s for its worker count. Server CPU is the whole instance's ` +
      `(the primary and every worker, from /proc); statements are counted by the instance's /metrics.`,
    '',
    '| scenario | workers | req/s (instance) | N / 1 | p50 ms | p99 ms | non-2xx | errors | server CPU ms per request | SQL statements per heartbeat (per request for reads) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...clustered.flatMap((c) => {
      const one = single(c);
      const ratio = one && one.load.requestsPerSecond > 0 ? (c.load.requestsPerSecond / one.load.requestsPerSecond).toFixed(2) : 'n/a';
      return [...(one ? [instanceRow(one, '')] : []), instanceRow(c, ratio)];
    }),
    '',
    `Per worker, same runs: requests each answered (pulse_worker_requests_total), its share, its part of the instance's req/s, ` +
      `and its own CPU per request it answered (pulse_process_process_cpu_seconds_total).`,
    '',
    '| scenario | process | requests | share | req/s | CPU ms per request |',
    '|---|---|---:|---:|---:|---:|',
    ...clustered.flatMap(workerRows),
    '',
  ];
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
