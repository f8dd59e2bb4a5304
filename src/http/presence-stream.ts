/**
 * The event stream at /graphql/stream: GraphQL subscriptions over Server-Sent
 * Events, in the "distinct connections" mode of the GraphQL over SSE protocol
 * (what the `graphql-sse` client speaks): one HTTP response per subscription,
 * which any HTTP client, proxy and load balancer already understands. No
 * WebSockets.
 *
 *     POST /graphql/stream   accept: text/event-stream   {"query": "subscription ..."}
 *
 *     :                                  <- at once, and every keep-alive period
 *     event: next
 *     data: {"data":{"presenceChanged":{...}}}
 *     ...
 *     event: complete                    <- the server ends the stream
 *     data:
 *
 * Only subscriptions are served here (queries and mutations go to /graphql),
 * under the same document limits, body limit and error policy as /graphql. A
 * request refused before the first event is an ordinary JSON answer: 400 for a
 * document that cannot run, and the status /graphql would answer for a
 * refusal of the whole request (503 with Retry-After in a database outage);
 * errors about the subscription's field (a bad id) are one `next` event and
 * `complete`, as the protocol has it.
 *
 * What an open stream may cost is bounded three ways:
 *  - places: at most STREAMS_PER_CLIENT per client (429) and STREAMS_MAX per
 *    process (503), both with Retry-After;
 *  - backpressure: the next event is taken from the subscription only once the
 *    socket has taken the previous ones, so what a slow reader has not read
 *    waits in the subscriber's queue, where a newer status of a user replaces
 *    the unread one (bounded by the users watched);
 *  - a client that reads nothing: once the socket is full and what is queued for
 *    it has not shrunk for STREAM_STALL_SECONDS, the stream is closed.
 */
import type http from 'node:http';
import type { RequestInfo } from '../graphql/context';
import { errorHeaders } from './error-answers';
import { sendJson } from './send-json';
import { admitAndStart, type StreamAdmission } from './stream-admission';
import type { MaskedResult, OperationRequest, SubscriptionOperations } from './subscription-operations';

export interface PresenceStreamOptions {
  /** Parsing, limits, context and error masking, shared with /graphql's multipart subscriptions. */
  operations: SubscriptionOperations;
  /** Places for open streams, per client and per process. */
  admission: StreamAdmission;
  /** A stream whose unsent output has not shrunk for this long is closed. */
  stallSeconds: number;
  /** How often an open stream is sent a comment line, so proxies keep it open. */
  keepAliveMs: number;
}

/** Serves one request to the stream; resolves when the response has ended. */
export type PresenceStream = (req: http.IncomingMessage, res: http.ServerResponse, info: RequestInfo, body: string) => Promise<void>;

const EVENT_STREAM_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  // Proxies such as nginx would otherwise hold events back until a buffer fills.
  'x-accel-buffering': 'no',
};

export function createPresenceStream(options: PresenceStreamOptions): PresenceStream {
  const { operations } = options;

  // Not async on purpose: the request's body and variables are needed only
  // until the subscription has started; the long-lived part (sendEvents) is
  // returned, not awaited, so no suspended frame keeps them for the stream's life.
  return (req, res, info, body) => {
    const request = operationRequest(req, body);
    if ('problem' in request) return refuse(res, request.status, request.problem, 'BAD_REQUEST');
    let prepared;
    try {
      prepared = operations.prepare(request.query);
    } catch (error) {
      return refuse(res, 400, (error as Error).message, 'GRAPHQL_PARSE_FAILED');
    }
    const operation = prepared.operationOf(request.operationName);
    if (operation !== 'subscription') {
      const problem = !operation
        ? request.operationName
          ? `No operation named ${JSON.stringify(request.operationName)} in the document`
          : 'The document has several operations: name the one to run in operationName'
        : `Only subscriptions are served at /graphql/stream; send ${operation === 'query' ? 'queries' : 'mutations'} to /graphql`;
      return refuse(res, 400, problem, 'BAD_REQUEST');
    }
    if (prepared.errors.length > 0) {
      sendJson(res, 400, operations.mask({ errors: prepared.errors }, info.logger));
      return Promise.resolve();
    }
    return subscribe(options, req, res, info, request, prepared).then((events) => (events ? sendEvents(res, events, options, info) : undefined));
  };
}

// Private: admission, then the subscription's start; once it has started, the
// events (in a function of their own, which never sees the request).
async function subscribe(
  options: PresenceStreamOptions,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  info: RequestInfo,
  request: OperationRequest,
  prepared: ReturnType<SubscriptionOperations['prepare']>,
): Promise<AsyncIterableIterator<MaskedResult> | null> {
  const started = await admitAndStart(options.admission, options.operations, req, res, info, request, prepared);
  if (!started) return null;
  if ('refused' in started) {
    if (started.refusal) {
      res.writeHead(started.refusal.status, { ...started.refusal.headers, 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify(started.refused));
    } else {
      // About the field (a bad id): a GraphQL result, in the stream as the protocol has it.
      res.writeHead(200, EVENT_STREAM_HEADERS);
      res.end(`${next(started.refused)}event: complete\ndata:\n\n`);
    }
    return null;
  }
  return started.events;
}

// Private: the stream's whole life: events as the socket takes them, keep-alives,
// the stall close, and `complete` when the server ends the subscription.
async function sendEvents(res: http.ServerResponse, events: AsyncIterableIterator<MaskedResult>, options: PresenceStreamOptions, info: RequestInfo): Promise<void> {
  res.writeHead(200, EVENT_STREAM_HEADERS);
  // Sent at once: some browsers show nothing of a response before its first bytes.
  res.write(':\n\n');
  // The client left: ending the subscription frees what it watched.
  const onClose = () => void events.return?.();
  res.once('close', onClose);
  const keepAlive = setInterval(() => {
    if (!res.writableNeedDrain) res.write(':\n\n');
  }, options.keepAliveMs);
  try {
    for (;;) {
      const event = await events.next();
      if (event.done || res.destroyed) break;
      // Backpressure: the next event is taken only once the socket has room.
      if (!res.write(next(event.value)) && !(await drained(res, options.stallSeconds * 1000))) break;
    }
    if (!res.destroyed) res.end('event: complete\ndata:\n\n');
  } catch (error) {
    info.logger.error('subscription: the event stream failed', { error });
    if (!res.destroyed) res.end(`${next({ errors: [{ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] })}event: complete\ndata:\n\n`);
  } finally {
    clearInterval(keepAlive);
    res.off('close', onClose);
  }
}

// Private: one `next` event.
function next(result: MaskedResult): string {
  return `event: next\ndata: ${JSON.stringify(result)}\n\n`;
}

function refuse(res: http.ServerResponse, status: number, message: string, code: string): Promise<void> {
  for (const [name, value] of Object.entries(errorHeaders(status))) res.setHeader(name, value);
  sendJson(res, status, { errors: [{ message, extensions: { code } }] });
  return Promise.resolve();
}

/**
 * Private: the operation a request asks for, as the protocol sends it: a POST
 * with a JSON body, or a GET with `query`, `operationName` and `variables` in
 * the URL; or why it cannot be read.
 */
function operationRequest(req: http.IncomingMessage, body: string): OperationRequest | { status: number; problem: string } {
  if (!/\btext\/event-stream\b/i.test(req.headers.accept ?? '')) {
    return { status: 406, problem: 'The event stream answers requests with `accept: text/event-stream` only' };
  }
  let fields: Record<string, unknown>;
  if (req.method === 'GET') {
    const search = new URL(req.url ?? '/', 'http://pulse.invalid').searchParams;
    fields = { query: search.get('query') ?? undefined, operationName: search.get('operationName') ?? undefined };
    const variables = search.get('variables');
    if (variables) {
      try {
        fields.variables = JSON.parse(variables);
      } catch (error) {
        return { status: 400, problem: `Malformed variables in the URL: ${(error as Error).message}` };
      }
    }
  } else if (req.method === 'POST') {
    if (!/^application\/(.+\+)?json\b/i.test(req.headers['content-type'] ?? '')) {
      return { status: 415, problem: 'Send the subscription as a JSON body (content-type: application/json)' };
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch (error) {
      return { status: 400, problem: `Malformed JSON body: ${(error as Error).message}` };
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return { status: 400, problem: 'The JSON body must be an object' };
    fields = parsed as Record<string, unknown>;
  } else {
    return { status: 405, problem: `${req.method} is not served here: POST (or GET) a subscription` };
  }
  const { query, operationName, variables } = fields;
  if (typeof query !== 'string') return { status: 400, problem: 'Missing query: send the subscription as `query`' };
  if (operationName != null && typeof operationName !== 'string') return { status: 400, problem: '`operationName` must be a string' };
  if (variables != null && (typeof variables !== 'object' || Array.isArray(variables))) return { status: 400, problem: '`variables` must be an object' };
  return { query, operationName: operationName ?? undefined, variables: (variables as Record<string, unknown> | null) ?? undefined };
}

/**
 * Private: resolves true once `res` has drained, false if it closed first. A
 * client that reads slowly keeps its stream; one whose queued output has not
 * shrunk for `stallMs` (it reads nothing: a dead peer or a hostile one) has its
 * connection closed, which frees everything the stream held.
 */
function drained(res: http.ServerResponse, stallMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    let queued = res.writableLength;
    const check = setInterval(() => {
      if (res.writableLength < queued) {
        queued = res.writableLength;
        return;
      }
      res.destroy();
    }, stallMs);
    const done = (value: boolean) => {
      clearInterval(check);
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(value);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}
