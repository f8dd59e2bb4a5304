/**
 * What Pulse's benchmarks share: a database of their own (on DATABASE_URL's
 * server, or an embedded PostgreSQL in a temporary folder) undone even when the
 * bench is interrupted, Pulse started as a separate process on loopback, progress
 * output, and the few statistics every bench reports (percentile, median).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from '../test/support/free-port';
import { createScratchDatabase, startScratchPostgres, type ScratchDatabase } from '../test/support/scratch-postgres';

export const ROOT = path.resolve(__dirname, '..');
export { freePort };

export interface BenchServer {
  /**
   * A database on the server that the bench may connect to and create its own
   * databases next to (`postgres` on the embedded server; DATABASE_URL's otherwise).
   */
  url: string;
  /** For reports: which server. */
  label: string;
  /** Stops the embedded server and removes its folder; leaves DATABASE_URL's server alone. */
  stop(): Promise<void>;
}

/**
 * The PostgreSQL a bench runs on: DATABASE_URL's server, or an embedded one in a
 * temporary folder. A bench interrupted (Ctrl-C, SIGTERM) still stops the
 * embedded server and removes its folder (see {@link undoOnInterrupt}), instead
 * of leaving a PostgreSQL running in /tmp.
 */
export async function benchServer(prefix: string): Promise<BenchServer> {
  if (process.env.DATABASE_URL) {
    const url = process.env.DATABASE_URL;
    const own = new URL(url);
    return { url, label: `PostgreSQL ${await serverVersion(url)} at ${own.host}`, stop: async () => {} };
  }
  // Registered before the start: an interrupt during initdb still removes the
  // folder (the start fails and cleans up), or stops the server once it is up.
  const starting = startScratchPostgres(prefix);
  // A start that failed has removed its folder already: nothing left to stop.
  const forget = undoOnInterrupt("stopping the bench's PostgreSQL", () => starting.then((server) => server.stop(), () => {}));
  const embedded = await starting.catch((error: unknown) => {
    forget();
    throw error;
  });
  return {
    url: embedded.url,
    label: `embedded PostgreSQL ${await serverVersion(embedded.url)}`,
    stop: async () => {
      forget();
      await embedded.stop();
    },
  };
}

/**
 * A database of the bench's own on `serverUrl`'s server (empty: Pulse migrates
 * it when it starts), dropped by `drop()` or when the bench is interrupted.
 */
export async function benchScratchDatabase(serverUrl: string, prefix: string): Promise<ScratchDatabase> {
  const database = await createScratchDatabase(serverUrl, prefix);
  const forget = undoOnInterrupt(`dropping database ${database.name}`, database.drop);
  return {
    ...database,
    drop: async () => {
      forget();
      await database.drop();
    },
  };
}

export interface BenchDatabase {
  /** Connection string of a database created for this run. */
  url: string;
  /** For reports: which server. */
  label: string;
  /** Drops the database and stops the embedded server. */
  stop(): Promise<void>;
}

/**
 * A fresh, empty database for one run on the {@link benchServer}: nothing else
 * on DATABASE_URL's server is touched.
 */
export async function benchDatabase(prefix: string): Promise<BenchDatabase> {
  const server = await benchServer(prefix.replace(/_/g, '-'));
  const database = await benchScratchDatabase(server.url, prefix).catch(async (error: unknown) => {
    await server.stop();
    throw error;
  });
  return {
    url: database.url,
    label: server.label,
    stop: async () => {
      await database.drop();
      await server.stop();
    },
  };
}

// Private: what an interrupted bench must undo, last registered first.
const interruptSteps: Array<{ what: string; undo: () => Promise<void> }> = [];

/**
 * Registers `undo` (stopping a server, dropping a database) to run if the bench
 * is interrupted by SIGINT or SIGTERM, or abandoned by {@link abandonBench};
 * returns the function that unregisters it, for when the bench undoes it itself.
 */
export function undoOnInterrupt(what: string, undo: () => Promise<void>): () => void {
  const step = { what, undo };
  interruptSteps.push(step);
  if (interruptSteps.length === 1) {
    process.once('SIGINT', interrupted);
    process.once('SIGTERM', interrupted);
  }
  return () => {
    const index = interruptSteps.indexOf(step);
    if (index >= 0) interruptSteps.splice(index, 1);
    if (interruptSteps.length === 0) {
      process.removeListener('SIGINT', interrupted);
      process.removeListener('SIGTERM', interrupted);
    }
  };
}

/**
 * Undoes what the bench registered with {@link undoOnInterrupt}, last first, then
 * exits with `code`: for a bench that gives up (a watchdog), and for signals.
 */
export async function abandonBench(why: string, code: number): Promise<never> {
  process.removeListener('SIGINT', interrupted);
  process.removeListener('SIGTERM', interrupted);
  // A second Ctrl-C while this runs ends the process at once (the default).
  for (const step of interruptSteps.splice(0).reverse()) {
    log(`${why}: ${step.what}`);
    await step.undo().catch((error: unknown) => log(`${why}: ${step.what} failed: ${String(error)}`));
  }
  process.exit(code);
}

// Private: the signal handler (one function, so it can be removed).
function interrupted(signal: NodeJS.Signals): void {
  log('');
  void abandonBench(signal, 130);
}

// Private: `15.4`, from the server itself.
async function serverVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return ((await client.query('show server_version')).rows[0].server_version as string).split(' ')[0]!;
  } finally {
    await client.end();
  }
}

/**
 * Starts `script` (Pulse's src/main.ts by default) as its own process on
 * 127.0.0.1:`port` and resolves once /readyz answers 200 (or answers at all,
 * with `anyAnswerIsReady`).
 */
export function startServer(
  env: Record<string, string>,
  port: number,
  script = 'src/main.ts',
  options: { args?: string[]; anyAnswerIsReady?: boolean } = {},
): Promise<ChildProcess> {
  // BENCH_SERVER=dist runs the ahead-of-time build (`npm run build`) instead of
  // the TypeScript sources under tsx.
  const args = process.env.BENCH_SERVER === 'dist' ? [path.join('dist', script.replace(/\.ts$/, '.js'))] : ['--import', 'tsx', script];
  // BENCH_SERVER_NODE_OPTIONS adds flags to the servers only (e.g. `--cpu-prof
  // --cpu-prof-dir=/tmp/prof`, which NODE_OPTIONS refuses).
  const nodeOptions = process.env.BENCH_SERVER_NODE_OPTIONS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeOptions, ...args, ...(options.args ?? [])], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', NODE_ENV: 'production', ...env },
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    child.once('exit', (code) => reject(new Error(`Pulse exited with ${code}`)));
    const poll = async () => {
      for (let i = 0; i < 600; i++) {
        try {
          const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
          if (options.anyAnswerIsReady) return resolve(child);
          // With PULSE_WORKERS > 1 the instance is ready with its first worker;
          // a measurement waits for all of them.
          const body = ready.ok ? ((await ready.json()) as { workers?: Array<{ ready: boolean }> }) : null;
          if (body && (!body.workers || body.workers.every((w) => w.ready))) return resolve(child);
        } catch {
          /* not listening yet */
        }
        await sleep(100);
      }
      reject(new Error('Pulse did not become ready'));
    };
    void poll();
  });
}

export function stopServer(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.removeAllListeners('exit');
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

export function machineLabel(): string {
  return `${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The value below which a share `p` (0.99 for p99) of `values` lie: the
 * nearest-rank percentile, one of the values itself; NaN for no values.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

/** The middle value (the mean of the two middle ones for an even count); NaN for no values. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export function log(message: string): void {
  process.stdout.write(`${message}\n`);
}

/** CPU time (user + system) a process has used so far, in ms, from /proc; null where there is none. */
export function processCpuMs(pid: number | undefined): number | null {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime, fields 14 and 15 of the line, in clock ticks (100 a second).
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return null;
  }
}
