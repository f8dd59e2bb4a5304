/**
 * Structured logs: one JSON object per line (pino), with a message and fields.
 *
 * Modules receive a {@link Logger} from the composition root instead of writing to
 * the console, so tests can silence or capture what a module says. Secrets never
 * reach a log line: known secret-bearing fields are redacted by path, and URLs
 * are redacted before they are logged (see redactUrl).
 */
import pino from 'pino';
import type { LogLevel } from './config';

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** A logger whose lines all carry `bindings` (e.g. a request id). */
  child(bindings: Record<string, unknown>): Logger;
}

// Fields that may carry a credential, wherever a caller puts them.
const REDACT = [
  'authorization',
  'token',
  'password',
  'secret',
  'jwtSecret',
  '*.authorization',
  '*.token',
  '*.password',
  '*.secret',
  'headers.authorization',
  'req.headers.authorization',
];

/**
 * A logger at `level`. Lines go to stderr unless `write` is given (tests capture
 * them that way).
 */
export function createLogger(level: LogLevel = 'info', write?: (line: string) => void): Logger {
  const destination = write ? { write } : pino.destination({ fd: 2, sync: true });
  return wrap(
    pino(
      {
        level,
        base: undefined,
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
        redact: { paths: REDACT, censor: '[redacted]' },
        serializers: { error: pino.stdSerializers.err },
      },
      destination,
    ),
  );
}

// Private: Pulse's call shape (message first) over pino's (fields first).
function wrap(base: pino.Logger): Logger {
  return {
    debug: (message, fields) => base.debug(fields ?? {}, message),
    info: (message, fields) => base.info(fields ?? {}, message),
    warn: (message, fields) => base.warn(fields ?? {}, message),
    error: (message, fields) => base.error(fields ?? {}, message),
    child: (bindings) => wrap(base.child(bindings)),
  };
}

/** A logger that drops everything: for tests and tools that print their own output. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
};
