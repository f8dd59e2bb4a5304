/**
 * The HTTP front door: routes requests to GraphQL (Apollo, /graphql), the event
 * stream (/graphql/stream), the plain endpoints (/pulse, /status/...), the live
 * page and browser client (/, /app.js, /sdk.js), and health and metrics.
 *
 * Subscriptions are served on /graphql too, to clients that ask for Apollo's
 * multipart protocol (see multipart-subscriptions.ts).
 *
 * Node's own http module, with Apollo mounted through its integration API
 * (`executeHTTPGraphQLRequest`) instead of a web framework: the plain endpoints that
 * clients call most stay a few function calls away from the socket.
 */
import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import type { ApolloServer } from '@apollo/server';
import { HeaderMap } from '@apollo/server';
import type { Logger } from '../logger';
import type { Metrics } from '../observability/metrics';
import type { PulseContext, RequestInfo } from '../graphql/context';
import { applyCors } from './cors';
import type { PresenceStream } from './presence-stream';
import type { MultipartSubscriptions } from './multipart-subscriptions';
import { acceptsMultipartSubscriptions } from '../graphql/subscriptions-elsewhere';
import { restRouteOf, type RestRoutes } from './rest';
import type { WebAssets } from './web-assets';
import { errorHeaders, RETRY_AFTER_SECONDS } from './error-answers';
import { sendJson } from './send-json';

export interface RequestHandlerOptions {
  apollo: ApolloServer<PulseContext>;
  /** Builds the GraphQL context of one request. */
  contextFor(request: RequestInfo): PulseContext | Promise<PulseContext>;
  bodyLimitBytes: number;
  logger: Logger;
  /** For /readyz: can this instance serve requests right now? */
  readiness(): Promise<{ ready: boolean }>;
  /**
   * True while the database is saturated (too many requests already waiting for
   * a connection): new work is refused at once with 503 and Retry-After instead of
   * joining a queue that only grows.
   */
  overloaded(): boolean;
  /** True once shutdown has begun: answer, but ask clients to reconnect elsewhere. */
  draining(): boolean;
  /**
   * What /metrics serves (this process's registry, or in a cluster the whole
   * instance's) and the counter of shed requests.
   */
  metrics: { registry: Pick<Metrics['registry'], 'metrics' | 'contentType'>; shedRequests: Metrics['shedRequests'] };
  /** The plain-HTTP endpoints (POST /pulse, GET /status/...). */
  rest: RestRoutes;
  /** GraphQL subscriptions over Server-Sent Events, at /graphql/stream. */
  stream: PresenceStream;
  /** GraphQL subscriptions on /graphql over Apollo's multipart protocol (stock Apollo clients). */
  multipartSubscriptions: MultipartSubscriptions;
  /** The live page (/) and the browser client (/sdk.js). */
  web: WebAssets;
  /** Origins whose pages may call Pulse ('*': any). */
  corsAllowedOrigins: readonly string[] | '*';
  /** The address of a request's client (see client-address.ts); the peer by default. */
  clientAddress?: (req: http.IncomingMessage) => string;
}

/** A request that cannot be served as sent; answered with `status` and `message`. */
class HttpProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function createRequestHandler(options: RequestHandlerOptions): http.RequestListener {
  const { logger } = options;
  return (req, res) => {
    const requestId = requestIdOf(req);
    res.setHeader('x-request-id', requestId);
    // Node closes the connection after this response, so a keep-alive client
    // opens its next request elsewhere instead of on a socket about to close.
    if (options.draining()) res.setHeader('connection', 'close');
    if (applyCors(options.corsAllowedOrigins, req, res)) return;
    // The request's logger is made on first use: most requests log nothing, and a
    // child logger per request is measurable on the heartbeat path.
    let requestLogger: Logger | undefined;
    const info: RequestInfo = {
      requestId,
      get logger() {
        return (requestLogger ??= logger.child({ requestId }));
      },
      authorization: req.headers.authorization,
      clientAddress: options.clientAddress ? options.clientAddress(req) : (req.socket.remoteAddress ?? 'unknown'),
    };
    route(options, info, req, res).catch((error: unknown) => {
      if (error instanceof HttpProblem) {
        sendJson(res, error.status, { errors: [{ message: error.message, extensions: { code: 'BAD_REQUEST' } }] });
        return;
      }
      info.logger.error('http: unhandled error', { error, method: req.method, path: req.url?.split('?')[0] });
      if (!res.headersSent) sendJson(res, 500, { errors: [{ message: 'Internal server error' }] });
      else res.destroy();
    });
  };
}

// Private: a caller's (or proxy's) request id is kept when it looks like one, so
// logs line up across services; otherwise Pulse makes one.
function requestIdOf(req: http.IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given) ? given : randomUUID();
}

async function route(options: RequestHandlerOptions, info: RequestInfo, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://pulse.invalid');
  switch (url.pathname) {
    case '/graphql':
      if (options.overloaded()) return shed(options, res, 'graphql');
      if (acceptsMultipartSubscriptions(req.headers.accept)) return multipartSubscription(options, info, req, res, url);
      return graphql(options, info, req, res, url);
    case '/graphql/stream': {
      if (options.overloaded()) return shed(options, res, 'stream');
      const body = await readBody(req, options.bodyLimitBytes);
      return options.stream(req, res, info, body);
    }
    case '/healthz':
      // Liveness: the process answers. Deliberately no database check, so a
      // database outage does not make an orchestrator restart every instance.
      return sendJson(res, 200, { status: 'ok' });
    case '/metrics': {
      const body = await options.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': options.metrics.registry.contentType });
      res.end(body);
      return;
    }
    case '/readyz': {
      if (options.draining()) return sendJson(res, 503, { ready: false, reason: 'shutting down' });
      const readiness = await options.readiness();
      return sendJson(res, readiness.ready ? 200 : 503, readiness);
    }
    default:
      if (options.overloaded() && restRouteOf(url.pathname)) return shed(options, res, 'rest');
      if (await options.rest(req, res, url)) return;
      if (req.method === 'GET' && (await options.web.serve(url.pathname, res))) return;
      return sendJson(res, 404, { error: `Not found: ${req.method} ${url.pathname}` });
  }
}

// Private: a stock Apollo client's subscription; whatever is not one (its accept
// header also allows JSON) is answered by Apollo as usual.
async function multipartSubscription(
  options: RequestHandlerOptions,
  info: RequestInfo,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
): Promise<void> {
  const text = await readBody(req, options.bodyLimitBytes);
  // Returned, not awaited: a stream may stay open for hours, and this frame
  // would keep the request's body for as long.
  return options.multipartSubscriptions(req, res, info, text) ?? graphql(options, info, req, res, url, text);
}

async function graphql(
  options: RequestHandlerOptions,
  info: RequestInfo,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
  alreadyRead?: string,
): Promise<void> {
  const text = alreadyRead ?? (await readBody(req, options.bodyLimitBytes));
  const headers = new HeaderMap();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
  }

  // Apollo expects a parsed JSON body; anything else it judges (and rejects) itself.
  let body: unknown = text;
  if (text.length > 0 && /^application\/(.+\+)?json\b/i.test(headers.get('content-type') ?? '')) {
    try {
      body = JSON.parse(text);
    } catch (error) {
      throw new HttpProblem(400, `Malformed JSON body: ${(error as Error).message}`);
    }
  }

  const response = await options.apollo.executeHTTPGraphQLRequest({
    httpGraphQLRequest: { method: req.method?.toUpperCase() ?? 'GET', headers, search: url.search, body },
    context: async () => options.contextFor(info),
  });

  res.statusCode = response.status ?? 200;
  // Statuses change by the second: no cache may keep an answer (Apollo's own
  // cache-control plugin, which said the same, is off; see apollo.ts).
  res.setHeader('cache-control', 'no-store');
  for (const [name, value] of response.headers) res.setHeader(name, value);
  if (response.body.kind === 'complete') {
    res.end(response.body.string);
    return;
  }
  for await (const chunk of response.body.asyncIterator) res.write(chunk);
  res.end();
}

// Private: the body as text, refusing (413) past `limit` bytes without buffering it.
function readBody(req: http.IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.reject(new HttpProblem(413, `Request body too large: ${declared} bytes, at most ${limit}`));
  }
  return new Promise((resolve, reject) => {
    let chunks: Buffer[] = [];
    let size = 0;
    // The listeners go once the body is read: a stream's request lives as long
    // as the stream, and they would keep the body's chunks for as long.
    const done = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      chunks = [];
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        done();
        req.resume();
        reject(new HttpProblem(413, `Request body too large: more than ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      const body = Buffer.concat(chunks).toString('utf8');
      done();
      resolve(body);
    };
    const onError = (error: Error) => {
      done();
      reject(error);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

function shed(options: RequestHandlerOptions, res: http.ServerResponse, route: 'graphql' | 'stream' | 'rest'): void {
  options.metrics.shedRequests.inc({ route });
  for (const [name, value] of Object.entries(errorHeaders(503))) res.setHeader(name, value);
  sendJson(res, 503, {
    errors: [{ message: `Pulse is overloaded; retry after ${RETRY_AFTER_SECONDS} s`, extensions: { code: 'UNAVAILABLE' } }],
  });
}
