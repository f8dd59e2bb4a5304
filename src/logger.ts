/**
 * Structured logs: one JSON object per line (pino), with a message and fields.
 *
 * Modules receive a {@link Logger} from the composition root instead of writing to
 * the console, so tests can silence or capture what a module says.
 *
 * What a line may carry is decided here, whatever a caller passes:
 *  - an error is its type, message, code (a SQLSTATE such as 57P01, or a Node
 *    code such as ECONNREFUSED), stack and cause, never its other properties (a
 *    pg error can carry the whole client: connection parameters, type parsers,
 *    kilobytes per line);
 *  - plain objects and arrays are kept to a few levels; any other object is
 *    named, not walked, so no line is an object graph;
 *  - secrets never reach a line: fields named like one (password, token,
 *    authorization...) are redacted, and in every string, the message included,
 *    the password of a URL (`postgres://user:***@host`), `password=` settings,
 *    bearer credentials and JWTs are masked.
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
      },
      destination,
    ),
  );
}

// Private: Pulse's call shape (message first) over pino's (fields first), with
// every message and field made loggable first.
function wrap(base: pino.Logger): Logger {
  const fieldsOf = (fields: Record<string, unknown> | undefined) => (fields ? (toLoggable(fields, 0) as Record<string, unknown>) : {});
  return {
    debug: (message, fields) => base.debug(fieldsOf(fields), redactSecrets(message)),
    info: (message, fields) => base.info(fieldsOf(fields), redactSecrets(message)),
    warn: (message, fields) => base.warn(fieldsOf(fields), redactSecrets(message)),
    error: (message, fields) => base.error(fieldsOf(fields), redactSecrets(message)),
    child: (bindings) => wrap(base.child(fieldsOf(bindings))),
  };
}

/** How deep plain objects and arrays are kept, and how long an array. */
const MAX_DEPTH = 4;
const MAX_ITEMS = 20;

// Private: a value as a log line may carry it (see the rules at the top).
function toLoggable(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redactSecrets(value);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'function' || typeof value === 'symbol') return undefined;
  if (value === null || typeof value !== 'object') return value;
  if (isErrorLike(value)) return loggableError(value, depth);
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString();
  if (depth >= MAX_DEPTH) return '[nested too deep]';
  if (Array.isArray(value)) return value.slice(0, MAX_ITEMS).map((item) => toLoggable(item, depth + 1));
  const prototype = Object.getPrototypeOf(value) as object | null;
  if (prototype !== Object.prototype && prototype !== null) {
    return `[${(value as { constructor?: { name?: string } }).constructor?.name || 'object'}]`;
  }
  const loggable: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) loggable[key] = toLoggable(item, depth + 1);
  return loggable;
}

// Duck-typed rather than `instanceof Error`: errors made by Node's core can come
// from another realm (test sandboxes, workers) whose Error is not this one's.
function isErrorLike(value: object): value is Error & { code?: unknown; cause?: unknown; errors?: unknown } {
  return value instanceof Error || (typeof (value as Error).message === 'string' && typeof (value as Error).stack === 'string');
}

/** An error as logged: type, message, code, stack, and (a few levels of) cause. */
export interface LoggedError {
  type: string;
  message: string;
  code?: string;
  stack?: string;
  /** The error's cause, made loggable the same way. */
  cause?: unknown;
  /** The errors an AggregateError gathers (a connection refused on both IPv4 and IPv6). */
  errors?: LoggedError[];
}

function loggableError(error: Error & { code?: unknown; cause?: unknown; errors?: unknown }, depth: number): LoggedError {
  const constructorName = (error as { constructor?: { name?: string } }).constructor?.name;
  const logged: LoggedError = {
    // pg names its server errors `error` (the protocol's message type); the
    // class (DatabaseError) says more.
    type: constructorName && constructorName !== 'Object' ? constructorName : error.name || 'Error',
    message: redactSecrets(error.message),
  };
  if (typeof error.code === 'string' || typeof error.code === 'number') logged.code = String(error.code);
  if (typeof error.stack === 'string') logged.stack = redactSecrets(error.stack);
  if (error.cause !== undefined && depth < MAX_DEPTH) logged.cause = toLoggable(error.cause, depth + 1);
  if (Array.isArray(error.errors) && depth < MAX_DEPTH) {
    logged.errors = error.errors.slice(0, 5).map((inner) => toLoggable(inner, depth + 1) as LoggedError);
  }
  return logged;
}

// Credentials that may hide inside free text: a URL's password, a libpq
// `password=` setting, a bearer credential, a JWT (three base64url parts, the
// first of which always starts with `eyJ`, the encoding of `{"`).
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/?#@]*):[^\s@/?#]*@/gi;
const PASSWORD_SETTING = /\b(password\s*=\s*)('[^']*'|"[^"]*"|[^\s&;,]+)/gi;
const BEARER = /\b(bearer\s+)[\w.~+/-]+=*/gi;
const JWT = /\beyJ[\w-]*\.[\w-]+\.[\w-]+/g;

/** `text` with every credential it contains masked. */
export function redactSecrets(text: string): string {
  return text
    .replace(URL_PASSWORD, '$1:***@')
    .replace(PASSWORD_SETTING, '$1***')
    .replace(BEARER, '$1[redacted]')
    .replace(JWT, '[redacted]');
}

/** A logger that drops everything: for tests and tools that print their own output. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
};
