/**
 * The open-loop load generator: heartbeats at a fixed arrival rate, whatever the
 * server's latency, as a million independent clients behave (a closed loop of N
 * connections instead slows down with the server and hides its queueing). Run as
 * a process of its own; reads an {@link OpenLoopSpec} as JSON from argv[2], prints
 * an {@link OpenLoopResult} as JSON.
 *
 * Request i is due at start + i / rate. Latency is measured from when it was
 * due, not from when it could be sent, so time spent waiting for a free
 * connection counts (no coordinated omission). Each request carries the token of
 * the next user in a round robin over `users` ids.
 */
import { Pool } from 'undici';
import { signTokens } from './load';
import { percentile, sleep } from './support';

export interface OpenLoopSpec {
  port: number;
  /** Heartbeats per second. */
  rate: number;
  seconds: number;
  users: number;
  firstUserId: number;
  /** Where the round robin over users starts (continues the previous step). */
  startIndex: number;
  /** Most connections open at once; requests beyond them wait (and that wait counts). */
  maxConnections: number;
  jwtSecret: string;
  /** 'graphql': the heartbeat mutation; 'rest': POST /pulse. */
  path: 'graphql' | 'rest';
}

export interface OpenLoopResult {
  /** Requests due during the run. */
  due: number;
  completed: number;
  /** Answered with a status other than 200 or 204. */
  non2xx: number;
  errors: number;
  /** Completed requests per second of the run. */
  completedPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** How long requests still open at the end may take before they count as errors. */
const DRAIN_MS = 10_000;

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]!) as OpenLoopSpec;
  const tokens = signTokens(spec);
  const pool = new Pool(`http://127.0.0.1:${spec.port}`, { connections: spec.maxConnections, pipelining: 1 });
  const body = JSON.stringify({ query: 'mutation { heartbeat { online } }' });
  const latencies: number[] = [];
  let non2xx = 0;
  let errors = 0;
  let open = 0;
  let sent = 0;
  /** Set once the run has given up on the requests still open (counted as errors then, once). */
  let abandoned = false;
  const total = Math.round(spec.rate * spec.seconds);
  const start = performance.now();

  const send = (i: number) => {
    const dueAt = start + (i * 1000) / spec.rate;
    const token = tokens[(spec.startIndex + i) % tokens.length];
    open++;
    pool
      .request({
        method: 'POST',
        path: spec.path === 'graphql' ? '/graphql' : '/pulse',
        headers: spec.path === 'graphql' ? { 'content-type': 'application/json', authorization: `Bearer ${token}` } : { authorization: `Bearer ${token}` },
        body: spec.path === 'graphql' ? body : undefined,
      })
      .then(async (response) => {
        await response.body.dump();
        if (response.statusCode !== 200 && response.statusCode !== 204) non2xx++;
        latencies.push(performance.now() - dueAt);
      })
      .catch(() => {
        if (!abandoned) errors++;
      })
      .finally(() => open--);
  };

  // Every millisecond, send whatever has fallen due since the last tick.
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - start) * spec.rate) / 1000));
      while (sent < due) send(sent++);
      if (sent >= total) {
        clearInterval(timer);
        resolve();
      }
    }, 1);
  });
  const deadline = performance.now() + DRAIN_MS;
  while (open > 0 && performance.now() < deadline) await sleep(20);
  abandoned = true;
  errors += open;
  await pool.destroy();

  const at = (q: number) => (latencies.length ? Math.round(percentile(latencies, q) * 10) / 10 : 0);
  const result: OpenLoopResult = {
    due: total,
    completed: latencies.length,
    non2xx,
    errors,
    completedPerSecond: latencies.length / spec.seconds,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    maxMs: at(1),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
