/**
 * A real primary and a real streaming replica of it, made for one test file from
 * the machine's PostgreSQL 15 server binaries: initdb a primary in a temporary
 * folder (wal_level replica, a replication line in pg_hba), `pg_basebackup -R`
 * into another, `pg_ctl` start both on free ports. The test owns both servers:
 * it may stop, start or pause them. {@link StreamingReplica.destroy} stops both and
 * removes the folder; a process exit stops them too, so none outlives the run.
 *
 * As root, the servers run as the `postgres` OS user (PostgreSQL never runs as
 * root).
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './free-port';

const execFileAsync = promisify(execFile);
// The postgres user may not be able to enter the current folder (a checkout
// under /root): every command runs from /tmp.
const run = (command: string, args: string[]) => execFileAsync(command, args, { cwd: os.tmpdir() });

/** Where the server binaries are expected (Debian's postgresql-15 package). */
export const POSTGRES_BIN = process.env.PULSE_TEST_POSTGRES_BIN ?? '/usr/lib/postgresql/15/bin';

/** Why a streaming replica cannot be made here, or null when it can. */
export function streamingReplicaUnavailable(): string | null {
  for (const tool of ['initdb', 'pg_ctl', 'pg_basebackup', 'postgres']) {
    if (!fs.existsSync(path.join(POSTGRES_BIN, tool))) {
      return `${path.join(POSTGRES_BIN, tool)} is missing (install the postgresql-15 server package, or set PULSE_TEST_POSTGRES_BIN)`;
    }
  }
  if (isRoot()) {
    try {
      execFileSync('id', ['-u', 'postgres'], { stdio: 'ignore' });
    } catch {
      return 'running as root, and there is no `postgres` OS user to run PostgreSQL as';
    }
  }
  return null;
}

export interface StreamingReplica {
  /** Connection string of `database` on the primary. */
  primaryUrl(database?: string): string;
  /** Connection string of `database` on the replica. */
  replicaUrl(database?: string): string;
  /** Stops the replica (fast shutdown), as a replica host going away would. */
  stopReplica(): Promise<void>;
  /** Starts it again; it reconnects to the primary and catches up. */
  startReplica(): Promise<void>;
  /** Runs one statement on `database` of the primary or the replica. */
  query<R extends pg.QueryResultRow = any>(server: 'primary' | 'replica', text: string, values?: unknown[], database?: string): Promise<R[]>;
  /** Resolves once the replica has replayed everything the primary has written so far. */
  caughtUp(): Promise<void>;
  /** Stops both servers and removes their folder. Safe to call twice. */
  destroy(): Promise<void>;
}

/**
 * Starts a primary and a streaming replica of it, with `database` created (and
 * pg_stat_statements in it, so tests can count the statements each server ran).
 */
export async function startStreamingReplica(database = 'pulse'): Promise<StreamingReplica> {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-replica-'));
  // mkdtemp makes it 0700; the postgres user must be able to enter it.
  fs.chmodSync(folder, 0o755);
  const primaryDir = path.join(folder, 'primary');
  const replicaDir = path.join(folder, 'replica');
  const sockets = path.join(folder, 'sockets');
  fs.mkdirSync(sockets);
  if (isRoot()) execFileSync('chown', ['postgres:', folder, sockets]);
  const [primaryPort, replicaPort] = [await freePort(), await freePort()];

  const started: string[] = [];
  const stopAll = () => {
    for (const dir of started.splice(0)) {
      try {
        execFileSync(...asPostgres(path.join(POSTGRES_BIN, 'pg_ctl'), ['-D', dir, '-m', 'immediate', '-w', 'stop']), {
          stdio: 'ignore',
          cwd: os.tmpdir(),
        });
      } catch {
        // Already stopped.
      }
    }
  };
  // Even if the test run is torn down without afterAll, no server outlives it,
  // nor its folder.
  const onExit = () => {
    stopAll();
    fs.rmSync(folder, { recursive: true, force: true });
  };
  process.once('exit', onExit);

  const pgCtl = (dir: string, ...args: string[]) => run(...asPostgres(path.join(POSTGRES_BIN, 'pg_ctl'), ['-D', dir, ...args]));
  const start = async (dir: string) => {
    await pgCtl(dir, '-l', path.join(folder, `${path.basename(dir)}.log`), '-w', '-t', '60', 'start');
    if (!started.includes(dir)) started.push(dir);
  };
  const settings = (port: number) =>
    [
      `port = ${port}`,
      `listen_addresses = '127.0.0.1'`,
      `unix_socket_directories = '${sockets}'`,
      'wal_level = replica',
      'max_wal_senders = 4',
      'hot_standby = on',
      'max_connections = 40',
      "shared_preload_libraries = 'pg_stat_statements'",
      // A throwaway cluster: durability buys nothing here, and the machine is shared.
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      '',
    ].join('\n');

  const url = (port: number, db: string) => `postgres://postgres@127.0.0.1:${port}/${db}`;
  const query = async (server: 'primary' | 'replica', text: string, values: unknown[] = [], db = database) => {
    const client = new pg.Client({ connectionString: url(server === 'primary' ? primaryPort : replicaPort, db) });
    client.on('error', () => {});
    await client.connect();
    try {
      return (await client.query(text, values)).rows;
    } finally {
      await client.end();
    }
  };

  try {
    await run(...asPostgres(path.join(POSTGRES_BIN, 'initdb'), ['-D', primaryDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']));
    fs.appendFileSync(primaryDir + '/postgresql.conf', settings(primaryPort));
    fs.appendFileSync(primaryDir + '/pg_hba.conf', 'host replication postgres 127.0.0.1/32 trust\n');
    await start(primaryDir);
    await query('primary', `create database ${database}`, [], 'postgres');
    await query('primary', 'create extension pg_stat_statements');

    await run(
      ...asPostgres(path.join(POSTGRES_BIN, 'pg_basebackup'), [
        '-h', '127.0.0.1', '-p', String(primaryPort), '-U', 'postgres',
        '-D', replicaDir, '-R', '-X', 'stream', '--checkpoint=fast',
      ]),
    );
    // The copy carries the primary's settings; only the port differs.
    fs.appendFileSync(replicaDir + '/postgresql.conf', `port = ${replicaPort}\n`);
    await start(replicaDir);
  } catch (error) {
    stopAll();
    fs.rmSync(folder, { recursive: true, force: true });
    throw new Error(`could not make a streaming replica in ${folder}: ${(error as Error).message}`, { cause: error });
  }

  let destroyed = false;
  const replica: StreamingReplica = {
    primaryUrl: (db = database) => url(primaryPort, db),
    replicaUrl: (db = database) => url(replicaPort, db),
    async stopReplica() {
      await pgCtl(replicaDir, '-m', 'fast', '-w', 'stop');
      started.splice(started.indexOf(replicaDir), 1);
    },
    startReplica: () => start(replicaDir),
    query,
    async caughtUp() {
      // The insert position, not pg_current_wal_lsn() (the write position): with
      // synchronous_commit off, a commit already answered may not be written yet.
      const [{ lsn }] = await query('primary', 'select pg_current_wal_insert_lsn()::text as lsn');
      for (;;) {
        const [{ done }] = await query('replica', 'select pg_last_wal_replay_lsn() >= $1::pg_lsn as done', [lsn]);
        if (done) return;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      stopAll();
      process.removeListener('exit', onExit);
      fs.rmSync(folder, { recursive: true, force: true });
    },
  };
  return replica;
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

// Private: a command line that runs as the postgres OS user when we are root.
function asPostgres(command: string, args: string[]): [string, string[]] {
  return isRoot() ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
}
