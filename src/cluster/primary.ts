/**
 * The primary of a Pulse instance with PULSE_WORKERS > 1: it serves nothing
 * itself. It forks the workers (each a whole Pulse, listening on the same port
 * through node:cluster, which hands each new connection to the next worker in
 * turn), replaces a worker that dies, answers /metrics and /readyz for the whole
 * instance when a worker asks, and on SIGTERM stops every worker and waits for
 * each to drain (buffered heartbeats written and answered) before it exits.
 *
 * What the workers share is prepared here once, before any is forked: the
 * embedded PostgreSQL when DATABASE_URL is unset (one server, started by the one
 * process that will also stop it) and the development JWT secret (created once,
 * so no two workers race to write different secrets).
 *
 * Everything else stays per worker, on purpose: each has its own pool
 * (connections = PULSE_WORKERS x DB_POOL_MAX), its own group commit and its own
 * per-user repeat limit (a user whose heartbeats land on two workers may be
 * written twice per write gap: see docs/scale-out.md).
 */
import cluster, { type Worker } from 'node:cluster';
import path from 'node:path';
import { AggregatorRegistry, Counter, Gauge, Registry, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { resolveJwtSecret } from '../auth/jwt-secret';
import type { Config } from '../config';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../db/embedded-postgres';
import type { Logger } from '../logger';
import { answer, call } from './ipc';
import type { InstanceReadiness, WorkerReadiness } from './worker';

/** How long a shutdown may take before the primary kills what is left and exits. */
const SHUTDOWN_GRACE_MS = 30_000;
/** How long the primary waits for one worker's metrics or readiness. */
const WORKER_ANSWER_MS = 3_000;
/** Restart delays double from this ... */
const RESTART_FIRST_DELAY_MS = 500;
/** ... up to this, while a slot's workers keep dying young. */
const RESTART_MAX_DELAY_MS = 30_000;
/** A worker that ran this long before dying was healthy: its replacement starts at once again. */
const HEALTHY_UPTIME_MS = 30_000;

// Private: one slot per configured worker; a dead worker's replacement takes its
// slot (and its `worker` label), so labels stay 1..PULSE_WORKERS.
interface Slot {
  readonly index: number;
  worker: Worker | null;
  startedAt: number;
  listening: boolean;
  /** Deaths in a row of workers that ran less than HEALTHY_UPTIME_MS. */
  youngDeaths: number;
  restartTimer: NodeJS.Timeout | null;
}

export interface Primary {
  /** Resolves with the exit code once every worker has stopped (after a signal, or a failed start). */
  readonly exited: Promise<number>;
}

export async function startPrimary(config: Config, logger: Logger): Promise<Primary> {
  const workerCount = config.cluster.workers;
  logger.info(`cluster: primary (pid ${process.pid}) starting ${workerCount} workers`);

  // Shared state first: the embedded database and the development secret.
  let embedded: EmbeddedPostgres | null = null;
  const workerEnv: Record<string, string> = {};
  if (!config.database.url) {
    const clusterDir = path.join(config.dataDir, 'postgres');
    embedded = await startEmbeddedPostgres({ clusterDir, port: config.database.embeddedPort, logger });
    workerEnv.DATABASE_URL = embedded.url;
  }
  try {
    resolveJwtSecret(config, logger);
  } catch (error) {
    await embedded?.stop();
    throw error;
  }

  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'pulse_process_', labels: { worker: 'primary' } });
  const restarts = new Counter({
    name: 'pulse_cluster_worker_restarts_total',
    help: 'Workers that died and were replaced, by slot (label worker)',
    labelNames: ['worker'] as const,
    registers: [registry],
  });
  const slots: Slot[] = Array.from({ length: workerCount }, (_, i) => ({
    index: i + 1,
    worker: null,
    startedAt: 0,
    listening: false,
    youngDeaths: 0,
    restartTimer: null,
  }));
  new Gauge({
    name: 'pulse_cluster_workers',
    help: 'Workers by state: configured (PULSE_WORKERS), running (a live process), listening (serving HTTP)',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      this.set({ state: 'configured' }, workerCount);
      this.set({ state: 'running' }, slots.filter((s) => s.worker && !s.worker.isDead()).length);
      this.set({ state: 'listening' }, slots.filter((s) => s.listening).length);
    },
  });

  let stopping = false;
  let everListening = false;
  let finish!: (code: number) => void;
  const exited = new Promise<number>((resolve) => (finish = resolve));

  const liveWorkers = () => slots.flatMap((s) => (s.worker && s.worker.isConnected() ? [s.worker] : []));

  // /metrics for the instance: every worker's registry and the primary's, summed
  // by prom-client's cluster aggregation (series with a `worker` label stay apart).
  const instanceMetrics = async () => {
    const answers = await Promise.allSettled(liveWorkers().map((w) => call<MetricObjectWithValues<MetricValue<string>>[][]>(w, 'metrics', WORKER_ANSWER_MS)));
    const perWorker = answers.flatMap((a) => (a.status === 'fulfilled' ? a.value : []));
    const aggregated = AggregatorRegistry.aggregate([...perWorker, await registry.getMetricsAsJSON()]);
    return aggregated.metrics();
  };

  // /readyz for the instance: ready while at least one worker is, because the
  // port keeps serving through any worker that is.
  const instanceReadiness = async (): Promise<InstanceReadiness> => {
    const workers = await Promise.all(
      slots.map(async (slot): Promise<WorkerReadiness> => {
        const worker = slot.worker;
        if (!worker || !worker.isConnected()) return { worker: slot.index, ready: false, reason: 'not running' };
        try {
          const own = await call<{ ready: boolean }>(worker, 'readiness', WORKER_ANSWER_MS);
          return { worker: slot.index, ...own };
        } catch (error) {
          return { worker: slot.index, ready: false, reason: (error as Error).message };
        }
      }),
    );
    return { ready: workers.some((w) => w.ready), workers };
  };

  const fork = (slot: Slot) => {
    slot.restartTimer = null;
    const worker = cluster.fork({ ...workerEnv, PULSE_WORKER_INDEX: String(slot.index) });
    slot.worker = worker;
    slot.startedAt = Date.now();
    slot.listening = false;
    logger.info(`cluster: worker ${slot.index} started (pid ${worker.process.pid})`);
    answer(worker, { 'instance-metrics': instanceMetrics, 'instance-readiness': instanceReadiness });
    worker.on('listening', () => {
      slot.listening = true;
      everListening = true;
      if (!slots.every((s) => s.listening)) return;
      logger.info(`cluster: all ${workerCount} workers listening on port ${config.http.port}${announced ? ' again' : ''}`);
      announced = true;
    });
    worker.on('exit', (code, signal) => onExit(slot, worker, code, signal));
  };

  let announced = false;

  const onExit = (slot: Slot, worker: Worker, code: number | null, signal: string | null) => {
    if (slot.worker !== worker) return;
    slot.listening = false;
    const how = signal ? `signal ${signal}` : `exit code ${code}`;
    if (stopping) {
      logger.info(`cluster: worker ${slot.index} (pid ${worker.process.pid}) stopped (${how})`);
      slot.worker = null;
      if (code !== 0) stoppedCleanly = false;
      if (slots.every((s) => !s.worker)) void finishStop();
      return;
    }
    slot.worker = null;
    // A worker that dies before the instance ever served is a start that failed
    // (an unreachable database, a taken port): retrying would only repeat it, so
    // stop, as a single process would.
    if (!everListening) {
      logger.error(`cluster: worker ${slot.index} could not start (${how}); stopping`);
      startFailed = true;
      void stop('SIGTERM');
      return;
    }
    const uptimeMs = Date.now() - slot.startedAt;
    slot.youngDeaths = uptimeMs >= HEALTHY_UPTIME_MS ? 0 : slot.youngDeaths + 1;
    const delayMs = slot.youngDeaths === 0 ? 0 : Math.min(RESTART_MAX_DELAY_MS, RESTART_FIRST_DELAY_MS * 2 ** (slot.youngDeaths - 1));
    restarts.inc({ worker: String(slot.index) });
    logger.error(
      `cluster: worker ${slot.index} (pid ${worker.process.pid}) died (${how}) after ${(uptimeMs / 1000).toFixed(1)} s; ` +
        `starting a replacement in ${(delayMs / 1000).toFixed(1)} s`,
    );
    slot.restartTimer = setTimeout(() => fork(slot), delayMs);
  };

  let stoppedCleanly = true;
  let startFailed = false;
  let graceTimer: NodeJS.Timeout | null = null;

  const finishStop = async () => {
    if (graceTimer) clearTimeout(graceTimer);
    if (embedded) {
      logger.info('cluster: stopping the embedded PostgreSQL');
      await embedded.stop().catch((error: unknown) => {
        logger.error('cluster: the embedded PostgreSQL did not stop cleanly', { error: (error as Error).message });
        stoppedCleanly = false;
      });
    }
    const code = startFailed || !stoppedCleanly ? 1 : 0;
    logger.info(`cluster: every worker has stopped; exiting with ${code}`);
    finish(code);
  };

  // Forwards the signal and waits: each worker drains (Connection: close, then its
  // listener closes), writes its buffered heartbeats, answers them and exits.
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn(`cluster: ${signal} received while stopping; still waiting for the workers`);
      return;
    }
    stopping = true;
    for (const slot of slots) {
      if (slot.restartTimer) clearTimeout(slot.restartTimer);
      slot.restartTimer = null;
    }
    const running = slots.filter((s) => s.worker);
    logger.info(`cluster: ${signal}: stopping ${running.length} workers and waiting for each to drain`);
    for (const slot of running) slot.worker!.process.kill(signal);
    graceTimer = setTimeout(() => {
      logger.error(`cluster: workers still running after ${SHUTDOWN_GRACE_MS / 1000} s; killing them`);
      stoppedCleanly = false;
      for (const slot of slots) slot.worker?.process.kill('SIGKILL');
    }, SHUTDOWN_GRACE_MS);
    graceTimer.unref();
    if (running.length === 0) await finishStop();
  };

  process.on('SIGTERM', (signal) => void stop(signal));
  process.on('SIGINT', (signal) => void stop(signal));

  for (const slot of slots) fork(slot);
  return { exited };
}
