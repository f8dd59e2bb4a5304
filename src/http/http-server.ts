/**
 * The HTTP front door: routes requests to GraphQL (Apollo, /graphql), the event
 * stream (/graphql/stream), the plain endpoints (/pulse, /status/...), the live
 * page and browser client (/, /app.js, /sdk.js), and health and metrics.
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
  /** What /metrics serves: this process's registry, or (in a cluster) the whole instance's. */
  metrics: { registry: Pick<Metrics['registry'], 'metrics' | 'contentType'> };
  /** The plain-HTTP endpoints (POST /pulse, GET /status/...). */
  rest: RestRoutes;
  /** GraphQL subscriptions over Server-Sent Events, at /graphql/stream. */
  stream: PresenceStream;
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
      if (options.overloaded()) return shed(res);
      return graphql(options, info, req, res, url);
    case '/graphql/stream': {
      if (options.overloaded()) return shed(res);
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
      if (options.overloaded() && restRouteOf(url.pathname)) return shed(res);
      if (await options.rest(req, res, url)) return;
      if (req.method === 'GET' && (await options.web.serve(url.pathname, res))) return;
      return sendJson(res, 404, { error: `Not found: ${req.method} ${url.pathname}` });
  }
}

async function graphql(options: RequestHandlerOptions, info: RequestInfo, req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
  const text = await readBody(req, options.bodyLimitBytes);
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
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new HttpProblem(413, `Request body too large: more than ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function shed(res: http.ServerResponse): void {
  for (const [name, value] of Object.entries(errorHeaders(503))) res.setHeader(name, value);
  sendJson(res, 503, {
    errors: [{ message: `Pulse is overloaded; retry after ${RETRY_AFTER_SECONDS} s`, extensions: { code: 'UNAVAILABLE' } }],
  });
}
