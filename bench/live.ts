/**
 * `npm run bench:live`: live presence under many subscribers, measured.
 *
 * Pulse runs as its own process; this process opens LIVE_SUBSCRIPTIONS event
 * streams (/graphql/stream), each watching LIVE_WATCH users out of LIVE_USERS,
 * and then:
 *  1. online: brings LIVE_CHANGES offline users online, one POST /pulse at a time,
 *     and times each subscriber's ONLINE event from the moment the heartbeat's
 *     response arrived;
 *  2. offline: lets those users' heartbeats stop, and times each subscriber's
 *     OFFLINE event from the last heartbeat, against threshold + 5 s;
 *  3. memory: samples the server's resident memory and heap (from /metrics) while
 *     the subscriptions are open, to show it stays flat.
 *
 *   npm run bench:live
 *   LIVE_SUBSCRIPTIONS=2000 npm run bench:live        # a quicker run
 *
 * Settings (environment): LIVE_SUBSCRIPTIONS (10000), LIVE_USERS (1000),
 * LIVE_WATCH (10 users per subscription), LIVE_CHANGES (200),
 * LIVE_THRESHOLD_SECONDS (10, Pulse's PRESENCE_THRESHOLD_SECONDS for the run),
 * DATABASE_URL as for the other benches. Writes bench/results/live-<time>.md.
 * Loopback only; stops by itself.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHmac } from 'node:crypto';
import pg from 'pg';
import { Agent, fetch as undiciFetch } from 'undici';
import { benchDatabase, freePort, log, machineLabel, percentile, ROOT, sleep, startServer, stopServer } from './support';

const SUBSCRIPTIONS = Number(process.env.LIVE_SUBSCRIPTIONS ?? 10_000);
const USERS = Number(process.env.LIVE_USERS ?? 1000);
const WATCH = Number(process.env.LIVE_WATCH ?? 10);
const CHANGES = Number(process.env.LIVE_CHANGES ?? 200);
const THRESHOLD_SECONDS = Number(process.env.LIVE_THRESHOLD_SECONDS ?? 10);
const SECRET = 'live-bench-secret-that-is-at-least-32-characters';
const QUERY = 'subscription ($ids: [ID!]) { presenceChanged(ids: $ids) { userId state lastSeen } }';

interface Event {
  userId: string;
  state: string;
  at: number;
}

async function main(): Promise<void> {
  const started = Date.now();
  const database = await benchDatabase('pulse_live');
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  log(`live presence bench: ${SUBSCRIPTIONS} subscriptions x ${WATCH} of ${USERS} users, threshold ${THRESHOLD_SECONDS} s, on ${database.label}`);
  const server = await startServer(
    { DATABASE_URL: database.url, JWT_SECRET: SECRET, PRESENCE_THRESHOLD_SECONDS: String(THRESHOLD_SECONDS), HEARTBEAT_MIN_WRITE_GAP_SECONDS: '0',
      // Every stream comes from this one client: lift the per-client and process caps.
      STREAMS_PER_CLIENT: String(SUBSCRIPTIONS + 100), STREAMS_MAX: String(SUBSCRIPTIONS + 100) },
    port,
  );
  // Every user starts offline, seen an hour ago.
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  await client.query(`insert into pulse (user_id, last_hb) select g, now() - interval '1 hour' from generate_series(1, $1::bigint) g`, [USERS]);
  await client.end();

  // One connection per stream, as browsers behind one load balancer would open.
  const agent = new Agent({ connections: SUBSCRIPTIONS + 100, pipelining: 0, headersTimeout: 0, bodyTimeout: 0 });
  const streams: Array<{ ids: Set<string>; events: Event[]; close: () => void }> = [];
  const memory: Array<{ phase: string; subscriptions: number; rssMb: number; heapMb: number }> = [];
  const sample = async (phase: string) => {
    const m = await metrics(base);
    memory.push({ phase, subscriptions: m.subscriptions, rssMb: m.rss / 2 ** 20, heapMb: m.heap / 2 ** 20 });
    log(`  ${phase}: ${m.subscriptions} subscriptions, RSS ${(m.rss / 2 ** 20).toFixed(0)} MB, heap ${(m.heap / 2 ** 20).toFixed(0)} MB`);
  };

  try {
    await sample('before any subscription');
    const chunk = 100;
    let nextSample = SUBSCRIPTIONS / 4;
    for (let opened = 0; opened < SUBSCRIPTIONS; opened += chunk) {
      const batch = Array.from({ length: Math.min(chunk, SUBSCRIPTIONS - opened) }, (_, k) => {
        const n = opened + k;
        const ids = Array.from({ length: WATCH }, (_, j) => String(((n * WATCH + j * 97) % USERS) + 1));
        return openStream(base, agent, ids);
      });
      streams.push(...(await Promise.all(batch)));
      if (streams.length >= nextSample) {
        nextSample += SUBSCRIPTIONS / 4;
        await waitFor(() => streams.every((s) => s.events.length >= s.ids.size), 60_000);
        await sample(`${streams.length} open`);
      }
    }
    await waitFor(() => streams.every((s) => s.events.length >= s.ids.size), 120_000);
    log(`${streams.length} streams open, each with its first ${WATCH} statuses`);

    // 1. Online: one user at a time, each watched by about SUBSCRIPTIONS x WATCH / USERS streams.
    const changed = Array.from({ length: CHANGES }, (_, i) => String(((i * 37) % USERS) + 1)).filter((id, i, all) => all.indexOf(id) === i);
    const returnedAt = new Map<string, number>();
    const heartbeatAgent = new Agent({ connections: 10 });
    for (const userId of changed) {
      const response = await undiciFetch(`${base}/pulse`, { method: 'POST', headers: { authorization: `Bearer ${token(userId)}` }, dispatcher: heartbeatAgent });
      returnedAt.set(userId, Date.now());
      if (response.status !== 204) throw new Error(`heartbeat answered ${response.status}`);
      await sleep(1000 / 20);
    }
    const watchers = (userId: string) => streams.filter((s) => s.ids.has(userId));
    const arrival = (userId: string, state: string, after: number) =>
      watchers(userId).map((s) => s.events.find((e) => e.userId === userId && e.state === state && e.at >= after - 1000)?.at);
    await waitFor(() => changed.every((u) => arrival(u, 'ONLINE', returnedAt.get(u)!).every((t) => t !== undefined)), 30_000).catch(() => {});
    const onlineDelays = changed.flatMap((u) => arrival(u, 'ONLINE', returnedAt.get(u)!).map((t) => (t === undefined ? Infinity : t - returnedAt.get(u)!)));
    await sample('after the online events');

    // 2. Offline: nobody sends anything now; each user's last heartbeat was at returnedAt.
    log(`waiting for ${changed.length} users to go offline (threshold ${THRESHOLD_SECONDS} s)`);
    const deadline = (THRESHOLD_SECONDS + 5) * 1000;
    await waitFor(
      () => changed.every((u) => arrival(u, 'OFFLINE', returnedAt.get(u)! + 1).every((t) => t !== undefined)),
      deadline + 15_000,
    ).catch(() => {});
    const offlineDelays = changed.flatMap((u) => arrival(u, 'OFFLINE', returnedAt.get(u)! + 1).map((t) => (t === undefined ? Infinity : t - returnedAt.get(u)!)));
    await sample('after the offline events');

    // 3. Close everything; the server should hold nothing for them.
    for (const s of streams) s.close();
    await waitFor(async () => (await metrics(base)).subscriptions === 0, 30_000).catch(() => {});
    await sample('all closed');
    await heartbeatAgent.close();

    const report = render({ onlineDelays, offlineDelays, memory, deadline, watchersPerUser: (SUBSCRIPTIONS * WATCH) / USERS, elapsed: (Date.now() - started) / 1000, label: database.label });
    const file = path.join(ROOT, 'bench', 'results', `live-${new Date().toISOString().slice(0, 19).replace(/:/g, '')}.md`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, report);
    log(`\n${report}\nwritten to ${path.relative(ROOT, file)}`);
  } finally {
    for (const s of streams) s.close();
    await agent.destroy().catch(() => {});
    await stopServer(server);
    await database.stop();
  }
}

// Private: one event stream, parsed as it arrives; events are timestamped on arrival.
async function openStream(base: string, agent: Agent, ids: string[]): Promise<{ ids: Set<string>; events: Event[]; close: () => void }> {
  const abort = new AbortController();
  const events: Event[] = [];
  const response = await undiciFetch(`${base}/graphql/stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ query: QUERY, variables: { ids } }),
    signal: abort.signal,
    dispatcher: agent,
  });
  if (response.status === 503) {
    // Shed while the pool's queue is full (a crowd connecting at once): come back
    // after Retry-After, as the browser client does.
    await response.body?.cancel();
    await sleep(Number(response.headers.get('retry-after') ?? 1) * 1000 * (0.5 + Math.random()));
    return openStream(base, agent, ids);
  }
  if (response.status !== 200 || !response.body) throw new Error(`stream answered ${response.status}`);
  void (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of response.body!) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (!data || !block.startsWith('event: next')) continue;
          const status = JSON.parse(data).data?.presenceChanged;
          if (status) events.push({ userId: status.userId, state: status.state, at: Date.now() });
        }
      }
    } catch {
      /* closed */
    }
  })();
  return { ids: new Set(ids), events, close: () => abort.abort() };
}

function token(userId: string): string {
  const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
  const payload = Buffer.from(JSON.stringify({ sub: userId, exp: Math.floor(Date.now() / 1000) + 3600 })).toString('base64url');
  return `${header}.${payload}.${createHmac('sha256', SECRET).update(`${header}.${payload}`).digest('base64url')}`;
}

async function metrics(base: string) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { subscriptions: value('pulse_live_subscriptions'), rss: value('pulse_process_process_resident_memory_bytes'), heap: value('pulse_process_nodejs_heap_size_used_bytes') };
}

async function waitFor(check: () => boolean | Promise<boolean>, limitMs: number): Promise<void> {
  for (const start = Date.now(); Date.now() - start < limitMs; ) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error('timed out');
}

function render(r: {
  onlineDelays: number[];
  offlineDelays: number[];
  memory: Array<{ phase: string; subscriptions: number; rssMb: number; heapMb: number }>;
  deadline: number;
  watchersPerUser: number;
  elapsed: number;
  label: string;
}): string {
  const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(0) : 'missing');
  const missing = (values: number[]) => values.filter((v) => !Number.isFinite(v)).length;
  return [
    '# Pulse live presence benchmark',
    '',
    `${new Date().toISOString()}. Machine: ${machineLabel()}. Database: ${r.label}. Run took ${r.elapsed.toFixed(0)} s.`,
    `${SUBSCRIPTIONS} event streams on one Pulse process, each watching ${WATCH} of ${USERS} users (about ${r.watchersPerUser.toFixed(0)} streams per user); threshold ${THRESHOLD_SECONDS} s.`,
    '',
    '| event | deliveries | p50 ms | p99 ms | max ms | missing | target |',
    '|---|---:|---:|---:|---:|---:|---|',
    `| online, after the heartbeat's response | ${r.onlineDelays.length} | ${ms(percentile(r.onlineDelays, 0.5))} | ${ms(percentile(r.onlineDelays, 0.99))} | ${ms(Math.max(...r.onlineDelays))} | ${missing(r.onlineDelays)} | p99 < 1000 |`,
    `| offline, after the last heartbeat | ${r.offlineDelays.length} | ${ms(percentile(r.offlineDelays, 0.5))} | ${ms(percentile(r.offlineDelays, 0.99))} | ${ms(Math.max(...r.offlineDelays))} | ${missing(r.offlineDelays)} | all < ${r.deadline} |`,
    '',
    '| moment | subscriptions | server RSS MB | server heap MB |',
    '|---|---:|---:|---:|',
    ...r.memory.map((m) => `| ${m.phase} | ${m.subscriptions} | ${m.rssMb.toFixed(0)} | ${m.heapMb.toFixed(0)} |`),
    '',
  ].join('\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`live bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
