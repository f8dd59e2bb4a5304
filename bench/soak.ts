/**
 * Soak: steady heartbeats and status reads against a real Pulse process for a
 * while (10 minutes by default), reporting per minute the throughput, p99
 * latency, the pulse table's size, its dead tuples and its HOT update ratio, to
 * show that churn levels off instead of growing.
 *
 *   npm run bench:soak                       # embedded PostgreSQL, 10 minutes
 *   SOAK_MINUTES=2 DATABASE_URL=postgres://... npm run bench:soak
 *
 * Settings (environment): SOAK_MINUTES (10), SOAK_USERS (20000, each sending a
 * heartbeat every 10 s), SOAK_READS_PER_SECOND (50, each `statuses` of 50 ids).
 * Loopback only; stops by itself.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import pg from 'pg';
import { benchDatabase, freePort, log, percentile, ROOT, sleep, startServer, stopServer } from './support';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 10);
const USERS = Number(process.env.SOAK_USERS ?? 20_000);
const READS_PER_SECOND = Number(process.env.SOAK_READS_PER_SECOND ?? 50);
const HEARTBEAT_INTERVAL_MS = 10_000;
const SECRET = 'soak-secret-that-is-at-least-32-characters';

interface Minute {
  minute: number;
  heartbeats: number;
  reads: number;
  errors: number;
  heartbeatP99Ms: number;
  readP99Ms: number;
  tableBytes: number;
  deadTuples: number;
  hotRatio: number;
}

async function main(): Promise<void> {
  const database = await benchDatabase('pulse_soak');
  const { url } = database;
  const databaseLabel = database.label;
  const port = await freePort();
  log(`database: ${databaseLabel}; starting Pulse on 127.0.0.1:${port}`);
  const server = await startServer({ DATABASE_URL: url, JWT_SECRET: SECRET }, port);
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();

  const tokens = Array.from({ length: USERS }, (_, i) => jwt.sign({ sub: String(i + 1) }, SECRET, { algorithm: 'HS256', expiresIn: '1d' }));
  let heartbeatLatencies: number[] = [];
  let readLatencies: number[] = [];
  let errors = 0;
  let running = true;

  const errorKinds = new Map<string, number>();
  const timed = async (bucket: () => number[], request: () => Promise<number>) => {
    const started = performance.now();
    try {
      const status = await request();
      if (status >= 400) {
        errors++;
        errorKinds.set(String(status), (errorKinds.get(String(status)) ?? 0) + 1);
      }
    } catch (error) {
      errors++;
      const kind = (error as NodeJS.ErrnoException).code ?? 'error';
      errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1);
    }
    bucket().push(performance.now() - started);
  };
  // A bounded set of keep-alive connections, as a fleet of clients behind a load
  // balancer would present; requests beyond it queue in this process.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const post = (body: string, token?: string) =>
    new Promise<number>((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port, path: '/graphql', method: 'POST', agent, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(body);
    });

  // Each user heartbeats every 10 s at its own phase: a steady USERS/10 per second.
  const heartbeats = (async () => {
    const perTick = USERS / (HEARTBEAT_INTERVAL_MS / 100);
    let next = 0;
    while (running) {
      const tickStart = Date.now();
      for (let i = 0; i < perTick; i++) {
        const token = tokens[next++ % USERS]!;
        void timed(() => heartbeatLatencies, () => post('{"query":"mutation { heartbeat { online } }"}', token));
      }
      await sleep(Math.max(0, 100 - (Date.now() - tickStart)));
    }
  })();
  const reads = (async () => {
    while (running) {
      const tickStart = Date.now();
      for (let i = 0; i < READS_PER_SECOND / 10; i++) {
        const first = Math.floor(Math.random() * (USERS - 50)) + 1;
        const ids = Array.from({ length: 50 }, (_, k) => `"${first + k}"`).join(',');
        void timed(() => readLatencies, () => post(JSON.stringify({ query: `{ statuses(ids: [${ids}]) { online lastSeen } }` })));
      }
      await sleep(Math.max(0, 100 - (Date.now() - tickStart)));
    }
  })();

  const minutes: Minute[] = [];
  let last = await tableStats(admin);
  for (let minute = 1; minute <= MINUTES; minute++) {
    await sleep(60_000);
    const stats = await tableStats(admin);
    const updates = stats.updates - last.updates;
    const hot = stats.hotUpdates - last.hotUpdates;
    last = stats;
    const row: Minute = {
      minute,
      heartbeats: heartbeatLatencies.length,
      reads: readLatencies.length,
      errors,
      heartbeatP99Ms: percentile(heartbeatLatencies, 0.99),
      readP99Ms: percentile(readLatencies, 0.99),
      tableBytes: stats.bytes,
      deadTuples: stats.dead,
      hotRatio: updates > 0 ? hot / updates : NaN,
    };
    minutes.push(row);
    if (errorKinds.size > 0) log(`  errors by kind: ${JSON.stringify(Object.fromEntries(errorKinds))}`);
    errorKinds.clear();
    heartbeatLatencies = [];
    readLatencies = [];
    errors = 0;
    log(
      `minute ${minute}/${MINUTES}: ${(row.heartbeats / 60).toFixed(0)} heartbeats/s, ${(row.reads / 60).toFixed(0)} reads/s, ` +
        `p99 ${row.heartbeatP99Ms.toFixed(1)} / ${row.readP99Ms.toFixed(1)} ms, ${row.errors} errors, table ${(row.tableBytes / 1024 / 1024).toFixed(2)} MB, ` +
        `${row.deadTuples} dead, HOT ${row.hotRatio.toFixed(3)}`,
    );
  }

  running = false;
  await Promise.all([heartbeats, reads]);
  await sleep(1000);
  await admin.end();
  agent.destroy();
  await stopServer(server);
  await database.stop();
  report(minutes, databaseLabel);
}

async function tableStats(client: pg.Client) {
  const { rows } = await client.query(
    `select pg_total_relation_size('pulse') as bytes, coalesce(n_dead_tup, 0) as dead,
            coalesce(n_tup_upd, 0) as updates, coalesce(n_tup_hot_upd, 0) as hot
       from pg_stat_user_tables where relname = 'pulse'`,
  );
  const row = rows[0] ?? { bytes: 0, dead: 0, updates: 0, hot: 0 };
  return { bytes: Number(row.bytes), dead: Number(row.dead), updates: Number(row.updates), hotUpdates: Number(row.hot) };
}

function report(minutes: Minute[], databaseLabel: string): void {
  const lines = [
    `# Soak: ${MINUTES} min, ${USERS} users heartbeating every 10 s, ${READS_PER_SECOND} statuses reads/s of 50 ids`,
    '',
    `Database: ${databaseLabel}. Machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}. ${new Date().toISOString()}`,
    '',
    '| minute | heartbeats/s | reads/s | errors | heartbeat p99 ms | read p99 ms | table MB | dead tuples | HOT ratio |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...minutes.map(
      (m) =>
        `| ${m.minute} | ${(m.heartbeats / 60).toFixed(0)} | ${(m.reads / 60).toFixed(0)} | ${m.errors} | ${m.heartbeatP99Ms.toFixed(1)} | ${m.readP99Ms.toFixed(1)} | ${(m.tableBytes / 1024 / 1024).toFixed(2)} | ${m.deadTuples} | ${m.hotRatio.toFixed(3)} |`,
    ),
    '',
  ];
  const file = path.join(ROOT, 'bench', 'results', `soak-${new Date().toISOString().slice(0, 16).replace(/:/g, '')}.md`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, lines.join('\n'));
  log(`\n${lines.join('\n')}\nwritten to ${path.relative(ROOT, file)}`);
}

main().catch((error: unknown) => {
  process.stderr.write(`soak failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
