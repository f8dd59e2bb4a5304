/**
 * Read replicas under load: a Pulse process on a real primary and a streaming
 * replica of it (made in a temporary folder from the machine's PostgreSQL 15
 * server binaries, as the tests do), steady heartbeats and status reads, and the
 * replica stopped and started again halfway. Reports the replica's measured lag,
 * where reads went (replica, primary, fallback), the status statements each server
 * ran (pg_stat_statements), and errors per phase: none should fail.
 *
 *   npm run bench:replicas
 *   REPLICA_BENCH_USERS=10000 REPLICA_BENCH_READS_PER_SECOND=200 npm run bench:replicas
 *
 * Settings (environment): REPLICA_BENCH_USERS (5000, each sending a heartbeat
 * every 10 s), REPLICA_BENCH_READS_PER_SECOND (100, each `statuses` of 50 ids),
 * REPLICA_BENCH_PHASE_SECONDS (10: before, during and after the replica's stop).
 * Loopback only; stops by itself, and stops both servers on the way out.
 */
import http from 'node:http';
import os from 'node:os';
import jwt from 'jsonwebtoken';
import { startStreamingReplica, streamingReplicaUnavailable, type StreamingReplica } from '../test/support/streaming-replica';
import { freePort, log, percentile, sleep, startServer, stopServer } from './support';

const USERS = Number(process.env.REPLICA_BENCH_USERS ?? 5000);
const READS_PER_SECOND = Number(process.env.REPLICA_BENCH_READS_PER_SECOND ?? 100);
const PHASE_SECONDS = Number(process.env.REPLICA_BENCH_PHASE_SECONDS ?? 10);
const SECRET = 'replica-bench-secret-that-is-at-least-32-characters';

interface Phase {
  name: string;
  requests: number;
  errors: number;
  lags: number[];
  routes: Record<string, number>;
}

async function main(): Promise<void> {
  const unavailable = streamingReplicaUnavailable();
  if (unavailable) {
    log(`bench:replicas needs PostgreSQL's server binaries: ${unavailable}`);
    process.exit(1);
  }
  log('making a primary and a streaming replica in a temporary folder');
  const replica = await startStreamingReplica();
  const interrupted = () => void replica.destroy().finally(() => process.exit(130));
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    await run(replica);
  } finally {
    await replica.destroy();
  }
}

async function run(replica: StreamingReplica): Promise<void> {
  const port = await freePort();
  const server = await startServer(
    { DATABASE_URL: replica.primaryUrl(), READ_DATABASE_URL: replica.replicaUrl(), JWT_SECRET: SECRET, DB_POOL_MAX: '8' },
    port,
  );
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  // Metrics are sampled on a connection of their own, not queued behind the load.
  const metricsAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const request = (method: string, path: string, token?: string, via = agent) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path, method, agent: via, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });

  const tokens = Array.from({ length: USERS }, (_, i) => jwt.sign({ sub: String(i + 1) }, SECRET, { algorithm: 'HS256', expiresIn: '1h' }));
  let phase: Phase = newPhase('warm-up');
  const count = (status: number | null) => {
    phase.requests++;
    if (status === null || status >= 400) phase.errors++;
  };
  let running = true;
  // Each user heartbeats every 10 s at its own phase; reads ask for 50 consecutive ids.
  const heartbeats = ticker(USERS / 100, () => {
    const token = tokens[Math.floor(Math.random() * USERS)]!;
    request('POST', '/pulse', token).then((r) => count(r.status), () => count(null));
  });
  const reads = ticker(READS_PER_SECOND / 10, () => {
    const first = Math.floor(Math.random() * (USERS - 50)) + 1;
    const ids = Array.from({ length: 50 }, (_, k) => first + k).join(',');
    request('GET', `/status/profile?userId=${ids}`).then((r) => count(r.status), () => count(null));
  });
  function ticker(perTick: number, send: () => void): Promise<void> {
    return (async () => {
      let owed = 0;
      while (running) {
        const started = Date.now();
        owed += perTick;
        for (; owed >= 1; owed--) send();
        await sleep(Math.max(0, 100 - (Date.now() - started)));
      }
    })();
  }
  const sampler = (async () => {
    while (running) {
      const metrics = (await request('GET', '/metrics', undefined, metricsAgent).catch(() => ({ body: '' }))).body;
      const lag = /pulse_read_replica_lag_seconds\{replica="[^"]+"\} (\S+)/.exec(metrics)?.[1];
      // While the replica is down the gauge is NaN (prom-client writes "Nan"): no sample.
      if (lag !== undefined && Number.isFinite(Number(lag))) phase.lags.push(Number(lag));
      await sleep(250);
    }
  })();

  const statusReads = async (where: 'primary' | 'replica') => {
    const rows = await replica.query<{ calls: string }>(
      where,
      `select coalesce(sum(calls), 0)::text as calls from pg_stat_statements where query like $1 and query like $2 and query not like $3`,
      ['%presence_settings%', '%follows%', '%pg_stat_statements%'],
    );
    return Number(rows[0]!.calls);
  };
  const routes = async () => {
    const metrics = (await request('GET', '/metrics', undefined, metricsAgent)).body;
    const out: Record<string, number> = {};
    for (const m of metrics.matchAll(/pulse_replica_reads_total\{route="(\w+)"\} (\d+)/g)) out[m[1]!] = Number(m[2]);
    return out;
  };

  const phases: Phase[] = [];
  let before = await routes();
  const [primaryBefore, replicaBefore] = [await statusReads('primary'), await statusReads('replica')];
  const endPhase = async (next: string) => {
    const now = await routes();
    phase.routes = Object.fromEntries(Object.entries(now).map(([k, v]) => [k, v - (before[k] ?? 0)]));
    before = now;
    phases.push(phase);
    phase = newPhase(next);
  };

  await sleep(2000);
  await endPhase('replica up');
  await sleep(PHASE_SECONDS * 1000);
  await endPhase('replica stopped');
  await replica.stopReplica();
  await sleep(PHASE_SECONDS * 1000);
  await endPhase('replica restarted');
  await replica.startReplica();
  await sleep(PHASE_SECONDS * 1000);
  running = false;
  await Promise.all([heartbeats, reads, sampler]);
  await sleep(500);
  await endPhase('done');
  const [primaryAfter, replicaAfter] = [await statusReads('primary'), await statusReads('replica')];
  agent.destroy();
  metricsAgent.destroy();
  await stopServer(server);

  const load = os.loadavg().map((l) => l.toFixed(1)).join(' ');
  log('');
  log(`# Read replicas under load: ${USERS} users (${USERS / 10} heartbeats/s), ${READS_PER_SECOND} statuses reads/s of 50 ids`);
  log(`Machine: ${os.cpus().length} cores, load average ${load} at the end; primary and replica on this host.`);
  log('');
  log('| phase | requests | errors | lag samples | lag p50 ms | lag max ms | reads: replica | primary | fallback |');
  log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const p of phases.slice(1)) {
    log(
      `| ${p.name} | ${p.requests} | ${p.errors} | ${p.lags.length} | ${quantile(p.lags, 0.5)} | ${quantile(p.lags, 1)} | ${p.routes.replica ?? 0} | ${p.routes.primary ?? 0} | ${p.routes.fallback ?? 0} |`,
    );
  }
  log('');
  log(`status statements (pg_stat_statements): primary ${primaryAfter - primaryBefore}, replica ${replicaAfter - replicaBefore}`);
}

function newPhase(name: string): Phase {
  return { name, requests: 0, errors: 0, lags: [], routes: {} };
}

function quantile(values: number[], q: number): string {
  return values.length === 0 ? 'n/a' : (percentile(values, q) * 1000).toFixed(1);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:replicas failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
