/**
 * A worker's side of the cluster: it answers the primary's questions about
 * itself (its metrics, its readiness) and asks the primary for the instance's
 * answers, which it serves at /metrics and /readyz. A request reaches whichever
 * worker node:cluster hands the connection to, and a load balancer or Prometheus
 * must hear about the whole instance, not about one worker picked at random.
 */
import type { Metrics } from '../observability/metrics';
import { answer, call, type Channel } from './ipc';

/** One worker's readiness, as /readyz reports it in the instance's answer. */
export interface WorkerReadiness {
  worker: number;
  ready: boolean;
  reason?: string;
  [detail: string]: unknown;
}

/** /readyz of an instance: ready while at least one worker is. */
export interface InstanceReadiness {
  ready: boolean;
  workers: WorkerReadiness[];
}

/** How long a worker waits for the primary's instance-wide answer. */
const PRIMARY_ANSWER_MS = 5_000;

export interface ClusterWorker {
  /** This worker's slot, 1..PULSE_WORKERS. */
  readonly index: number;
  /** /metrics for the whole instance, summed by the primary. */
  instanceMetrics(): Promise<string>;
  /** /readyz for the whole instance. */
  instanceReadiness(): Promise<InstanceReadiness>;
  /**
   * From now on, answers the primary with this worker's metrics and readiness
   * (until then: no metrics, and "starting").
   */
  serve(self: { metrics: Metrics; readiness(): Promise<{ ready: boolean }> }): void;
}

/** The link to the primary, over this process's IPC channel. */
export function connectToPrimary(index: number, channel: Channel = process as unknown as Channel): ClusterWorker {
  let self: { metrics: Metrics; readiness(): Promise<{ ready: boolean }> } | null = null;
  answer(channel, {
    metrics: async () => (self ? [await self.metrics.registry.getMetricsAsJSON()] : []),
    readiness: async () => (self ? self.readiness() : { ready: false, reason: 'starting' }),
  });
  return {
    index,
    instanceMetrics: () => call<string>(channel, 'instance-metrics', PRIMARY_ANSWER_MS),
    instanceReadiness: () => call<InstanceReadiness>(channel, 'instance-readiness', PRIMARY_ANSWER_MS),
    serve(s) {
      self = s;
    },
  };
}
