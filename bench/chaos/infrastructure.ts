/**
 * What a chaos run owns and breaks: an embedded PostgreSQL in a temporary folder
 * (so it may stop, restart and freeze it), optionally a redis-server on a free
 * port, and the Pulse processes. Nothing here touches a server the run did not
 * start itself.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/db/embedded-postgres';
import { silentLogger } from '../../src/logger';
import { freePort } from '../../test/support/free-port';
import { sleep } from '../support';

/**
 * The run's PostgreSQL. `url` stays the same across restarts (same folder, same
 * port), as a managed database's address does.
 */
export class ChaosDatabase {
  readonly url: string;
  #embedded: EmbeddedPostgres | null;
  #frozen: number[] = [];

  private constructor(
    readonly clusterDir: string,
    readonly port: number,
    embedded: EmbeddedPostgres,
  ) {
    this.#embedded = embedded;
    this.url = embedded.url;
  }

  static async start(folder: string): Promise<ChaosDatabase> {
    const clusterDir = path.join(folder, 'postgres');
    const port = await freePort();
    const embedded = await startEmbeddedPostgres({ clusterDir, port, logger: silentLogger });
    return new ChaosDatabase(clusterDir, port, embedded);
  }

  /** A session for the run's own statements; it never crashes the run when the server goes away. */
  async admin(): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 5000, application_name: 'chaos-admin' });
    client.on('error', () => {});
    await client.connect();
    return client;
  }

  /** PostgreSQL's fast shutdown (sessions ended, checkpoint written). */
  async stop(): Promise<void> {
    this.thaw();
    const embedded = this.#embedded;
    this.#embedded = null;
    await embedded?.stop();
  }

  async start(): Promise<void> {
    if (this.#embedded) return;
    this.#embedded = await startEmbeddedPostgres({ clusterDir: this.clusterDir, port: this.port, logger: silentLogger });
  }

  /**
   * SIGSTOP to the postmaster and every backend: connections stay open and
   * nothing answers, as in a network stall (no error reaches the clients, unlike
   * a shutdown). Each backend is its own process group (PostgreSQL calls setsid
   * in every child), so they are found by parent pid.
   */
  freeze(): void {
    const postmaster = this.#postmasterPid();
    if (!postmaster) throw new Error('PostgreSQL is not running: nothing to freeze');
    process.kill(postmaster, 'SIGSTOP');
    this.#frozen = [postmaster, ...childrenOf(postmaster)];
    for (const pid of this.#frozen.slice(1)) signal(pid, 'SIGSTOP');
  }

  /** SIGCONT to everything {@link freeze} stopped (safe to call twice). */
  thaw(): void {
    for (const pid of this.#frozen) signal(pid, 'SIGCONT');
    this.#frozen = [];
  }

  #postmasterPid(): number | null {
    try {
      const pid = Number(fs.readFileSync(path.join(this.clusterDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    } catch {
      return null;
    }
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    /* already gone */
  }
}

// Private: Linux only (/proc), like the embedded PostgreSQL this run drives.
function childrenOf(parent: number): number[] {
  const children: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command may contain spaces and parentheses: fields start after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === parent) children.push(Number(entry));
    } catch {
      /* exited meanwhile */
    }
  }
  return children;
}

/** A redis-server of the run's own, on a free port, without persistence. */
export class ChaosRedis {
  #child: ChildProcess | null = null;

  private constructor(readonly port: number) {}

  /** Null when no `redis-server` binary is installed. */
  static async start(): Promise<ChaosRedis | null> {
    if (spawnSync('redis-server', ['--version']).status !== 0) return null;
    const redis = new ChaosRedis(await freePort());
    await redis.start();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    this.#child = child;
    for (let i = 0; i < 100; i++) {
      if (await canConnect(this.port)) return;
      if (child.exitCode !== null) break;
      await sleep(50);
    }
    throw new Error(`redis-server did not start on port ${this.port}`);
  }

  /** For an exit handler: no waiting. */
  killNow(): void {
    this.#child?.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface PulseProcessOptions {
  name: string;
  port: number;
  /** `node` arguments that start Pulse (the build, or the sources under tsx). */
  command: string[];
  cwd: string;
  env: Record<string, string>;
  /** Every line the process writes goes here (appended across restarts). */
  logFile: string;
  /** An exit the run did not cause. */
  onUnexpectedExit(code: number | null, signal: NodeJS.Signals | null, lastLines: string[]): void;
}

/** Resident memory and open file descriptors of a process, from /proc. */
export interface ResourceSample {
  at: number;
  rssBytes: number;
  openFds: number;
}

/**
 * One Pulse process. `up` is false from the moment the run kills it until it
 * answers /readyz again, which is when the load goes back to it (as a load
 * balancer's health check would).
 */
export class PulseProcess {
  #child: ChildProcess | null = null;
  #lastLines: string[] = [];
  #log: fs.WriteStream;
  /** Each start is a new incarnation; resource samples are compared within one. */
  incarnation = 0;
  up = false;
  /** Set while the run kills or stops it: the exit that follows is expected. */
  expectingExit = false;
  /**
   * From the run's SIGKILL until the process is ready again: a request that fails
   * to connect meanwhile was cut by the run, not refused by a broken Pulse.
   */
  downByRun = false;
  /** Log lines longer than 2 KB (an object graph dumped into the log). */
  longLogLines = 0;
  logLines = 0;

  constructor(readonly options: PulseProcessOptions) {
    this.#log = fs.createWriteStream(options.logFile, { flags: 'a' });
  }

  get name(): string {
    return this.options.name;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Spawns the process and resolves once /readyz answers 200. */
  async start(timeoutMs = 60_000): Promise<void> {
    const { options } = this;
    this.incarnation++;
    this.expectingExit = false;
    const child = spawn(process.execPath, options.command, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env, PORT: String(options.port), HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child = child;
    let partial = '';
    const onData = (chunk: Buffer) => {
      this.#log.write(chunk);
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        this.logLines++;
        if (line.length > 2048) this.longLogLines++;
        this.#lastLines.push(line.length > 500 ? `${line.slice(0, 500)}...` : line);
      }
      if (this.#lastLines.length > 20) this.#lastLines.splice(0, this.#lastLines.length - 20);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code, signal) => {
      this.up = false;
      if (this.#child === child) this.#child = null;
      if (!this.expectingExit) options.onUnexpectedExit(code, signal, [...this.#lastLines]);
    });

    const started = Date.now();
    while (Date.now() - started < timeoutMs) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`Pulse ${options.name} exited during startup: ${this.#lastLines.join('\n')}`);
      try {
        const response = await fetch(`http://127.0.0.1:${options.port}/readyz`);
        await response.arrayBuffer();
        if (response.ok) {
          this.up = true;
          this.downByRun = false;
          return;
        }
      } catch {
        /* not listening yet */
      }
      await sleep(100);
    }
    throw new Error(`Pulse ${options.name} did not become ready within ${timeoutMs / 1000} s`);
  }

  /** SIGKILL: no shutdown, no flush; in-flight requests are cut. */
  async kill(): Promise<void> {
    this.downByRun = true;
    await this.#end('SIGKILL');
  }

  /** SIGTERM and wait for the exit; resolves with the exit code. */
  async stop(): Promise<number | null> {
    this.downByRun = true;
    return this.#end('SIGTERM');
  }

  #end(signalName: NodeJS.Signals): Promise<number | null> {
    const child = this.#child;
    this.up = false;
    this.expectingExit = true;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child?.exitCode ?? null);
    return new Promise((resolve) => {
      child.once('exit', (code) => resolve(code));
      child.kill(signalName);
    });
  }

  sample(): ResourceSample | null {
    const pid = this.pid;
    if (!pid || !this.up) return null;
    try {
      const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
      return { at: Date.now(), rssBytes: rssKb * 1024, openFds: fs.readdirSync(`/proc/${pid}/fd`).length };
    } catch {
      return null;
    }
  }

  closeLog(): Promise<void> {
    return new Promise((resolve) => this.#log.end(resolve));
  }
}
