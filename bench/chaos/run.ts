/**
 * A chaos run: two Pulse processes on one PostgreSQL that the run owns, a steady
 * load through both, and a fault every few seconds. At the end it checks what a
 * user would notice (see {@link Invariant}) per fault kind and in total.
 *
 * Used by `npm run chaos` (bench/chaos.ts) and, in a short form, by
 * test/chaos.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { median, sleep } from '../support';
import { ChaosDatabase, ChaosRedis, PulseProcess, type ResourceSample } from './infrastructure';
import { FAULT_KINDS, Ledger, type FaultKind, type Window } from './ledger';
import { Load, MAX_IN_FLIGHT } from './load';
import { freePort } from '../../test/support/free-port';

const ROOT = path.resolve(__dirname, '..', '..');
const JWT_SECRET = 'chaos-secret-that-is-at-least-32-characters';
/** The recovery the issue asks for: from the fault's end to the first success. */
export const RECOVERY_TARGET_SECONDS = 5;

export interface ChaosOptions {
  /** How long faults keep coming (the end checks take about a threshold more). */
  minutes: number;
  /** Faults in this order instead of random picks (the short version in npm test). */
  sequence?: FaultKind[];
  /** Seconds between one fault's end and the next fault, picked between the two. */
  gapSeconds: [number, number];
  /** Load before the first fault. */
  warmupSeconds: number;
  users: number;
  heartbeatIntervalMs: number;
  readsPerSecond: number;
  subscriptions: number;
  idsPerSubscription: number;
  watchedUsers: number;
  thresholdSeconds: number;
  minWriteGapSeconds: number;
  /** Pulse's DB_STATEMENT_TIMEOUT_MS; the row lock is held 1 s longer. */
  statementTimeoutMs: number;
  /** `dist`: the production build (npm run build); `tsx`: the sources. */
  server: 'dist' | 'tsx';
  /** Start a redis-server of the run's own (when installed) and restart it as a fault. */
  redis: boolean;
  seed: number;
  /** Pulse's logs go here. */
  logDir: string;
  log(line: string): void;
}

export const DEFAULT_OPTIONS: Omit<ChaosOptions, 'logDir' | 'log' | 'seed'> = {
  minutes: 3,
  gapSeconds: [10, 20],
  warmupSeconds: 10,
  users: 2000,
  heartbeatIntervalMs: 10_000,
  readsPerSecond: 20,
  subscriptions: 50,
  idsPerSubscription: 20,
  watchedUsers: 200,
  thresholdSeconds: 30,
  minWriteGapSeconds: 5,
  statementTimeoutMs: 2000,
  server: 'dist',
  redis: true,
};

/** One property the run promises; `held: null` when the run was too short to judge it. */
export interface Invariant {
  name: string;
  held: boolean | null;
  detail: string;
  /** A timing (recovery within the target): reported by tests, never asserted by them. */
  timing?: boolean;
}

export interface ChaosResult {
  windows: Window[];
  invariants: Invariant[];
  held: boolean;
  /** The report as Markdown: the per-fault table and the invariants. */
  report: string;
}

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const random = mulberry32(options.seed);
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-chaos-'));
  // As root, PostgreSQL runs as the `postgres` user, which must enter the folder.
  fs.chmodSync(folder, 0o755);
  fs.mkdirSync(options.logDir, { recursive: true });
  const { log } = options;

  let database: ChaosDatabase | null = null;
  let redis: ChaosRedis | null = null;
  const processes: PulseProcess[] = [];
  let load: Load | null = null;
  let sampler: NodeJS.Timeout | null = null;
  // Whatever happens to this run, nothing it started outlives it: a frozen
  // PostgreSQL is thawed and children are killed even on an exception or exit.
  const onExit = () => {
    database?.thaw();
    redis?.killNow();
    for (const p of processes) {
      try {
        if (p.pid) process.kill(p.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  };
  process.once('exit', onExit);

  try {
    log(`chaos: seed ${options.seed}; starting PostgreSQL in ${folder}`);
    database = await ChaosDatabase.start(folder);
    if (options.redis) {
      redis = await ChaosRedis.start();
      log(redis ? `chaos: redis-server on 127.0.0.1:${redis.port} (the presence bus)` : 'chaos: no redis-server installed: PostgreSQL LISTEN/NOTIFY bus, no Redis faults');
    }
    const kinds = FAULT_KINDS.filter((k) => k !== 'redis-restart' || redis);

    const ledger = new Ledger(['A', 'B']);
    const crashes: string[] = [];
    let finishing = false;
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? os.tmpdir(),
      DATABASE_URL: database.url,
      JWT_SECRET,
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      SHUTDOWN_DRAIN_MS: '0',
      DB_POOL_MAX: '8',
      DB_STATEMENT_TIMEOUT_MS: String(options.statementTimeoutMs),
      PRESENCE_THRESHOLD_SECONDS: String(options.thresholdSeconds),
      HEARTBEAT_MIN_WRITE_GAP_SECONDS: String(options.minWriteGapSeconds),
      PULSE_DATA_DIR: path.join(folder, 'data'),
      ...(redis ? { REDIS_URL: redis.url } : {}),
    };
    const command = options.server === 'dist' ? [path.join(ROOT, 'dist', 'src', 'main.js')] : ['--import', 'tsx', path.join(ROOT, 'src', 'main.ts')];
    if (options.server === 'dist' && !fs.existsSync(command[0]!)) throw new Error('dist/src/main.js is missing: run `npm run build` first');
    for (const name of ['A', 'B']) {
      const pulse: PulseProcess = new PulseProcess({
        name,
        port: await freePort(),
        command,
        cwd: ROOT,
        env,
        logFile: path.join(options.logDir, `pulse-${name}.log`),
        onUnexpectedExit: (code, signal, lastLines) => {
          const what = `Pulse ${name} exited (${signal ?? `code ${code}`}) during ${ledger.current.kind}:\n    ${lastLines.slice(-6).join('\n    ')}`;
          ledger.current.unexpectedExits.push(name);
          crashes.push(what);
          log(`chaos: ${what}`);
          if (!finishing) {
            // Restarted so the run goes on; the exit stays on the books.
            void sleep(1000).then(() => (finishing ? undefined : pulse.start().catch((e: unknown) => log(`chaos: restarting ${name} failed: ${String(e)}`))));
          }
        },
      });
      processes.push(pulse);
    }
    await Promise.all(processes.map((p) => p.start()));
    log(`chaos: Pulse A on :${processes[0]!.options.port}, Pulse B on :${processes[1]!.options.port} (${options.server === 'dist' ? 'production build' : 'sources under tsx'})`);

    load = new Load({
      processes,
      ledger,
      jwtSecret: JWT_SECRET,
      users: options.users,
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      readsPerSecond: options.readsPerSecond,
      subscriptions: options.subscriptions,
      watchedUsers: options.watchedUsers,
      idsPerSubscription: options.idsPerSubscription,
      thresholdSeconds: options.thresholdSeconds,
      minWriteGapSeconds: options.minWriteGapSeconds,
      random,
    });
    const samples = new Map<string, Array<ResourceSample & { incarnation: number }>>(processes.map((p) => [p.name, []]));
    sampler = setInterval(() => {
      for (const p of processes) {
        const sample = p.sample();
        if (sample) samples.get(p.name)!.push({ ...sample, incarnation: p.incarnation });
      }
    }, 2000);

    const startedAt = Date.now();
    const elapsed = () => {
      const s = Math.floor((Date.now() - startedAt) / 1000);
      return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
    };
    load.start();
    log(`chaos: load: ${options.users} users (one heartbeat each per ${options.heartbeatIntervalMs / 1000} s), ${options.readsPerSecond} reads/s, ${options.subscriptions} live subscribers`);
    await sleep(options.warmupSeconds * 1000);
    const baselineFrom = Date.now();

    // Faults: a fixed sequence, or random picks from a shuffled bag (every kind
    // comes up once before any comes up twice).
    const faultsUntil = startedAt + options.minutes * 60_000;
    const sequence = options.sequence ? [...options.sequence] : null;
    let bag: FaultKind[] = [];
    const context: FaultContext = { database, redis, processes, ledger, options, load };
    for (;;) {
      let kind: FaultKind;
      if (sequence) {
        if (sequence.length === 0) break;
        kind = sequence.shift()!;
      } else {
        if (Date.now() >= faultsUntil) break;
        if (bag.length === 0) bag = shuffle([...kinds], random);
        kind = bag.shift()!;
      }
      const window = ledger.open(kind);
      window.note = await inject(kind, context);
      log(`chaos: ${elapsed()} ${kind}: ${window.note}`);
      const gap = options.gapSeconds[0] + random() * (options.gapSeconds[1] - options.gapSeconds[0]);
      await sleep(Math.min(gap * 1000, sequence ? Infinity : Math.max(0, faultsUntil - Date.now()) + 1000));
    }
    const faultsEndedAt = Date.now();

    // The last fault gets the time it needs to recover (bounded), then the end
    // checks run in a window of their own.
    const last = ledger.current;
    for (let i = 0; i < 300 && last.kind !== 'steady' && ledger.recoverySeconds(last) === null; i++) await sleep(100);
    ledger.open('steady').endedAt = Date.now();
    log(`chaos: ${elapsed()} faults over; checking live subscribers, then every acknowledged heartbeat`);

    const invariants: Invariant[] = [];
    // Live, while everyone is online: the users who come and go stay.
    load.allActive = true;
    await sleep(options.heartbeatIntervalMs + 2000);
    const whileOnline = await liveAgreement(load, database, options.thresholdSeconds, 15_000, false);
    await load.stopTraffic();
    const lost = await checkAcknowledged(load, database);
    // Live, once everyone has gone offline: each subscriber must have been told.
    const whenOffline = await liveAgreement(load, database, options.thresholdSeconds, (options.thresholdSeconds + 20) * 1000, true);
    const finishedAt = Date.now();
    log(`chaos: ${elapsed()} checks done; stopping`);

    finishing = true;
    clearInterval(sampler);
    sampler = null;
    await load.close();
    const exitCodes = await Promise.all(processes.map((p) => p.stop()));

    const totalAcknowledged = ledger.windows.reduce((n, w) => n + w.acknowledged, 0);
    const faults = ledger.windows.filter((w) => w.kind !== 'steady');
    const badAnswers = new Map<string, number>();
    for (const w of ledger.windows) for (const [what, n] of w.badExamples) badAnswers.set(what, (badAnswers.get(what) ?? 0) + n);
    const slow = faults.filter((w) => {
      const s = ledger.recoverySeconds(w);
      return s === null || s >= RECOVERY_TARGET_SECONDS;
    });

    invariants.push({
      name: 'both processes up (restarted only after the run killed them), and stopped cleanly on SIGTERM',
      held: crashes.length === 0 && exitCodes.every((c) => c === 0),
      detail: [...crashes, ...exitCodes.flatMap((c, i) => (c === 0 ? [] : [`Pulse ${processes[i]!.name} exited with ${c} on SIGTERM`]))].join('\n') || 'no unexpected exit',
    });
    invariants.push({
      name: 'every acknowledged heartbeat is in the table',
      held: lost.length === 0 && totalAcknowledged > 0,
      detail: `${totalAcknowledged} acknowledged, ${load.acknowledged.size} users checked, ${lost.length} missing${lost.length ? `: users ${lost.slice(0, 10).join(', ')}` : ''}`,
    });
    invariants.push({
      name: 'no answer other than success, UNAVAILABLE/503 with Retry-After, or 429',
      held: badAnswers.size === 0,
      detail: badAnswers.size === 0 ? 'none' : [...badAnswers].map(([what, n]) => `${n} x ${what}`).join('\n'),
    });
    invariants.push({
      name: `every fault recovered within ${RECOVERY_TARGET_SECONDS} s (fault end to first success through both processes)`,
      held: slow.length === 0,
      timing: true,
      detail:
        slow.length === 0
          ? `worst ${Math.max(0, ...faults.map((w) => ledger.recoverySeconds(w) ?? 0)).toFixed(2)} s`
          : slow.map((w) => `${w.kind}: ${ledger.recoverySeconds(w)?.toFixed(2) ?? 'never'} s`).join('\n'),
    });
    invariants.push({
      name: "every live subscriber's last event per watched user agrees with the database",
      held: whileOnline.held && whenOffline.held,
      detail: `while online: ${whileOnline.detail}; after all went offline: ${whenOffline.detail}; ${load.subscribers.reduce((n, s) => n + s.opens, 0)} streams opened by ${load.subscribers.length} subscribers`,
    });
    invariants.push(resourceGrowth(samples, baselineFrom, faultsEndedAt));

    const held = invariants.every((i) => i.held !== false);
    const report = renderReport({ ledger, invariants, options, redis: redis !== null, load, processes, startedAt, faultsEndedAt, finishedAt });
    return { windows: ledger.windows, invariants, held, report };
  } finally {
    if (sampler) clearInterval(sampler);
    if (load) await load.close().catch(() => {});
    database?.thaw();
    await Promise.all(processes.map((p) => p.stop().catch(() => null)));
    await Promise.all(processes.map((p) => p.closeLog()));
    await redis?.stop();
    await database?.stop().catch(() => {});
    process.removeListener('exit', onExit);
    fs.rmSync(folder, { recursive: true, force: true });
  }
}

interface FaultContext {
  database: ChaosDatabase;
  redis: ChaosRedis | null;
  processes: PulseProcess[];
  ledger: Ledger;
  options: ChaosOptions;
  load: Load;
}

/** Causes one fault and resolves when it is over (having told the ledger when). */
async function inject(kind: FaultKind, { database, redis, processes, ledger, options, load }: FaultContext): Promise<string> {
  switch (kind) {
    case 'database-restart': {
      await database.stop();
      await sleep(2000);
      await database.start();
      ledger.faultEnded();
      return 'fast stop, started again 2 s later';
    }
    case 'terminate-connections': {
      const admin = await database.admin();
      try {
        const { rowCount } = await admin.query(
          "select pg_terminate_backend(pid) from pg_stat_activity where application_name like 'pulse%' and pid <> pg_backend_pid()",
        );
        ledger.faultEnded();
        return `${rowCount} Pulse sessions terminated`;
      } finally {
        await admin.end().catch(() => {});
      }
    }
    case 'database-freeze': {
      database.freeze();
      try {
        await sleep(3000);
      } finally {
        database.thaw();
      }
      ledger.faultEnded();
      return 'postmaster and backends stopped (SIGSTOP) for 3 s';
    }
    case 'row-lock': {
      const ids = load.upcomingUsers(5);
      const admin = await database.admin();
      try {
        await admin.query('begin');
        const { rowCount } = await admin.query('select user_id from pulse where user_id = any($1::bigint[]) for update', [ids]);
        await sleep(options.statementTimeoutMs + 1000);
        await admin.query('rollback');
        ledger.faultEnded();
        return `${rowCount} pulse rows (users ${ids.join(', ')}) locked for ${(options.statementTimeoutMs + 1000) / 1000} s (statement timeout ${options.statementTimeoutMs / 1000} s)`;
      } finally {
        await admin.end().catch(() => {});
      }
    }
    case 'redis-restart': {
      if (!redis) throw new Error('no redis-server: the run cannot restart Redis');
      await redis.stop();
      await sleep(2000);
      await redis.start();
      ledger.faultEnded();
      return 'redis-server stopped, started again 2 s later';
    }
    case 'process-kill': {
      // Always the second process: the first lives through the whole run, so its
      // memory and handles can be compared from the first minute to the last.
      // The fault lasts until the process is ready again: how long a start takes
      // depends on the machine and the supervisor, and is reported as the fault's
      // length; recovery is what Pulse does once it is back.
      const victim = processes[1]!;
      await victim.kill();
      await sleep(1000);
      await victim.start();
      ledger.faultEnded();
      return `Pulse ${victim.name} killed (SIGKILL), started again 1 s later, ready ${((Date.now() - ledger.current.startedAt) / 1000).toFixed(1)} s after the kill`;
    }
  }
}

// Private: the database's view of the watched users now.
async function databaseStates(database: ChaosDatabase, ids: string[], thresholdSeconds: number): Promise<Map<string, string>> {
  const admin = await database.admin();
  try {
    const { rows } = await admin.query<{ id: string; online: boolean }>(
      'select user_id::text as id, last_hb >= now() - make_interval(secs => $2) as online from pulse where user_id = any($1::bigint[])',
      [ids, thresholdSeconds],
    );
    const states = new Map(ids.map((id) => [id, 'OFFLINE']));
    for (const row of rows) states.set(row.id, row.online ? 'ONLINE' : 'OFFLINE');
    return states;
  } finally {
    await admin.end().catch(() => {});
  }
}

/**
 * Polls until every subscriber is connected and its last event for each user
 * matches the database (and, with `allOffline`, everyone is offline there), or
 * the deadline passes. A status that is changing at the moment of one poll is
 * settled at the next.
 */
async function liveAgreement(load: Load, database: ChaosDatabase, thresholdSeconds: number, limitMs: number, allOffline: boolean) {
  const ids = load.watchedIds;
  const deadline = Date.now() + limitMs;
  for (;;) {
    const truth = await databaseStates(database, ids, thresholdSeconds);
    const problems: string[] = [];
    for (const subscriber of load.subscribers) {
      if (!subscriber.connected) problems.push(`subscriber ${subscriber.index} not connected`);
      for (const id of subscriber.ids) {
        const got = subscriber.states.get(id);
        if (got !== truth.get(id)) problems.push(`subscriber ${subscriber.index} shows user ${id} ${got ?? 'nothing'}, the database ${truth.get(id)}`);
      }
    }
    const online = [...truth.values()].filter((s) => s === 'ONLINE').length;
    const settled = !allOffline || online === 0;
    if (problems.length === 0 && settled) {
      return { held: true, detail: `${load.subscribers.length} subscribers agree on ${ids.length} users (${online} online)` };
    }
    if (Date.now() > deadline) {
      return {
        held: false,
        detail: `${problems.length} disagreements${settled ? '' : ` (${online} users still online in the database)`}: ${problems.slice(0, 5).join('; ')}`,
      };
    }
    await sleep(500);
  }
}

/** Users whose newest acknowledged heartbeat is not in the table. */
async function checkAcknowledged(load: Load, database: ChaosDatabase): Promise<string[]> {
  const admin = await database.admin();
  try {
    const { rows } = await admin.query<{ id: string; ms: number }>(
      'select user_id::text as id, extract(epoch from last_hb)::float8 * 1000 as ms from pulse',
    );
    const stored = new Map(rows.map((r) => [r.id, Number(r.ms)]));
    const lost: string[] = [];
    for (const [userId, ack] of load.acknowledged) {
      const ms = stored.get(userId);
      // lastSeen is sent with millisecond precision; last_hb has microseconds.
      if (ms === undefined || ms + 1 < ack.atLeastMs) {
        lost.push(userId);
        ack.window.lost++;
      }
    }
    return lost;
  } finally {
    await admin.end().catch(() => {});
  }
}

/**
 * Resident memory and open file descriptors of each process that lived through
 * the whole run: the last minute of faults against the first minute after the
 * warm-up. Allowed: RSS up to 25% above the first minute's highest, descriptors
 * up to 10 above it (connections in the pool and keep-alive sockets come and go).
 */
function resourceGrowth(samples: Map<string, Array<ResourceSample & { incarnation: number }>>, from: number, to: number): Invariant {
  const name = 'RSS and open handles not growing from the first minute to the last';
  if (to - from < 150_000) return { name, held: null, detail: 'not judged: fewer than 2.5 minutes of faults' };
  const lines: string[] = [];
  let held = true;
  for (const [processName, all] of samples) {
    const incarnation = all.find((s) => s.at >= from)?.incarnation;
    const own = all.filter((s) => s.incarnation === incarnation);
    const first = own.filter((s) => s.at >= from && s.at < from + 60_000);
    const lastMinute = own.filter((s) => s.at > to - 60_000 && s.at <= to);
    if (first.length === 0 || lastMinute.length === 0) {
      lines.push(`${processName}: restarted during the run, not compared`);
      continue;
    }
    const rssFirst = Math.max(...first.map((s) => s.rssBytes));
    const rssLast = median(lastMinute.map((s) => s.rssBytes));
    const fdFirst = Math.max(...first.map((s) => s.openFds));
    const fdLast = median(lastMinute.map((s) => s.openFds));
    const ok = rssLast <= rssFirst * 1.25 && fdLast <= fdFirst + 10;
    held &&= ok;
    lines.push(
      `${processName}: RSS ${(rssFirst / 2 ** 20).toFixed(0)} MB (first minute, highest) -> ${(rssLast / 2 ** 20).toFixed(0)} MB (last minute, median); ` +
        `open fds ${fdFirst} -> ${fdLast}${ok ? '' : ' GROWING'}`,
    );
  }
  return { name, held, detail: lines.join('\n') };
}

function renderReport(input: {
  ledger: Ledger;
  invariants: Invariant[];
  options: ChaosOptions;
  redis: boolean;
  load: Load;
  processes: PulseProcess[];
  startedAt: number;
  faultsEndedAt: number;
  finishedAt: number;
}): string {
  const { ledger, invariants, options, load, processes } = input;
  const rows = new Map<string, Window[]>();
  for (const w of ledger.windows) rows.set(w.kind, [...(rows.get(w.kind) ?? []), w]);
  const line = (label: string, windows: Window[]) => {
    const sum = (f: (w: Window) => number) => windows.reduce((n, w) => n + f(w), 0);
    const faults = windows.filter((w) => w.kind !== 'steady');
    const recoveries = faults.map((w) => ledger.recoverySeconds(w));
    const known = recoveries.filter((r): r is number => r !== null);
    const recovery = faults.length === 0 ? '-' : `${known.length ? Math.max(...known).toFixed(2) : '-'} / ${known.length ? median(known).toFixed(2) : '-'}${known.length < faults.length ? ` (${faults.length - known.length} never)` : ''}`;
    const lengths = faults.filter((w) => w.endedAt !== null).map((w) => (w.endedAt! - w.startedAt) / 1000);
    const length = lengths.length ? `${median(lengths).toFixed(1)} / ${Math.max(...lengths).toFixed(1)}` : '-';
    return `| ${label} | ${faults.length || '-'} | ${length} | ${sum((w) => w.answers.ok)} | ${sum((w) => w.answers.unavailable)} | ${sum((w) => w.answers.throttled)} | ${sum((w) => w.answers.cut)} | ${sum((w) => w.answers.bad)} | ${sum((w) => w.acknowledged)} | ${sum((w) => w.lost)} | ${sum((w) => w.unexpectedExits.length)} | ${recovery} |`;
  };
  const answered = ledger.windows.reduce((n, w) => n + w.answers.ok + w.answers.unavailable + w.answers.throttled + w.answers.cut + w.answers.bad, 0);
  const order = ['steady', ...FAULT_KINDS].filter((k) => rows.has(k));
  const minutes = ((input.faultsEndedAt - input.startedAt) / 60_000).toFixed(1);
  const mark = (held: boolean | null) => (held === null ? 'n/a' : held ? 'held' : '**BROKEN**');
  return [
    `Chaos run: ${minutes} min of faults (seed ${options.seed}), two Pulse processes (${options.server === 'dist' ? 'production build' : 'sources under tsx'}) on one embedded PostgreSQL, ` +
      `presence bus ${input.redis ? 'Redis (a redis-server of the run)' : 'PostgreSQL LISTEN/NOTIFY'}; ${options.users} users, one heartbeat each per ${options.heartbeatIntervalMs / 1000} s, ` +
      `${options.readsPerSecond} status reads/s, ${options.subscriptions} live subscribers; threshold ${options.thresholdSeconds} s, statement timeout ${options.statementTimeoutMs / 1000} s. ` +
      `${os.cpus().length} cores, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} at the end.`,
    '',
    '| fault | times | fault lasted s (median / max) | ok | 503 | 429 | cut by kill | other | acknowledged | lost | unexpected exits | recovery s (max / median) |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ...order.map((k) => line(k === 'steady' ? 'none (before, between checks)' : k, rows.get(k)!)),
    line('**total**', ledger.windows),
    '',
    '| invariant | result | detail |',
    '|---|---|---|',
    ...invariants.map((i) => `| ${i.name} | ${mark(i.held)} | ${i.detail.replace(/\n/g, '<br>').replace(/\|/g, '\\|')} |`),
    '',
    `Answers per second over the run: ${(answered / ((input.finishedAt - input.startedAt) / 1000)).toFixed(0)}; ` +
      `sends skipped (no process up, or ${MAX_IN_FLIGHT} requests already waiting): ${load.skipped}. ` +
      `Log lines: ${processes.map((p) => `${p.name} ${p.logLines} (${p.longLogLines} over 2 KB)`).join(', ')}.`,
    '',
  ].join('\n');
}

function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

// Private: a small seeded generator, so a run's fault order can be replayed (--seed).
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
