/**
 * The steady load of a chaos run: users sending heartbeats through both Pulse
 * processes, status reads, and live subscribers on /graphql/stream that
 * reconnect the way the browser client does. Every answer is classified and
 * filed in the {@link Ledger}; every acknowledged heartbeat is remembered so the
 * run can look for it in the table at the end.
 *
 * A process the run has killed gets no new requests until it is ready again, as
 * behind a load balancer with a health check; subscribers wait for their own
 * process to come back rather than move.
 */
import jwt from 'jsonwebtoken';
import { Agent, Pool, request } from 'undici';
import type { Ledger, Outcome, Window } from './ledger';
import { sleep } from '../support';
import type { PulseProcess } from './infrastructure';

export interface LoadOptions {
  processes: readonly PulseProcess[];
  ledger: Ledger;
  jwtSecret: string;
  /** Users 1..users each send a heartbeat every heartbeatIntervalMs. */
  users: number;
  heartbeatIntervalMs: number;
  /** `statuses` reads (20 ids) and REST status reads per second, together. */
  readsPerSecond: number;
  subscriptions: number;
  /** Users 1..watchedUsers are watched; every other one of them comes and goes. */
  watchedUsers: number;
  idsPerSubscription: number;
  thresholdSeconds: number;
  minWriteGapSeconds: number;
  random: () => number;
}

/** For one user: the table must hold a last_hb at least this recent (ms since epoch). */
export interface Acknowledgement {
  atLeastMs: number;
  window: Window;
}

/** A request that has had no answer after this long is a hang, and counted as one. */
const ANSWER_TIMEOUT_MS = 30_000;
/** Requests the load keeps in flight at most; beyond it, it skips (and counts) sends. */
export const MAX_IN_FLIGHT = 3000;

export class Load {
  readonly acknowledged = new Map<string, Acknowledgement>();
  readonly subscribers: Subscriber[] = [];
  /** Sends skipped because no process was up or the client's backlog was full. */
  skipped = 0;
  /** When set, users who come and go stay (for the end checks). */
  allActive = false;
  readonly #options: LoadOptions;
  readonly #pools: Pool[];
  readonly #streamAgent = new Agent({ connections: null, keepAliveTimeout: 1000, headersTimeout: ANSWER_TIMEOUT_MS, bodyTimeout: 0 });
  readonly #tokens: string[];
  readonly #phase: number[];
  readonly #inFlight = new Set<Promise<void>>();
  #running = false;
  /** The next user (index) whose heartbeat the load sends. */
  #next = 0;
  #loops: Promise<void>[] = [];
  #startedAt = Date.now();

  constructor(options: LoadOptions) {
    this.#options = options;
    this.#pools = options.processes.map(
      (p) =>
        new Pool(`http://127.0.0.1:${p.options.port}`, {
          connections: 24,
          headersTimeout: ANSWER_TIMEOUT_MS,
          bodyTimeout: ANSWER_TIMEOUT_MS,
          keepAliveTimeout: 2000,
        }),
    );
    this.#tokens = Array.from({ length: options.users }, (_, i) =>
      jwt.sign({ sub: String(i + 1) }, options.jwtSecret, { algorithm: 'HS256', expiresIn: '1d' }),
    );
    this.#phase = Array.from({ length: options.users }, () => options.random());
    for (let s = 0; s < options.subscriptions; s++) {
      const ids = new Set<string>();
      while (ids.size < Math.min(options.idsPerSubscription, options.watchedUsers)) ids.add(String(1 + Math.floor(options.random() * options.watchedUsers)));
      this.subscribers.push(new Subscriber(s, [...ids], options.processes[s % options.processes.length]!, options.ledger, this.#streamAgent));
    }
  }

  /** The ids every subscriber watches, together. */
  get watchedIds(): string[] {
    return [...new Set(this.subscribers.flatMap((s) => s.ids))];
  }

  start(): void {
    this.#running = true;
    this.#startedAt = Date.now();
    this.#loops = [this.#heartbeats(), this.#reads()];
    for (const subscriber of this.subscribers) subscriber.start();
  }

  /** Stops sending heartbeats and reads, and waits for every answer still due. */
  async stopTraffic(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#loops);
    while (this.#inFlight.size > 0) await Promise.all([...this.#inFlight]);
  }

  async close(): Promise<void> {
    await this.stopTraffic();
    for (const subscriber of this.subscribers) subscriber.close();
    await Promise.all(this.subscribers.map((s) => s.done));
    await Promise.all(this.#pools.map((p) => p.close()));
    await this.#streamAgent.close();
  }

  /** Whether `userId` sends heartbeats now: watched users with an odd id come and go. */
  #active(userIndex: number, now: number): boolean {
    const userId = userIndex + 1;
    if (this.allActive || userId > this.#options.watchedUsers || userId % 2 === 0) return true;
    // On for 1.5 thresholds, off for 1.5 thresholds: long enough to go offline.
    const periodMs = this.#options.thresholdSeconds * 1500;
    return Math.floor((now - this.#startedAt) / periodMs + this.#phase[userIndex]! * 2) % 2 === 0;
  }

  /**
   * `count` users who send heartbeats all the time and whose next one is due
   * within the next second: the row lock fault locks them, so it is in the way.
   */
  upcomingUsers(count: number): string[] {
    const { users, heartbeatIntervalMs, watchedUsers } = this.#options;
    const perSecond = users / (heartbeatIntervalMs / 1000);
    const ids: string[] = [];
    for (let k = 0; ids.length < count && k < users; k++) {
      const index = (this.#next + Math.floor((k * perSecond) / count)) % users;
      const id = String(index + 1);
      if (index + 1 > watchedUsers && !ids.includes(id)) ids.push(id);
    }
    return ids;
  }

  async #heartbeats(): Promise<void> {
    const { users, heartbeatIntervalMs } = this.#options;
    const tickMs = 100;
    const perTick = users / (heartbeatIntervalMs / tickMs);
    let due = 0;
    let round = 0;
    while (this.#running) {
      const tickStart = Date.now();
      for (due += perTick; due >= 1; due--) {
        const index = this.#next;
        this.#next = (this.#next + 1) % users;
        if (this.#next === 0) round++;
        if (!this.#active(index, tickStart)) continue;
        this.#send((index + round) % this.#pools.length, (pool, name) => this.#heartbeat(pool, name, index));
      }
      await sleep(Math.max(0, tickMs - (Date.now() - tickStart)));
    }
  }

  async #reads(): Promise<void> {
    const { readsPerSecond, users, random } = this.#options;
    let due = 0;
    let count = 0;
    while (this.#running) {
      const tickStart = Date.now();
      for (due += readsPerSecond / 10; due >= 1; due--) {
        const first = 1 + Math.floor(random() * Math.max(1, users - 20));
        const ids = Array.from({ length: 20 }, (_, k) => String(first + k));
        const rest = count % 4 === 3;
        this.#send(count++ % this.#pools.length, (pool, name) => (rest ? this.#restRead(pool, name, ids) : this.#graphqlRead(pool, name, ids)));
      }
      await sleep(Math.max(0, 100 - (Date.now() - tickStart)));
    }
  }

  // Private: routes to the preferred process, or the other one while it is down.
  #send(preferred: number, work: (pool: Pool, process: PulseProcess) => Promise<void>): void {
    const { processes } = this.#options;
    let index = preferred;
    if (!processes[index]!.up) index = processes.findIndex((p) => p.up);
    if (index < 0 || this.#inFlight.size >= MAX_IN_FLIGHT) {
      this.skipped++;
      return;
    }
    const promise = work(this.#pools[index]!, processes[index]!).finally(() => this.#inFlight.delete(promise));
    this.#inFlight.add(promise);
  }

  async #heartbeat(pool: Pool, process: PulseProcess, index: number): Promise<void> {
    const userId = String(index + 1);
    const headers = { authorization: `Bearer ${this.#tokens[index]}`, 'content-type': 'application/json' };
    const sentAt = Date.now();
    // One in four goes through the plain-HTTP route, which has its own error mapping.
    const rest = index % 4 === 3;
    const answer = rest
      ? await call(pool, process, { path: '/pulse', method: 'POST', headers })
      : await call(pool, process, { path: '/graphql', method: 'POST', headers, body: '{"query":"mutation { heartbeat { lastSeen } }"}' });
    const outcome = rest ? classifyRest(answer, 204) : classifyGraphql(answer);
    this.#options.ledger.record(process.name, outcome);
    if (outcome.kind !== 'ok') return;
    // A heartbeat skipped by the write gap leaves last_hb up to the gap older than
    // the request; GraphQL's answer names the time it stands on.
    const lastSeen = rest ? null : (answer.json as { data?: { heartbeat?: { lastSeen?: string } } })?.data?.heartbeat?.lastSeen;
    const atLeastMs = lastSeen ? Date.parse(lastSeen) : sentAt - this.#options.minWriteGapSeconds * 1000;
    const window = this.#options.ledger.current;
    window.acknowledged++;
    const before = this.acknowledged.get(userId);
    if (!before || before.atLeastMs <= atLeastMs) this.acknowledged.set(userId, { atLeastMs, window });
  }

  async #graphqlRead(pool: Pool, process: PulseProcess, ids: string[]): Promise<void> {
    const body = JSON.stringify({ query: 'query ($ids: [ID!]!) { statuses(ids: $ids) { userId state lastSeen } }', variables: { ids } });
    const answer = await call(pool, process, { path: '/graphql', method: 'POST', headers: { 'content-type': 'application/json' }, body });
    this.#options.ledger.record(process.name, classifyGraphql(answer));
  }

  async #restRead(pool: Pool, process: PulseProcess, ids: string[]): Promise<void> {
    const answer = await call(pool, process, { path: `/status/profile?userId=${ids.join(',')}`, method: 'GET' });
    this.#options.ledger.record(process.name, classifyRest(answer, 200));
  }
}

interface Answer {
  status: number;
  retryAfter: string | null;
  json: unknown;
  /** Set when no HTTP answer came: the connection failed or timed out. */
  error?: string;
}

async function call(
  pool: Pool,
  process: PulseProcess,
  options: { path: string; method: 'GET' | 'POST'; headers?: Record<string, string>; body?: string },
): Promise<Answer> {
  try {
    const response = await pool.request(options);
    const text = await response.body.text();
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = text.slice(0, 200);
    }
    const retryAfter = response.headers['retry-after'];
    return { status: response.statusCode, retryAfter: typeof retryAfter === 'string' ? retryAfter : null, json };
  } catch (error) {
    const code = (error as { code?: string }).code ?? (error as Error).name;
    // The run killed this process: what was in flight is cut, as a client would see.
    return { status: 0, retryAfter: null, json: null, error: process.downByRun ? 'cut' : code };
  }
}

interface ErrorBody {
  errors?: Array<{ message?: string; extensions?: { code?: string } }>;
}

function firstError(json: unknown): { code: string; message: string } | null {
  const error = (json as ErrorBody | null)?.errors?.[0];
  return error ? { code: error.extensions?.code ?? 'NO_CODE', message: (error.message ?? '').slice(0, 100) } : null;
}

// Private: the only answers the issue allows besides success.
function classifyFailure(answer: Answer, path: string): Outcome {
  if (answer.error === 'cut') return { kind: 'cut' };
  if (answer.error) return { kind: 'bad', what: `${path}: no answer (${answer.error})` };
  const error = firstError(answer.json);
  if (answer.status === 429) return { kind: 'throttled' };
  if (answer.status === 503 && answer.retryAfter && error?.code === 'UNAVAILABLE') return { kind: 'unavailable' };
  return {
    kind: 'bad',
    what: `${path}: ${answer.status}${answer.status === 503 && !answer.retryAfter ? ' without Retry-After' : ''} ${error ? `${error.code} "${error.message}"` : JSON.stringify(answer.json)?.slice(0, 100)}`,
  };
}

function classifyGraphql(answer: Answer): Outcome {
  if (answer.status === 200 && !firstError(answer.json)) return { kind: 'ok' };
  return classifyFailure(answer, 'graphql');
}

function classifyRest(answer: Answer, success: number): Outcome {
  if (answer.status === success) return { kind: 'ok' };
  return classifyFailure(answer, 'rest');
}

/**
 * One live subscriber: a `presenceChanged` stream for its ids on one process,
 * reopened after it ends (with a short pause), keeping the last state it was sent
 * for each user, as a page would show it.
 */
export class Subscriber {
  /** userId -> the state of the last event received for that user. */
  readonly states = new Map<string, string>();
  connected = false;
  opens = 0;
  done: Promise<void> = Promise.resolve();
  #closed = false;
  #abort: AbortController | null = null;

  constructor(
    readonly index: number,
    readonly ids: readonly string[],
    readonly process: PulseProcess,
    readonly ledger: Ledger,
    readonly agent: Agent,
  ) {}

  start(): void {
    this.done = this.#run();
  }

  close(): void {
    this.#closed = true;
    this.#abort?.abort();
  }

  async #run(): Promise<void> {
    const body = JSON.stringify({ query: 'subscription ($ids: [ID!]) { presenceChanged(ids: $ids) { userId state } }', variables: { ids: this.ids } });
    while (!this.#closed) {
      if (!this.process.up) {
        await sleep(200);
        continue;
      }
      this.#abort = new AbortController();
      try {
        const response = await request(`http://127.0.0.1:${this.process.options.port}/graphql/stream`, {
          method: 'POST',
          dispatcher: this.agent,
          headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
          body,
          signal: this.#abort.signal,
        });
        if (response.statusCode !== 200 || !String(response.headers['content-type']).startsWith('text/event-stream')) {
          const text = await response.body.text();
          let json: unknown = null;
          try {
            json = JSON.parse(text);
          } catch {
            json = text.slice(0, 200);
          }
          const retryAfter = response.headers['retry-after'];
          this.ledger.record(this.process.name, classifyFailure({ status: response.statusCode, retryAfter: typeof retryAfter === 'string' ? retryAfter : null, json }, 'stream'));
        } else {
          this.opens++;
          this.connected = true;
          await this.#read(response.body as AsyncIterable<Buffer>);
        }
      } catch (error) {
        if (this.#closed) break;
        const code = (error as { code?: string }).code ?? (error as Error).name;
        this.ledger.record(this.process.name, this.process.downByRun ? { kind: 'cut' } : { kind: 'bad', what: `stream: connection lost (${code})` });
      }
      this.connected = false;
      if (!this.#closed) await sleep(250 + Math.floor(Math.random() * 500));
    }
  }

  async #read(stream: AsyncIterable<Buffer>): Promise<void> {
    let buffer = '';
    for await (const chunk of stream) {
      buffer += chunk.toString('utf8');
      let end;
      while ((end = buffer.indexOf('\n\n')) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event !== 'next' || !data) continue;
        const payload = JSON.parse(data) as { data?: { presenceChanged?: { userId: string; state: string } }; errors?: ErrorBody['errors'] };
        const status = payload.data?.presenceChanged;
        if (status) {
          this.states.set(status.userId, status.state);
        } else {
          const error = firstError(payload);
          this.ledger.record(
            this.process.name,
            error?.code === 'UNAVAILABLE' ? { kind: 'unavailable' } : { kind: 'bad', what: `stream event: ${error ? `${error.code} "${error.message}"` : data.slice(0, 100)}` },
          );
        }
      }
    }
  }
}
