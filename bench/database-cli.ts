/**
 * `npm run bench:db`: the database bench from the command line, in one of two modes.
 *
 * The comparison (bench/database/run.ts): write ceilings, size per row, growth.
 *
 *   npm run bench:db                                   # embedded PostgreSQL, 1M and 10M rows
 *   BENCH_ROWS_SMALL=100000 BENCH_ROWS_LARGE=1000000 BENCH_SECONDS=3 npm run bench:db
 *   DATABASE_URL=postgres://user@127.0.0.1:5432/postgres npm run bench:db
 *
 * Settings (environment): BENCH_ROWS_SMALL (1000000), BENCH_ROWS_LARGE (10000000),
 * BENCH_SECONDS per timed write run (10), BENCH_CLIENTS (8), BENCH_READ_CALLS per size
 * and round (3000), BENCH_READ_CLIENTS (4), BENCH_ROUNDS (3), BENCH_PGBENCH (a path, or
 * `off`; default: pgbench on PATH). The full run takes about 7 minutes on 2 cores; the
 * quick run above, under a minute.
 *
 * Sustained (bench/database/sustained.ts): heartbeats at a fixed rate through
 * Pulse's batched statement, for minutes, reported per minute.
 *
 *   npm run bench:db -- --sustained --minutes 10 --rate 100000 --rows 1000000
 *
 * (those are its defaults). Pulse's PRESENCE_* and HEARTBEAT_* variables apply, as
 * for Pulse itself.
 *
 * Both: with DATABASE_URL, databases of their own are created on that server and
 * dropped at the end; without, an embedded PostgreSQL runs in a temporary folder
 * and is removed. Ctrl-C (or SIGTERM) drops and stops them too. BENCH_MAX_MINUTES
 * (30, or the sustained run's minutes + 30): past it the bench undoes the same and
 * exits 1. Writes bench/results/database-<timestamp>.md and .json
 * (database-sustained-<timestamp> in the sustained mode). Loopback only; stops by itself.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { databaseBenchMarkdown } from './database/report';
import { runDatabaseBench } from './database/run';
import { runSustained } from './database/sustained';
import { sustainedMarkdown } from './database/sustained-report';
import { abandonBench, benchServer, log, ROOT } from './support';

async function main(): Promise<void> {
  const args = commandLine();
  const maxMinutes = numberSetting('BENCH_MAX_MINUTES') ?? (args.sustained ? args.minutes + 30 : 30);
  // A bound on the whole run, whatever happens to the server: the same undo as Ctrl-C.
  const watchdog = setTimeout(() => void abandonBench(`still running after ${maxMinutes} min, giving up`, 1), maxMinutes * 60_000);
  watchdog.unref();

  const server = await benchServer('pulse-bench-db');
  log(`database bench on ${server.label}`);
  const progress = (line: string) => log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
  try {
    let markdown: string;
    let json: { startedAt: string };
    let name: string;
    if (args.sustained) {
      const result = await runSustained({ url: server.url, progress, minutes: args.minutes, rate: args.rate, rows: args.rows, env: process.env });
      [markdown, json, name] = [sustainedMarkdown(result), result, 'database-sustained'];
    } else {
      const pgbench = process.env.BENCH_PGBENCH;
      const result = await runDatabaseBench({
        url: server.url,
        progress,
        rowsSmall: numberSetting('BENCH_ROWS_SMALL'),
        rowsLarge: numberSetting('BENCH_ROWS_LARGE'),
        seconds: numberSetting('BENCH_SECONDS'),
        clients: numberSetting('BENCH_CLIENTS'),
        readCalls: numberSetting('BENCH_READ_CALLS'),
        readClients: numberSetting('BENCH_READ_CLIENTS'),
        rounds: numberSetting('BENCH_ROUNDS'),
        pgbench: pgbench === 'off' ? null : pgbench || undefined,
      });
      [markdown, json, name] = [databaseBenchMarkdown(result), result, 'database'];
    }
    const stem = path.join(ROOT, 'bench', 'results', `${name}-${json.startedAt.slice(0, 16).replace(/:/g, '')}`);
    fs.mkdirSync(path.dirname(stem), { recursive: true });
    fs.writeFileSync(`${stem}.md`, markdown);
    fs.writeFileSync(`${stem}.json`, `${JSON.stringify({ database: server.label, ...json }, null, 2)}\n`);
    log(`\n${markdown}\nwritten to ${path.relative(ROOT, stem)}.md and .json`);
  } finally {
    await server.stop();
    clearTimeout(watchdog);
  }
}

// Private: the command line; a wrong option or value ends the bench before anything starts.
function commandLine(): { sustained: boolean; minutes: number; rate: number; rows: number } {
  const { values } = parseArgs({
    options: {
      sustained: { type: 'boolean', default: false },
      minutes: { type: 'string' },
      rate: { type: 'string' },
      rows: { type: 'string' },
    },
  });
  const given = [values.minutes, values.rate, values.rows].some((value) => value !== undefined);
  if (given && !values.sustained) throw new UsageError('--minutes, --rate and --rows belong to the sustained mode: add --sustained');
  const positive = (name: string, text: string | undefined, fallback: number) => {
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isFinite(value) || value <= 0) throw new UsageError(`--${name} must be a positive number, got ${JSON.stringify(text)}`);
    return value;
  };
  return {
    sustained: values.sustained,
    minutes: positive('minutes', values.minutes, 10),
    rate: Math.round(positive('rate', values.rate, 100_000)),
    rows: Math.round(positive('rows', values.rows, 1_000_000)),
  };
}

class UsageError extends Error {}

function numberSetting(name: string): number | undefined {
  const text = process.env[name];
  if (text === undefined || text === '') return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new UsageError(`${name} must be a positive number, got ${JSON.stringify(text)}`);
  return value;
}

main().catch((error: unknown) => {
  const known = error instanceof UsageError || (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'));
  process.stderr.write(`database bench failed: ${known ? error.message : error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
