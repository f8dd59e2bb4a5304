/**
 * GraphQL subscriptions on /graphql over Apollo's multipart subscription
 * protocol: what a stock Apollo Client (web, Kotlin, iOS) speaks over its plain
 * HTTP link, with nothing added. Apollo Server does not speak it, so Pulse's
 * HTTP layer does.
 *
 * The client POSTs the subscription with
 * `accept: multipart/mixed;subscriptionSpec="1.0", application/json`; the answer
 * is `multipart/mixed;boundary="graphql";subscriptionSpec="1.0"`, one JSON part
 * per event:
 *
 *     --graphql
 *     content-type: application/json; charset=utf-8
 *
 *     {"payload":{"data":{"presenceChanged":{...}}}}
 *     --graphql
 *     content-type: application/json; charset=utf-8
 *
 *     {}                       <- keep-alive, every few seconds
 *     --graphql--              <- the end
 *
 * A part `{"payload":null,"errors":[...]}` is a transport error: the stream is
 * over (Pulse is shutting down) and the client should subscribe again.
 *
 * Everything else (parsing, limits, auth, masking) is what /graphql/stream does,
 * through the same {@link SubscriptionOperations}; the live statuses come from
 * the same resolver, so the stream metrics count these subscribers too.
 */
import type http from 'node:http';
import type { RequestInfo } from '../graphql/context';
import { errorHeaders } from './error-answers';
import { admitAndStart, type StreamAdmission } from './stream-admission';
import type { MaskedResult, OperationRequest, PreparedDocument, SubscriptionOperations } from './subscription-operations';

export interface MultipartSubscriptionsOptions {
  operations: SubscriptionOperations;
  /** The same places for open streams as /graphql/stream: one cap, whichever protocol. */
  admission: StreamAdmission;
  /** How often an idle stream sends a `{}` part, so proxies keep it open. */
  keepAliveMs: number;
}

/**
 * Serves one request for a subscription over the multipart protocol: returns a
 * promise that resolves once the response has ended, or, at once, null when
 * the request is not a subscription this transport serves (a query or a
 * mutation, a GET, a body that is not JSON, a syntax error): /graphql then
 * answers it as usual.
 */
export type MultipartSubscriptions = (req: http.IncomingMessage, res: http.ServerResponse, info: RequestInfo, body: string) => Promise<void> | null;

const BOUNDARY = 'graphql';
const PART_HEADER = '\r\ncontent-type: application/json; charset=utf-8\r\n\r\n';

export function createMultipartSubscriptions(options: MultipartSubscriptionsOptions): MultipartSubscriptions {
  const { operations } = options;

  // Not async on purpose: the request's body and variables are needed only
  // until the subscription has started; the events are sent by a function that
  // never sees them, so no suspended frame keeps them for the stream's life.
  return (req, res, info, body) => {
    const request = subscriptionParams(req, body);
    if (!request) return null;
    let prepared;
    try {
      prepared = operations.prepare(request.query);
    } catch {
      // /graphql reports the syntax error in its usual form.
      return null;
    }
    if (prepared.operationOf(request.operationName) !== 'subscription') return null;
    if (prepared.errors.length > 0) {
      sendErrors(req, res, 400, operations.mask({ errors: prepared.errors }, info.logger).errors!);
      return Promise.resolve();
    }
    return start(options, req, res, info, request, prepared).then((events) =>
      events ? stream(res, events, options.keepAliveMs, info.logger) : undefined,
    );
  };
}

// Private: admission, then the subscription's start; the events, or null when
// it was refused (and answered).
async function start(
  options: MultipartSubscriptionsOptions,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  info: RequestInfo,
  request: OperationRequest,
  prepared: PreparedDocument,
): Promise<AsyncIterableIterator<MaskedResult> | null> {
  const started = await admitAndStart(options.admission, options.operations, req, res, info, request, prepared);
  if (!started) return null;
  if ('refused' in started) {
    // Refused before the first event (a bad id, no token to watch whom one
    // follows, the database away): an ordinary GraphQL response, with the
    // status /graphql would use.
    sendErrors(req, res, started.refusal?.status ?? 200, started.refused.errors ?? [], started.refusal?.headers);
    return null;
  }
  return started.events;
}

// Private: the events as parts, keep-alives while idle, the closing boundary.
async function stream(
  res: http.ServerResponse,
  events: AsyncIterableIterator<MaskedResult>,
  keepAliveMs: number,
  logger: RequestInfo['logger'],
): Promise<void> {
  res.writeHead(200, {
    'content-type': `multipart/mixed;boundary="${BOUNDARY}";subscriptionSpec="1.0"`,
    'cache-control': 'no-cache',
    // Proxies such as nginx would otherwise hold parts back until a buffer fills.
    'x-accel-buffering': 'no',
  });
  // Each part is written with the boundary that closes it, so a client's parser
  // hands the part on at once instead of waiting for the next one.
  res.write(`\r\n--${BOUNDARY}`);
  const part = (value: object) => `${PART_HEADER}${JSON.stringify(value)}\r\n--${BOUNDARY}`;

  let clientLeft = false;
  // The client left (unsubscribed, or the connection broke): ending the
  // subscription frees what it watched.
  const onClose = () => {
    clientLeft = true;
    void events.return?.();
  };
  res.once('close', onClose);
  const keepAlive = setInterval(() => {
    if (res.writable) res.write(part({}));
  }, keepAliveMs);
  try {
    for await (const result of events) {
      if (!res.writable) break;
      await new Promise<void>((resolve, reject) => res.write(part({ payload: result }), (error) => (error ? reject(error) : resolve())));
    }
    // The events ended without the client leaving: Pulse is shutting down. A
    // transport error (not a quiet end) tells the client to subscribe again,
    // here or on another instance.
    if (!clientLeft && res.writable) {
      res.write(part({ payload: null, errors: [{ message: 'Pulse is shutting down; subscribe again', extensions: { code: 'UNAVAILABLE' } }] }));
    }
  } catch (error) {
    logger.error('subscription: the event stream failed', { error });
    if (res.writable) res.write(part({ payload: null, errors: [{ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] }));
  } finally {
    clearInterval(keepAlive);
    res.off('close', onClose);
  }
  if (res.writable) res.end('--\r\n');
  else res.end();
}

// Private: the request's operation, when it can be one for this transport. POST
// with a JSON body only: the same rule /graphql's CSRF protection applies.
function subscriptionParams(
  req: http.IncomingMessage,
  body: string,
): OperationRequest | null {
  if (req.method !== 'POST' || !/^application\/(.+\+)?json\b/i.test(req.headers['content-type'] ?? '')) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return null;
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return null;
  const { query, operationName, variables } = parsed as Record<string, unknown>;
  if (typeof query !== 'string') return null;
  if (operationName != null && typeof operationName !== 'string') return null;
  if (variables != null && (typeof variables !== 'object' || Array.isArray(variables))) return null;
  return { query, operationName: operationName ?? undefined, variables: (variables as Record<string, unknown> | null) ?? undefined };
}

// Private: errors in the media type the client prefers. With
// application/graphql-response+json a client reads the errors whatever the status;
// with application/json, a status other than 200 is read as a failed request.
function sendErrors(req: http.IncomingMessage, res: http.ServerResponse, status: number, errors: readonly object[], refusalHeaders?: Record<string, string>): void {
  const graphqlResponse = /application\/graphql-response\+json/i.test(req.headers.accept ?? '');
  const headers: Record<string, string> = {
    'content-type': `${graphqlResponse ? 'application/graphql-response+json' : 'application/json'}; charset=utf-8`,
  };
  res.writeHead(status, { ...headers, ...(refusalHeaders ?? errorHeaders(status)) });
  res.end(JSON.stringify({ errors }));
}
