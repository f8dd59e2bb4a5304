/**
 * `npm start`: read the configuration, start Pulse, stop cleanly on SIGTERM/SIGINT.
 */
import { startPulse, StartupError, type Pulse } from './app';
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
  const logger = createLogger(config.logLevel);

  let pulse: Pulse;
  try {
    pulse = await startPulse(config, logger);
  } catch (error) {
    logger.error(`Pulse could not start: ${explainStartFailure(error)}`);
    if (!isExplained(error)) logger.error('cause', { error });
    process.exit(1);
  }

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
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn(`${signal} received while shutting down; still finishing`);
      return;
    }
    stopping = true;
    logger.info(`${signal} received: shutting down`);
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
  process.on('SIGTERM', handle);
  process.on('SIGINT', handle);
}

void main();
