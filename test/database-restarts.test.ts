/**
 * A shaky database day, as an operator saw it: under load, every Pulse
 * connection terminated, then PostgreSQL stopped (fast) and started again, three
 * times in a row. Pulse (`npm start` in production mode, a process of its own)
 * stays up, answers only success, UNAVAILABLE (503 with Retry-After) or 429,
 * recovers after each restart, and loses no acknowledged heartbeat.
 *
 * The test owns its PostgreSQL (an embedded one in a temporary folder): it stops
 * and starts it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import pg from 'pg';
import { Agent, fetch, type Response } from 'undici';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../src/db/embedded-postgres';
import { silentLogger } from '../src/logger';
import { freePort } from './support/free-port';
import { TEST_JWT_SECRET } from './support/test-server';

const ROOT = path.resolve(__dirname, '..');
const ROUNDS = 3;
const HEARTBEAT_CLIENTS = 40;
const READ_CLIENTS = 10;
/** Pulse answers Retry-After: 1; clients wait about that long. */
const RETRY_PAUSE_MS = 1000;
/** A restart on a machine this busy can be slow; this bounds it, it claims nothing. */
const PG_START_LIMIT_MS = 120_000;

/** What Pulse answered, classified: anything but these three is a failure. */
type Verdict = 'success' | 'unavailable' | 'limited';

interface Load {
  /** Answers by verdict since the load started. */
  counts: Record<Verdict, number>;
  /** Every answer that was none of the allowed ones (status, body, or the network error). */
  violations: string[];
  /** user id -> lastSeen Pulse acknowledged (GraphQL), or null (REST: 204, no body). */
  acknowledged: Map<string, string | null>;
  /** Resolves at the next answer with this verdict. */
  next(verdict: Verdict): Promise<void>;
  stop(): Promise<void>;
}

function startLoad(baseUrl: string): Load {
  // Node's HTTP server closes a keep-alive connection idle for 5 s; a client that
  // reuses one just then sees it closed before its request was read (a race of
  // every HTTP client, not an answer from Pulse). On a machine this busy the
  // client's own 4 s timer can fire late, so these clients let idle connections go
  // after 1 s.
  const dispatcher = new Agent({ keepAliveTimeout: 1000, keepAliveMaxTimeout: 1000 });
  const counts: Record<Verdict, number> = { success: 0, unavailable: 0, limited: 0 };
  const violations: string[] = [];
  const acknowledged = new Map<string, string | null>();
  const waiters: Array<{ verdict: Verdict; resolve: () => void }> = [];
  let stopped = false;
  const record = async (verdict: Verdict) => {
    counts[verdict]++;
    for (const w of waiters.filter((w) => w.verdict === verdict)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
    // Clients do as they are told: come back after Retry-After, not at once.
    if (verdict !== 'success') await new Promise((r) => setTimeout(r, RETRY_PAUSE_MS));
  };
  // Private: success, UNAVAILABLE with Retry-After, or 429; null for anything else.
  const judge = (response: Response, body: string, succeeded: boolean): Verdict | null => {
    if (response.status === 429) return 'limited';
    if (response.status === 503) {
      const code = (JSON.parse(body) as { errors?: Array<{ extensions?: { code?: string } }> }).errors?.[0]?.extensions?.code;
      return code === 'UNAVAILABLE' && response.headers.get('retry-after') !== null ? 'unavailable' : null;
    }
    return succeeded ? 'success' : null;
  };

  let nextUser = 1;
  const heartbeats = async (client: number) => {
    const overRest = client % 2 === 1;
    while (!stopped) {
      // A new user every time: an acknowledged heartbeat is then exactly one row.
      const userId = String(nextUser++);
      const token = jwt.sign({ sub: userId }, TEST_JWT_SECRET, { algorithm: 'HS256', expiresIn: 600 });
      try {
        const response = overRest
          ? await fetch(`${baseUrl}/pulse`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, dispatcher })
          : await fetch(`${baseUrl}/graphql`, {
              method: 'POST',
              dispatcher,
              headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
              // state is read after the write: both halves of a heartbeat's answer.
              body: JSON.stringify({ query: 'mutation { heartbeat { userId lastSeen state } }' }),
            });
        const body = await response.text();
        const answer = !overRest && response.status === 200 ? (JSON.parse(body) as { data?: { heartbeat?: { lastSeen: string } }; errors?: unknown[] }) : null;
        const succeeded = overRest ? response.status === 204 : response.status === 200 && !answer?.errors && !!answer?.data?.heartbeat;
        const verdict = judge(response, body, succeeded);
        if (verdict === null) violations.push(`heartbeat: ${response.status} ${body.slice(0, 300)}`);
        else await record(verdict);
        if (verdict === 'success') acknowledged.set(userId, answer?.data?.heartbeat?.lastSeen ?? null);
      } catch (error) {
        violations.push(`heartbeat: ${String((error as { cause?: unknown }).cause ?? error)}`);
        await new Promise((r) => setTimeout(r, RETRY_PAUSE_MS));
      }
    }
  };
  const reads = async (client: number) => {
    while (!stopped) {
      try {
        const response = await fetch(`${baseUrl}/graphql`, {
          method: 'POST',
          dispatcher,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query: `{ statuses(ids: ["${client + 1}", "${nextUser}"]) { state lastSeen } }` }),
        });
        const body = await response.text();
        const succeeded = response.status === 200 && !(JSON.parse(body) as { errors?: unknown[] }).errors;
        const verdict = judge(response, body, succeeded);
        if (verdict === null) violations.push(`read: ${response.status} ${body.slice(0, 300)}`);
        else await record(verdict);
      } catch (error) {
        violations.push(`read: ${String((error as { cause?: unknown }).cause ?? error)}`);
        await new Promise((r) => setTimeout(r, RETRY_PAUSE_MS));
      }
    }
  };
  const clients = [
    ...Array.from({ length: HEARTBEAT_CLIENTS }, (_, i) => heartbeats(i)),
    ...Array.from({ length: READ_CLIENTS }, (_, i) => reads(i)),
  ];
  return {
    counts,
    violations,
    acknowledged,
    next: (verdict) => new Promise<void>((resolve) => waiters.push({ verdict, resolve })),
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all(clients);
      await dispatcher.close();
    },
  };
}

/** Waits for `event`, or fails with `what` after `limitMs` (a bound, not a timing claim). */
function within<T>(what: string, event: Promise<T>, limitMs = 60_000): Promise<T> {
  let timer: NodeJS.Timeout;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`gave up waiting for ${what}`)), limitMs);
  });
  return Promise.race([event, limit]).finally(() => clearTimeout(timer));
}

async function onAdmin<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {}); // the server may go away under it
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => {});
  }
}

it(`stays up through ${ROUNDS} rounds of "terminate every connection, then restart PostgreSQL" under load, and loses no acknowledged heartbeat`, async () => {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-restarts-'));
  fs.chmodSync(folder, 0o755); // as root, PostgreSQL runs as `postgres`, who must enter it
  const clusterDir = path.join(folder, 'postgres');
  const pgPort = await freePort();
  let database: EmbeddedPostgres = await startEmbeddedPostgres({ clusterDir, port: pgPort, logger: silentLogger, startTimeoutMs: PG_START_LIMIT_MS });
  const port = await freePort();
  let output = '';
  let pulse: ChildProcess | null = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_ENV: 'production',
      DATABASE_URL: database.url,
      HOST: '127.0.0.1',
      PORT: String(port),
      JWT_SECRET: TEST_JWT_SECRET,
      LOG_LEVEL: 'warn',
      DB_POOL_MAX: '5',
      DB_CONNECTION_TIMEOUT_MS: '1000',
      SHUTDOWN_DRAIN_MS: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => pulse!.once('exit', (code) => resolve(code)));
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-2_000_000);
  };
  pulse.stdout!.on('data', keep);
  pulse.stderr!.on('data', keep);
  const running = () => pulse !== null && pulse.exitCode === null && pulse.signalCode === null;
  const assertUp = (when: string) => {
    if (!running()) throw new Error(`Pulse exited ${when}; its last output:\n${output.slice(-4000)}`);
  };
  // Waits for `event`, failing at once (with Pulse's last words) if Pulse exits first.
  const unlessExited = <T>(what: string, event: Promise<T>): Promise<T> =>
    within(
      what,
      Promise.race([
        event,
        exited.then((code) => {
          throw new Error(`Pulse exited (code ${code}) while waiting for ${what}; its last output:\n${output.slice(-4000)}`);
        }),
      ]),
    );

  let load: Load | null = null;
  try {
    await within(
      'Pulse to answer',
      (async () => {
        for (;;) {
          const ok = await globalThis.fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false);
          if (ok) return;
          if (!running()) throw new Error(`Pulse exited during startup:\n${output}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      })(),
    );
    load = startLoad(`http://127.0.0.1:${port}`);
    const recovered: boolean[] = [];

    for (let round = 1; round <= ROUNDS; round++) {
      await unlessExited(`success before round ${round}`, load.next('success'));

      assertUp(`before round ${round}`);
      const terminated = await onAdmin(database.url, (admin) =>
        admin.query("select pg_terminate_backend(pid) from pg_stat_activity where application_name like 'pulse%'"),
      );
      expect(terminated.rowCount).toBeGreaterThan(0);
      // Pulse reconnects by itself before the next fault.
      await unlessExited(`success after the terminate in round ${round}`, load.next('success'));
      assertUp(`after the terminate in round ${round}`);

      await database.stop();
      // The outage is seen (callers are told to come back later) before it ends.
      await unlessExited(`an UNAVAILABLE answer while stopped in round ${round}`, load.next('unavailable'));
      database = await startEmbeddedPostgres({ clusterDir, port: pgPort, logger: silentLogger, startTimeoutMs: PG_START_LIMIT_MS });
      recovered.push(await unlessExited(`recovery after restart ${round}`, load.next('success')).then(() => true));
      assertUp(`after restart ${round}`);
    }

    await load.stop();
    expect({ running: running(), violations: load.violations.slice(0, 10), recovered }).toEqual({
      running: true,
      violations: [],
      recovered: Array.from({ length: ROUNDS }, () => true),
    });
    expect(load.counts.unavailable).toBeGreaterThanOrEqual(ROUNDS);

    // Every acknowledged heartbeat is in the table, with at least the last seen
    // Pulse answered (the committed write, never a lost one).
    const { acknowledged } = load;
    expect(acknowledged.size).toBeGreaterThan(0);
    const stored = await onAdmin(database.url, async (admin) => {
      const { rows } = await admin.query<{ user_id: string; last_hb: Date }>(
        'select user_id::text, last_hb from pulse where user_id = any($1::bigint[])',
        [[...acknowledged.keys()]],
      );
      return new Map(rows.map((r) => [r.user_id, r.last_hb]));
    });
    const lost = [...acknowledged].filter(([userId, lastSeen]) => {
      const row = stored.get(userId);
      return !row || (lastSeen !== null && row.getTime() < new Date(lastSeen).getTime());
    });
    expect(lost).toEqual([]);

    // The presence bus's LISTEN session is back too.
    await within(
      'the LISTEN session to be back',
      (async () => {
        for (;;) {
          const { rowCount } = await onAdmin(database.url, (admin) =>
            admin.query("select 1 from pg_stat_activity where application_name = 'pulse-listen'"),
          );
          if (rowCount) return;
          await new Promise((r) => setTimeout(r, 200));
        }
      })(),
    );
  } finally {
    await load?.stop();
    if (running()) {
      pulse?.kill('SIGTERM');
      const code = await within('Pulse to stop', exited, 30_000).catch(() => {
        pulse?.kill('SIGKILL');
        return null;
      });
      // A clean stop after all of it: exit code 0.
      expect(code).toBe(0);
    }
    pulse = null;
    await database.stop();
    fs.rmSync(folder, { recursive: true, force: true });
  }
}, 300_000);
