/**
 * The plain-HTTP interface, for clients that only send heartbeats or read a few
 * statuses and have no use for GraphQL:
 *
 *   POST /pulse, POST /heartbeat      heartbeat for the bearer token's user -> 204
 *                                     (body `{"idle": true}`: connected but idle)
 *   GET  /status/profile?userId=1,2,3 statuses in input order -> 200 [...]
 *   GET  /status/42                   one status -> 200 {...}
 *
 * Statuses are what the bearer token's user may see (anonymous without one), by
 * the same privacy rules as GraphQL.
 *
 * Same services, limits, auth and error codes as GraphQL, without its parsing,
 * validation and per-request loaders: a heartbeat here is a token check and a
 * place in the next batch. Errors have the same shape as GraphQL's
 * (`{ errors: [{ message, extensions: { code } }] }`) with the matching status.
 */
import type http from 'node:http';
import { identifyCaller } from '../auth/caller';
import type { TokenIssuer } from '../auth/tokens';
import { InvalidInputError, toPulseError } from '../errors';
import type { Metrics } from '../observability/metrics';
import type { Presence } from '../presence/presence-service';
import { heartbeatSender } from '../presence/heartbeat-sender';
import { parseUserId, parseUserIds, type UserId } from '../presence/user-id';
import type { UserStatus } from '../presence/user-status';
import { ERROR_ANSWERS, errorHeaders, retryAfterOf } from './error-answers';
import { sendJson } from './send-json';

export interface RestDependencies {
  presence: Pick<Presence, 'heartbeat' | 'statuses'>;
  tokens: TokenIssuer;
  /** Most ids one `GET /status/profile` may ask for. */
  statusesMaxIds: number;
  metrics?: Pick<Metrics, 'heartbeats' | 'requestDuration'>;
}

/** Answers a REST request; resolves false when the path is not a REST route. */
export type RestRoutes = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => Promise<boolean>;

export function createRestRoutes(deps: RestDependencies): RestRoutes {
  const { presence, tokens, metrics } = deps;

  const heartbeat = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const caller = await identifyCaller(tokens, req.headers.authorization);
    const userId = heartbeatSender(caller.userId, metrics);
    // The caller is the token's user; the body may only say whether they are idle.
    await presence.heartbeat(userId, idleOf(await readSmallBody(req)));
    res.writeHead(204);
    res.end();
  };

  // Who is reading: the token's user, or anonymous without a token or with a bad
  // one (as over GraphQL, a read never fails on a token; it only sees less).
  const viewerOf = async (req: http.IncomingMessage): Promise<UserId | null> =>
    (await identifyCaller(tokens, req.headers.authorization)).viewer;

  const profile = async (req: http.IncomingMessage, url: URL, res: http.ServerResponse) => {
    const given = url.searchParams.getAll('userId').flatMap((v) => v.split(','));
    if (given.length === 0) throw new InvalidInputError('Missing userId: expected ?userId=1,2,3');
    const statuses = await presence.statuses(parseUserIds(given, deps.statusesMaxIds), await viewerOf(req));
    sendJson(res, 200, statuses.map(toJson));
  };

  const one = async (req: http.IncomingMessage, rawId: string, res: http.ServerResponse) => {
    const id = parseUserId(decodePathSegment(rawId));
    const [status] = await presence.statuses([id], await viewerOf(req));
    sendJson(res, 200, toJson(status!));
  };

  return async (req, res, url) => {
    const path = url.pathname;
    const route = restRouteOf(path);
    if (!route) return false;
    const allowed = route === 'POST /pulse' ? 'POST' : 'GET';
    if (req.method !== allowed) return methodNotAllowed(req, res, allowed);
    const handle =
      route === 'POST /pulse'
        ? () => heartbeat(req, res)
        : route === 'GET /status/profile'
          ? () => profile(req, url, res)
          : () => one(req, path.slice('/status/'.length), res);

    const stop = metrics?.requestDuration.startTimer({ operation: `rest:${route}` });
    try {
      await handle();
    } catch (error) {
      const known = toPulseError(error);
      if (!known) throw error;
      const { status } = ERROR_ANSWERS[known.code];
      for (const [name, value] of Object.entries(errorHeaders(status, retryAfterOf(known)))) res.setHeader(name, value);
      sendJson(res, status, { errors: [{ message: known.message, extensions: { code: known.code } }] });
    } finally {
      stop?.();
    }
    return true;
  };
}

/** Which REST route serves `path`, or null when none does (POST /heartbeat is POST /pulse). */
export function restRouteOf(path: string): 'POST /pulse' | 'GET /status/profile' | 'GET /status/:id' | null {
  if (path === '/pulse' || path === '/heartbeat') return 'POST /pulse';
  if (path === '/status/profile') return 'GET /status/profile';
  if (path.startsWith('/status/') && path.indexOf('/', '/status/'.length) === -1) return 'GET /status/:id';
  return null;
}

/** A status as JSON: the same fields and spelling as GraphQL's UserStatus. */
function toJson(status: UserStatus): Record<string, unknown> {
  return {
    userId: status.userId,
    state: status.state,
    online: status.online,
    lastSeen: status.lastSeen?.toISOString() ?? null,
    statusText: status.statusText,
    idle: status.idle,
  };
}

/** Largest heartbeat body read: `{"idle": true}` needs 14 bytes. */
const HEARTBEAT_BODY_LIMIT = 1024;

// Private: a heartbeat's body as text; larger than any heartbeat needs is refused.
function readSmallBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      text += chunk;
      if (text.length > HEARTBEAT_BODY_LIMIT) {
        req.removeAllListeners('data');
        req.resume();
        reject(new InvalidInputError(`Heartbeat body too large: more than ${HEARTBEAT_BODY_LIMIT} bytes; expected nothing or {"idle": true}`));
      }
    });
    req.on('end', () => resolve(text));
    req.on('error', reject);
  });
}

/** Whether a heartbeat's body says idle: no body is active, `{"idle": true}` idle. */
export function idleOf(body: string): boolean {
  if (body.trim() === '') return false;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new InvalidInputError(`Malformed heartbeat body: expected JSON such as {"idle": true}, got ${JSON.stringify(body.slice(0, 40))}`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new InvalidInputError(`Malformed heartbeat body: expected an object such as {"idle": true}, got ${JSON.stringify(parsed)}`);
  }
  const { idle } = parsed as { idle?: unknown };
  if (idle === undefined || idle === null) return false;
  if (typeof idle !== 'boolean') throw new InvalidInputError(`Invalid idle: expected true or false, got ${JSON.stringify(idle)}`);
  return idle;
}

// Private: a bad escape (`%zz`) is the caller's mistake, not a server error.
function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function methodNotAllowed(req: http.IncomingMessage, res: http.ServerResponse, allowed: string): true {
  req.resume();
  res.setHeader('allow', allowed);
  sendJson(res, 405, {
    errors: [{ message: `Method ${req.method} not allowed here: use ${allowed}`, extensions: { code: 'METHOD_NOT_ALLOWED' } }],
  });
  return true;
}
