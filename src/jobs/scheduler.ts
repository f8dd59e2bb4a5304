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
  /** Stops scheduling and waits for a run in progress to finish. */
  stop(): Promise<void>;
}

export function startScheduler(options: {
  db: Database;
  logger: Logger;
  metrics?: Pick<Metrics, 'jobRuns'>;
  retention: (RetentionOptions & { cron: string }) | null;
}): Scheduler {
  const { db, logger } = options;
  const stats: JobStats = { runs: 0, failures: 0, deleted: 0 };
  let running: Promise<void> | null = null;

  const task = options.retention
    ? (() => {
        const retention = options.retention;
        const tick = () => {
          // A run still going when the next tick comes is left alone, not doubled.
          // (node-cron's own noOverlap cannot see it: the tick returns before the run ends.)
          if (running) return;
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
        };
        logger.info(`retention: scheduled "${retention.cron}", deleting rows older than ${retention.retentionSeconds} s`);
        return cron.schedule(retention.cron, tick, { name: 'pulse-retention' });
      })()
    : null;

  return {
    retention: stats,
    async stop() {
      await task?.stop();
      await running;
    },
  };
}
