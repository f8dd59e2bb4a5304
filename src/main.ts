/**
 * `npm start`: read the configuration, start Pulse, stop cleanly on SIGTERM/SIGINT.
 *
 * With PULSE_WORKERS > 1 this process becomes the cluster's primary
 * (src/cluster/primary.ts), and the workers it forks run this same file: each
 * starts a whole Pulse, linked to the primary.
 */
import cluster from 'node:cluster';
import { startPulse, StartupError, type Pulse } from './app';
import { connectToPrimary } from './cluster/worker';
import { startPrimary } from './cluster/primary';
import { ConfigError, loadConfig, type Config } from './config';
import { EmbeddedPostgresError } from './db/embedded-postgres';
import { MigrationError } from './db/migrator';
import { toPulseError } from './errors';
import { createLogger, type Logger } from './logger';

/** How long a shutdown may take before the process exits anyway. */
const SHUTDOWN_GRACE_MS = 25_000;

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
  const rootLogger = createLogger(config.logLevel);

  if (cluster.isPrimary && config.cluster.workers > 1) {
    try {
      const primary = await startPrimary(config, rootLogger);
      process.exit(await primary.exited);
    } catch (error) {
      rootLogger.error(`Pulse could not start: ${explainStartFailure(error)}`);
      if (!isExplained(error)) rootLogger.error('cause', { error });
      process.exit(1);
    }
  }

  const worker = cluster.isWorker && config.cluster.workerIndex ? connectToPrimary(config.cluster.workerIndex) : undefined;
  const logger = worker ? rootLogger.child({ worker: worker.index }) : rootLogger;
  let pulse: Pulse;
  try {
    pulse = await startPulse(config, logger, { cluster: worker });
  } catch (error) {
    logger.error(`Pulse could not start: ${explainStartFailure(error)}`);
    if (!isExplained(error)) logger.error('cause', { error });
    process.exit(1);
  }

  // A worker whose primary is killed exits at once: node:cluster ends a worker
  // whose IPC channel closes unexpectedly, so none outlives its primary.
  onShutdownSignal(logger, () => pulse.stop());
}

function explainStartFailure(error: unknown): string {
  if (error instanceof MigrationError) return error.message;
  if (isExplained(error)) return (error as Error).message;
  const known = toPulseError(error);
  if (known?.code === 'UNAVAILABLE') {
    return `the database cannot be reached (${(error as Error).message}): check DATABASE_URL and that the server is up.`;
  }
  return error instanceof Error ? error.message : String(error);
}

function isExplained(error: unknown): boolean {
  return error instanceof EmbeddedPostgresError || error instanceof StartupError || error instanceof MigrationError;
}

// Private: the first signal starts an orderly stop; a second one while stopping is
// logged and ignored, so an impatient Ctrl-C cannot cut a flush in half. The grace
// timer ends a stop that hangs.
function onShutdownSignal(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handle = (reason: string) => {
    if (stopping) {
      logger.warn(`${reason} while shutting down; still finishing`);
      return;
    }
    stopping = true;
    logger.info(`${reason}: shutting down`);
    const grace = setTimeout(() => {
      logger.error(`shutdown took longer than ${SHUTDOWN_GRACE_MS / 1000} s; exiting`);
      process.exit(1);
    }, SHUTDOWN_GRACE_MS);
    grace.unref();
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error('shutdown failed', { error });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => handle('SIGTERM received'));
  process.on('SIGINT', () => handle('SIGINT received'));
}

void main();
