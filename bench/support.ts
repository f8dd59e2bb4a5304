/**
 * What Pulse's benchmarks share: a database of their own (on DATABASE_URL's
 * server, or an embedded PostgreSQL in a temporary folder), Pulse started as a
 * separate process on loopback, and progress output.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../src/db/embedded-postgres';
import { silentLogger } from '../src/logger';
import { freePort } from '../test/support/free-port';

export const ROOT = path.resolve(__dirname, '..');
export { freePort };

export interface BenchDatabase {
  /** Connection string of a database created for this run. */
  url: string;
  /** For reports: which server. */
  label: string;
  /** Drops the database (or stops the embedded server). */
  stop(): Promise<void>;
}

/**
 * A fresh database for one run: created on DATABASE_URL's server and dropped
 * afterwards, so nothing else there is touched; or an embedded PostgreSQL.
 */
export async function benchDatabase(prefix: string): Promise<BenchDatabase> {
  if (process.env.DATABASE_URL) {
    const url = process.env.DATABASE_URL;
    const name = `${prefix}_${process.pid}_${Date.now()}`;
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`create database ${name}`);
    const version = (await admin.query('show server_version')).rows[0].server_version as string;
    await admin.end();
    const own = new URL(url);
    own.pathname = `/${name}`;
    return {
      url: own.toString(),
      label: `PostgreSQL ${version.split(' ')[0]} at ${own.host}`,
      stop: async () => {
        const c = new pg.Client({ connectionString: url });
        await c.connect();
        await c.query(`drop database if exists ${name} with (force)`);
        await c.end();
      },
    };
  }
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
  // As root, PostgreSQL runs as the `postgres` user, which must enter the folder.
  fs.chmodSync(folder, 0o755);
  const embedded = await startEmbeddedPostgres({ clusterDir: path.join(folder, 'postgres'), port: await freePort(), logger: silentLogger });
  const client = new pg.Client({ connectionString: embedded.url });
  await client.connect();
  const version = (await client.query('show server_version')).rows[0].server_version as string;
  await client.end();
  const stop = async () => {
    process.removeListener('SIGINT', interrupted);
    process.removeListener('SIGTERM', interrupted);
    await embedded.stop();
    fs.rmSync(folder, { recursive: true, force: true });
  };
  // A bench stopped with Ctrl-C or a timeout still stops its server and removes
  // its folder, instead of leaving a PostgreSQL running in /tmp.
  const interrupted = (signal: NodeJS.Signals) => {
    log(`\n${signal}: stopping the bench's PostgreSQL`);
    void stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  return { url: embedded.url, label: `embedded PostgreSQL ${version.split(' ')[0]}`, stop };
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
