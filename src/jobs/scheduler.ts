/**
 * node-cron wiring for the scheduled jobs. The jobs themselves are plain
 * functions of (db, now), tested without a clock; this file only decides when
 * they run, keeps a run from overlapping the previous one, and makes sure a
 * failure is logged and counted instead of taking the process down.
 */
import cron from 'node-cron';
import type { Database } from '../db/database';
import type { Logger } from '../logger';
import type { Metrics } from '../observability/metrics';
import { runRetention, type RetentionOptions } from './retention';

export interface JobStats {
  runs: number;
  failures: number;
  deleted: number;
}

export interface Scheduler {
  readonly retention: JobStats;
  /**
   * Runs the retention job now, exactly as its schedule does: skipped while a run
   * is in progress, a failure logged and counted (never thrown). Resolves when
   * the run ends. Rejects only when retention is not configured (RETENTION_CRON).
   */
  runRetention(): Promise<void>;
  /** Stops scheduling and waits for a run in progress to finish. */
  stop(): Promise<void>;
}

export function startScheduler(options: {
  db: Database;
  logger: Logger;
  metrics?: Pick<Metrics, 'jobRuns'>;
  retention: (RetentionOptions & { cron: string }) | null;
}): Scheduler {
  const { db, logger, retention } = options;
  const stats: JobStats = { runs: 0, failures: 0, deleted: 0 };
  let running: Promise<void> | null = null;

  const runRetentionJob = (): Promise<void> => {
    if (!retention) return Promise.reject(new Error('retention is not configured: set RETENTION_CRON'));
    // A run still going when the next tick comes is left alone, not doubled.
    if (running) return running;
    running = (async () => {
      try {
        const result = await runRetention(db, new Date(), retention);
        stats.runs += 1;
        options.metrics?.jobRuns.inc({ job: 'retention', outcome: result.ran ? 'ok' : 'skipped' });
        if (result.ran) {
          stats.deleted += result.deleted;
          logger.info(`retention: deleted ${result.deleted} pulse rows in ${result.steps} steps`);
        } else {
          logger.info('retention: another instance is running it; skipped');
        }
      } catch (error) {
        stats.failures += 1;
        options.metrics?.jobRuns.inc({ job: 'retention', outcome: 'failed' });
        logger.error('retention: run failed', { error });
      } finally {
        running = null;
      }
    })();
    return running;
  };

  let task: ReturnType<typeof cron.schedule> | null = null;
  if (retention) {
    logger.info(`retention: scheduled "${retention.cron}", deleting rows older than ${retention.retentionSeconds} s`);
    // The guard above keeps runs from overlapping, so node-cron's noOverlap is not used.
    task = cron.schedule(retention.cron, () => void runRetentionJob(), { name: 'pulse-retention' });
  }

  return {
    retention: stats,
    runRetention: runRetentionJob,
    async stop() {
      await task?.stop();
      await running;
    },
  };
}
