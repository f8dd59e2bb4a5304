/**
 * Prometheus metrics, served at /metrics. One registry per Pulse instance (no
 * process-wide default registry), so tests and several instances in one process
 * never share counters. The process's own figures are the exception: they are
 * collected once per process and shown by every instance in it (see
 * processMetrics below).
 *
 * Labels are bounded by Pulse itself (outcomes, route names, GraphQL root fields),
 * never by caller-supplied strings, so a client cannot blow up cardinality.
 *
 * In a worker of a cluster (PULSE_WORKERS > 1), the primary sums every worker's
 * registry into one answer for the instance (src/cluster/primary.ts):
 * Pulse's series keep their names and mean the whole instance. Only what is
 * meaningless summed carries a `worker` label: the process's own figures
 * (memory, CPU, event loop lag), and a per-worker copy of heartbeats and requests
 * that shows how evenly the workers share the load.
 */
import type pg from 'pg';
import type { ReplicaHealth } from '../db/read-replicas';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The `outcome` label of pulse_heartbeats_total. */
type HeartbeatOutcomeLabel = 'accepted' | 'rejected' | 'limited' | 'written' | 'skipped' | 'failed';

export interface Metrics {
  readonly registry: Registry;
  readonly heartbeats: Counter<'outcome'>;
  readonly heartbeatBatchSize: Histogram;
  readonly statements: Counter;
  readonly requestDuration: Histogram<'operation'>;
  readonly jobRuns: Counter<'job' | 'outcome'>;
  /** Event streams refused: client_limit (429) or process_full (503). */
  readonly streamsRefused: Counter<'reason'>;
  /** Requests refused by a per-client rate (sign-up, search): 429 RATE_LIMITED. */
  readonly rateLimited: Counter<'action'>;
  /** Reports the pool's occupancy on every scrape. */
  observePool(pool: pg.Pool): void;
  /** Reports live presence's subscriptions, watched users and timers on every scrape. */
  observeLive(live: { readonly size: { subscriptions: number; watchedUsers: number; deadlines: number } }): void;
  /** Reads a read replica may serve, by where they went. */
  readonly replicaReads: Counter<'route'>;
  /** Times a read replica was found unreachable. */
  readonly readReplicaDown: Counter<'replica'>;
  /** Reports each read replica's lag and standing on every scrape. */
  observeReadReplicas(replicas: { readonly health: readonly ReplicaHealth[] }): void;
  /** Requests refused at once because the database is saturated, by route (graphql, stream, rest). */
  readonly shedRequests: Counter<'route'>;
  /** Errors sent to GraphQL callers, by `extensions.code`. */
  readonly graphqlErrors: Counter<'code'>;
  /** GraphQL operations executed, by executor: `compiled` (graphql-jit) or `graphql-js`. */
  readonly graphqlExecutions: Counter<'executor'>;
  /** From a change reaching this process (bus message, timer) to its events being sent. */
  readonly liveEventDelay: Histogram;
  /** Change events sent to subscribers (one per subscriber and changed user). */
  readonly liveEvents: Counter;
  /**
   * Reports readiness (what /readyz answers) on every scrape: 1 ready, 0 not.
   * `ready` returns null when it cannot check now without harm: the last answer stands.
   */
  observeReadiness(ready: () => Promise<boolean> | null): void;
  /** Reports whether the presence bus's listening connection is up on every scrape. */
  observeBus(bus: { readonly connected: boolean }): void;
}

/** When a readiness check still running counts as failed. */
const READINESS_STUCK_MS = 10_000;

/** The codes Pulse and Apollo give errors; anything else is counted as OTHER (bounded labels). */
const ERROR_CODES = new Set([
  'BAD_USER_INPUT',
  'USERNAME_TAKEN',
  'UNAUTHENTICATED',
  'UNAVAILABLE',
  'RATE_LIMITED',
  'SIGNUP_DISABLED',
  'INTERNAL_SERVER_ERROR',
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_REQUEST',
  'PERSISTED_QUERY_NOT_FOUND',
  'PERSISTED_QUERY_NOT_SUPPORTED',
  'OPERATION_RESOLUTION_FAILURE',
]);

/** The label an error code is counted under. */
export function errorCodeLabel(code: unknown): string {
  return typeof code === 'string' && ERROR_CODES.has(code) ? code : 'OTHER';
}


export interface MetricsOptions {
  /** In a worker of a cluster: its slot (1..PULSE_WORKERS), the value of the `worker` label. */
  worker?: number | null;
}

// Private: the process's figures (CPU, memory, handles, event loop lag, GC), by
// `worker` label ('' for none). prom-client's collectors for them cannot be
// stopped: a GC PerformanceObserver and an event loop delay monitor sampling
// every 10 ms live as long as the process. So they are made once per process,
// and a Pulse started again in it (tests, an embedding application) shows the
// same ones instead of adding another set that nothing would ever end.
const processMetricsByWorker = new Map<string, Registry>();

function processMetrics(worker: string | null): Registry {
  let registry = processMetricsByWorker.get(worker ?? '');
  if (!registry) {
    registry = new Registry();
    collectDefaultMetrics({ register: registry, prefix: 'pulse_process_', ...(worker ? { labels: { worker } } : {}) });
    processMetricsByWorker.set(worker ?? '', registry);
  }
  return registry;
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const worker = options.worker ? String(options.worker) : null;
  // A registry of this instance's own, which starts with the process's figures.
  const registry = Registry.merge([processMetrics(worker)]);

  const heartbeats = new Counter({
    name: 'pulse_heartbeats_total',
    help: 'Heartbeats by outcome: accepted (authenticated), rejected (bad or missing token), limited (a repeat within the per-user interval, answered without work), written (row updated), skipped (within the minimum write gap), failed (write failed)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const heartbeatBatchSize = new Histogram({
    name: 'pulse_heartbeat_batch_size',
    help: 'Distinct users written per heartbeat statement',
    buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000],
    registers: [registry],
  });
  const statements = new Counter({
    name: 'pulse_sql_statements_total',
    help: 'SQL statements sent to the database',
    registers: [registry],
  });
  const requestDuration = new Histogram({
    name: 'pulse_request_duration_seconds',
    help: 'Request latency by operation (GraphQL root fields, or the HTTP route)',
    labelNames: ['operation'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const jobRuns = new Counter({
    name: 'pulse_job_runs_total',
    help: 'Scheduled job runs by job and outcome (ok, skipped, failed)',
    labelNames: ['job', 'outcome'] as const,
    registers: [registry],
  });

  const streamsRefused = new Counter({
    name: 'pulse_streams_refused_total',
    help: 'Event streams refused: client_limit (STREAMS_PER_CLIENT reached, 429) or process_full (STREAMS_MAX reached, 503)',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const rateLimited = new Counter({
    name: 'pulse_rate_limited_total',
    help: 'Requests refused with RATE_LIMITED (429) by a per-client rate, by action (signup, search)',
    labelNames: ['action'] as const,
    registers: [registry],
  });
  const replicaReads = new Counter({
    name: 'pulse_replica_reads_total',
    help: 'Reads a read replica may serve, by route: replica (served by one), primary (no replica in good standing), fallback (a replica failed under the read; it ran again on the primary)',
    labelNames: ['route'] as const,
    registers: [registry],
  });
  const readReplicaDown = new Counter({
    name: 'pulse_read_replica_down_total',
    help: 'Times a read replica was found unreachable (by a lag check or under a read) and skipped',
    labelNames: ['replica'] as const,
    registers: [registry],
  });

  if (worker) {
    // Read from the instance-wide series at scrape time, so the hot path counts once.
    new Counter({
      name: 'pulse_worker_heartbeats_total',
      help: 'pulse_heartbeats_total of one worker process (label worker), by outcome',
      labelNames: ['worker', 'outcome'] as const,
      registers: [registry],
      async collect() {
        this.reset();
        for (const { labels, value } of (await heartbeats.get()).values) this.inc({ worker, outcome: String(labels.outcome) }, value);
      },
    });
    new Counter({
      name: 'pulse_worker_requests_total',
      help: 'Requests (GraphQL operations and REST routes) answered by one worker process (label worker)',
      labelNames: ['worker'] as const,
      registers: [registry],
      async collect() {
        const counts = (await requestDuration.get()).values.filter((v) => v.metricName === 'pulse_request_duration_seconds_count');
        this.reset();
        this.inc({ worker }, counts.reduce((sum, v) => sum + v.value, 0));
      },
    });
  }

  const shedRequests = new Counter({
    name: 'pulse_requests_shed_total',
    help: 'Requests refused at once with 503 because too many were already waiting for a database connection, by route',
    labelNames: ['route'] as const,
    registers: [registry],
  });
  const graphqlErrors = new Counter({
    name: 'pulse_graphql_errors_total',
    help: 'Errors sent to GraphQL callers, by extensions.code',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  const graphqlExecutions = new Counter({
    name: 'pulse_graphql_executions_total',
    help: 'GraphQL operations executed, by executor: compiled (graphql-jit, for documents seen before) or graphql-js',
    labelNames: ['executor'] as const,
    registers: [registry],
  });
  const liveEventDelay = new Histogram({
    name: 'pulse_live_event_delay_seconds',
    help: 'Live presence: from a change reaching this process (a bus message, an offline timer) to its events being sent to subscribers',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });

  const liveEvents = new Counter({
    name: 'pulse_live_events_total',
    help: 'Live presence: change events sent to subscribers (one per subscriber and changed user; first statuses not counted)',
    registers: [registry],
  });

  // Every known label value starts at 0, so rates and alerts see a series from
  // the first scrape instead of "no data" until the first increment.
  for (const outcome of ['accepted', 'rejected', 'limited', 'written', 'skipped', 'failed'] satisfies HeartbeatOutcomeLabel[]) heartbeats.inc({ outcome }, 0);
  for (const route of ['graphql', 'stream', 'rest']) shedRequests.inc({ route }, 0);
  for (const outcome of ['ok', 'skipped', 'failed']) jobRuns.inc({ job: 'retention', outcome }, 0);
  for (const code of ERROR_CODES) graphqlErrors.inc({ code }, 0);
  for (const executor of ['compiled', 'graphql-js']) graphqlExecutions.inc({ executor }, 0);

  // A gauge read on every scrape, rather than kept up to date on every change.
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });

  return {
    registry,
    heartbeats,
    heartbeatBatchSize,
    statements,
    requestDuration,
    jobRuns,
    streamsRefused,
    rateLimited,
    observePool(pool) {
      gauge('pulse_db_pool_in_use', 'Pool connections running a statement', () => pool.totalCount - pool.idleCount);
      gauge('pulse_db_pool_idle', 'Pool connections open and idle', () => pool.idleCount);
      gauge('pulse_db_pool_waiting', 'Requests waiting for a pool connection', () => pool.waitingCount);
      gauge('pulse_db_pool_max', 'Most connections the pool opens (DB_POOL_MAX)', () => pool.options.max ?? 10);
    },
    observeLive(live) {
      gauge('pulse_live_subscriptions', 'Open presenceChanged subscriptions on this process', () => live.size.subscriptions);
      gauge('pulse_live_watched_users', 'Distinct users watched by them', () => live.size.watchedUsers);
      gauge('pulse_live_timers', 'Watched users with a pending status change (going offline, a status expiring)', () => live.size.deadlines);
    },
    replicaReads,
    readReplicaDown,
    observeReadReplicas(replicas) {
      // Labelled by replica (host:port/database from READ_DATABASE_URL): bounded by configuration.
      const perReplica = (name: string, help: string, read: (health: ReplicaHealth) => number) =>
        new Gauge({
          name,
          help,
          labelNames: ['replica'] as const,
          registers: [registry],
          collect() {
            for (const health of replicas.health) this.set({ replica: health.name }, read(health));
          },
        });
      perReplica(
        'pulse_read_replica_lag_seconds',
        'Seconds a read replica is behind the primary at the last check (0 when it has replayed all the primary had written; NaN while unreachable)',
        (health) => health.lagSeconds ?? Number.NaN,
      );
      perReplica('pulse_read_replica_up', 'Whether a read replica answered its last check (1) or not (0)', (health) =>
        health.state === 'down' || health.state === 'starting' ? 0 : 1,
      );
      perReplica(
        'pulse_read_replica_serving',
        'Whether a read replica is taking reads (1: up, a standby, within READ_REPLICA_MAX_LAG_SECONDS) or skipped (0)',
        (health) => (health.state === 'serving' ? 1 : 0),
      );
    },
    shedRequests,
    graphqlErrors,
    graphqlExecutions,
    liveEventDelay,
    liveEvents,
    observeReadiness(ready) {
      // The check needs the database, and /metrics must answer at once even while
      // the pool is saturated (when it matters most): a scrape reports the last
      // answer and starts a new check in the background; a check stuck for longer
      // than a load balancer would wait for /readyz counts as not ready.
      let last = false;
      let running: { since: number } | null = null;
      const check = () => {
        if (running) return;
        const answer = ready();
        if (!answer) return;
        const current = { since: Date.now() };
        running = current;
        void answer
          .catch(() => false)
          .then((value) => {
            last = value;
            if (running === current) running = null;
          });
      };
      check();
      new Gauge({
        name: 'pulse_ready',
        help: 'Whether this instance is ready to serve (what /readyz answers, as of the last check): 1 ready, 0 not',
        registers: [registry],
        collect() {
          const stuck = running !== null && Date.now() - running.since > READINESS_STUCK_MS;
          this.set(last && !stuck ? 1 : 0);
          check();
        },
      });
    },
    observeBus(bus) {
      gauge('pulse_bus_connected', 'Whether the presence bus is listening (1) or its connection is lost (0): events from other instances are missed while 0', () =>
        bus.connected ? 1 : 0,
      );
    },
  };
}
