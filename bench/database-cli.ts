/**
 * `npm run bench:db`: the database bench (bench/database.ts) from the command line.
 *
 *   npm run bench:db                                   # embedded PostgreSQL, 1M and 10M rows
 *   BENCH_ROWS_SMALL=100000 BENCH_ROWS_LARGE=1000000 BENCH_SECONDS=3 npm run bench:db
 *   DATABASE_URL=postgres://user@127.0.0.1:5432/postgres npm run bench:db
 *
 * With DATABASE_URL it creates a database of its own on that server and drops it at
 * the end; without, it starts an embedded PostgreSQL in a temporary folder and
 * removes it. Writes bench/results/database-<timestamp>.md and .json.
 *
 * Settings (environment): BENCH_ROWS_SMALL (1000000), BENCH_ROWS_LARGE (10000000),
 * BENCH_SECONDS per timed write run (10), BENCH_CLIENTS (8), BENCH_READ_CALLS per size
 * and round (3000), BENCH_READ_CLIENTS (4), BENCH_ROUNDS (3), BENCH_PGBENCH (a path, or
 * `off`; default: pgbench on PATH), BENCH_MAX_MINUTES (30): past it the bench gives up
 * and exits 1. The full run takes about 7 minutes on 2 cores; the quick run above,
 * under a minute.
 * Loopback only; stops by itself.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres } from '../src/db/embedded-postgres';
import { redactUrl } from '../src/db/database';
import { silentLogger } from '../src/logger';
import { freePort } from '../test/support/free-port';
import { databaseBenchMarkdown, runDatabaseBench } from './database';

const ROOT = path.resolve(__dirname, '..');

async function main(): Promise<void> {
  const maxMinutes = numberSetting('BENCH_MAX_MINUTES') ?? 30;
  // A bound on the whole run, whatever happens to the server: the embedded one is
  // stopped by its exit hook; a database left on DATABASE_URL's server is named.
  const watchdog = setTimeout(() => {
    log(`database bench: still running after ${maxMinutes} min, giving up (a pulse_bench_${process.pid}_* database may be left to drop)`);
    process.exit(1);
  }, maxMinutes * 60_000);
  watchdog.unref();

  const { url, label, stop } = await server();
  log(`database bench on ${label}`);
  try {
    const pgbench = process.env.BENCH_PGBENCH;
    const result = await runDatabaseBench({
      url,
      progress: (line) => log(`[${new Date().toISOString().slice(11, 19)}] ${line}`),
      rowsSmall: numberSetting('BENCH_ROWS_SMALL'),
      rowsLarge: numberSetting('BENCH_ROWS_LARGE'),
      seconds: numberSetting('BENCH_SECONDS'),
      clients: numberSetting('BENCH_CLIENTS'),
      readCalls: numberSetting('BENCH_READ_CALLS'),
      readClients: numberSetting('BENCH_READ_CLIENTS'),
      rounds: numberSetting('BENCH_ROUNDS'),
      pgbench: pgbench === 'off' ? null : pgbench || undefined,
    });
    const markdown = databaseBenchMarkdown(result);
    const stem = path.join(ROOT, 'bench', 'results', `database-${result.startedAt.slice(0, 16).replace(/:/g, '')}`);
    fs.mkdirSync(path.dirname(stem), { recursive: true });
    fs.writeFileSync(`${stem}.md`, markdown);
    fs.writeFileSync(`${stem}.json`, `${JSON.stringify({ database: label, ...result }, null, 2)}\n`);
    log(`\n${markdown}\nwritten to ${path.relative(ROOT, stem)}.md and .json`);
  } finally {
    await stop();
    clearTimeout(watchdog);
  }
}

// Private: DATABASE_URL's server, or an embedded PostgreSQL in a temporary folder.
async function server(): Promise<{ url: string; label: string; stop: () => Promise<void> }> {
  if (process.env.DATABASE_URL) {
    return { url: process.env.DATABASE_URL, label: redactUrl(process.env.DATABASE_URL), stop: async () => {} };
  }
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-bench-db-'));
  // As root, PostgreSQL runs as the postgres user, which must be able to enter the
  // folder; mkdtemp makes it 0700.
  fs.chmodSync(folder, 0o755);
  const embedded = await startEmbeddedPostgres({ clusterDir: path.join(folder, 'postgres'), port: await freePort(), logger: silentLogger });
  return {
    url: embedded.url,
    label: 'embedded PostgreSQL',
    stop: async () => {
      await embedded.stop();
      fs.rmSync(folder, { recursive: true, force: true });
    },
  };
}

function numberSetting(name: string): number | undefined {
  const text = process.env[name];
  if (text === undefined || text === '') return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(text)}`);
  return value;
}

function log(message: string): void {
  process.stdout.write(`${message}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`database bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
