/**
 * The event stream at /graphql/stream: GraphQL subscriptions over Server-Sent
 * Events (the GraphQL over SSE protocol, `graphql-sse`), in its "distinct
 * connections" mode: one HTTP response per subscription, which any HTTP client,
 * proxy and load balancer already understands. No WebSockets.
 *
 * Only subscriptions are served here (queries and mutations go to /graphql), under
 * the same document limits, body limit and error policy as /graphql.
 *
 * What an open stream may cost is bounded three ways:
 *  - places: at most STREAMS_PER_CLIENT per client (429) and STREAMS_MAX per
 *    process (503), both with Retry-After;
 *  - backpressure: graphql-sse takes every event the subscription yields and
 *    queues its text for the response, without limit. Here it is handed the next
 *    event only once the socket has taken the previous ones, so what a slow
 *    reader has not read waits in the subscriber's event queue, where a newer
 *    status of a user replaces the unread one (bounded by the users watched);
 *  - a client that reads nothing: once the socket is full and what is queued for
 *    it has not shrunk for STREAM_STALL_SECONDS, the stream is closed.
 */
import type http from 'node:http';
import { GraphQLError, parse, specifiedRules, validate, type GraphQLSchema, type ValidationRule } from 'graphql';
import { createHandler, type Request as SseRequest } from 'graphql-sse';
import { formatError } from '../graphql/errors';
import type { PulseContext, RequestInfo } from '../graphql/context';
import { maxTokens, queryLimits } from '../graphql/limits';
import type { StreamSlots } from '../limits/stream-slots';
import type { Metrics } from '../observability/metrics';
import { sendJson } from './send-json';

export interface PresenceStreamOptions {
  schema: GraphQLSchema;
  contextFor(request: RequestInfo): PulseContext | Promise<PulseContext>;
  statusesMaxIds: number;
  /** Places for open streams, per client and per process. */
  slots: StreamSlots;
  /** A stream whose unsent output has not shrunk for this long is closed. */
  stallSeconds: number;
  metrics?: Pick<Metrics, 'streamsRefused'>;
}

/** Seconds a refused client is asked to wait before opening another stream. */
const RETRY_AFTER_SECONDS = 5;

/** Serves one request to the stream; resolves when the response has ended. */
export type PresenceStream = (req: http.IncomingMessage, res: http.ServerResponse, info: RequestInfo, body: string) => Promise<void>;

// graphql-sse wants its context to be a plain record.
type StreamContext = PulseContext & Record<PropertyKey, unknown>;

/** What the handler's hooks know of the request they serve. */
interface StreamRequest {
  info: RequestInfo;
  context: PulseContext;
  flow: Flow;
}

/**
 * Private: whether the response can take another event now. The writer marks it
 * blocked when the socket's buffer is full and open again once it drains; the
 * subscription waits on {@link Flow.ready} before its next event is formatted.
 */
class Flow {
  #blocked = false;
  #waiting: Array<() => void> = [];

  ready(): Promise<void> | undefined {
    if (!this.#blocked) return undefined;
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  block(): void {
    this.#blocked = true;
  }

  /** Open again (drained), or for good (the response ended): let waiters go on. */
  open(): void {
    this.#blocked = false;
    for (const resolve of this.#waiting.splice(0)) resolve();
  }
}

// Private: a stream carries subscriptions only; anything else is sent where it belongs.
const onlySubscriptions: ValidationRule = (context) => ({
  OperationDefinition(node) {
    if (node.operation !== 'subscription') {
      context.reportError(
        new GraphQLError(`Only subscriptions are served at /graphql/stream; send ${node.operation === 'query' ? 'queries' : 'mutations'} to /graphql`, {
          nodes: node,
          extensions: { code: 'BAD_REQUEST' },
        }),
      );
    }
  },
});

export function createPresenceStream(options: PresenceStreamOptions): PresenceStream {
  const rules = [...specifiedRules, ...queryLimits().validationRules, onlySubscriptions];
  const tokenLimit = maxTokens(options.statusesMaxIds);

  const handler = createHandler<http.IncomingMessage, StreamRequest, StreamContext>({
    schema: options.schema,
    // Distinct connections only: no stream reservations to keep per client.
    authenticate: () => null,
    validate: (schema, document) => validate(schema, document, rules),
    onSubscribe(req: SseRequest<http.IncomingMessage, StreamRequest>, params) {
      let document;
      try {
        document = parse(params.query, { maxTokens: tokenLimit });
      } catch (error) {
        return [
          JSON.stringify({ errors: [{ message: (error as Error).message, extensions: { code: 'GRAPHQL_PARSE_FAILED' } }] }),
          { status: 400, statusText: 'Bad Request', headers: { 'content-type': 'application/json; charset=utf-8' } },
        ];
      }
      return {
        schema: options.schema,
        document,
        operationName: params.operationName,
        variableValues: params.variables,
        contextValue: req.context.context as StreamContext,
      };
    },
    // The same masking as /graphql: known codes pass, anything else is an
    // internal error (logged with its cause, shown without it).
    async onNext(ctx, req, result) {
      // Backpressure: the next event waits until the socket has room.
      await req.context.flow.ready();
      if (!('errors' in result) || !result.errors?.length) return;
      for (const error of result.errors) {
        const code = error.extensions?.code;
        if (!code || code === 'INTERNAL_SERVER_ERROR') ctx.logger.error('stream: internal error', { error: error.originalError ?? error });
      }
      return { ...result, errors: result.errors.map((e) => formatError(e.toJSON(), e) as GraphQLError) };
    },
  });

  return async (req, res, info, body) => {
    const context = await options.contextFor(info);
    // Who the client is: the token's user, or the address without a (valid) token.
    const viewer = context.viewer();
    const slot = options.slots.acquire(viewer ? `user:${viewer}` : `address:${info.clientAddress}`);
    if (!slot.granted) {
      options.metrics?.streamsRefused.inc({ reason: slot.refusal === 'client' ? 'client_limit' : 'process_full' });
      req.resume();
      res.setHeader('retry-after', String(RETRY_AFTER_SECONDS));
      sendJson(
        res,
        slot.refusal === 'client' ? 429 : 503,
        slot.refusal === 'client'
          ? { errors: [{ message: `Too many open streams for this client (at most ${options.slots.perClient}); close one, or retry after ${RETRY_AFTER_SECONDS} s`, extensions: { code: 'RATE_LIMITED' } }] }
          : { errors: [{ message: `This server holds as many streams as it can; retry after ${RETRY_AFTER_SECONDS} s`, extensions: { code: 'UNAVAILABLE' } }] },
      );
      return;
    }
    const flow = new Flow();
    res.once('close', () => {
      slot.release();
      flow.open();
    });
    const [responseBody, init] = await handler({
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: {
        get(key) {
          const header = req.headers[key];
          return Array.isArray(header) ? header.join('\n') : header;
        },
      },
      body,
      raw: req,
      context: { info, context, flow },
    });
    res.writeHead(init.status, init.statusText, init.headers);
    if (!responseBody || typeof responseBody === 'string') {
      res.end(responseBody);
      return;
    }
    // The client left: end the subscription, which frees what it watched.
    const onClose = () => void responseBody.return?.(undefined);
    res.once('close', onClose);
    for await (const message of responseBody) {
      if (res.destroyed) break;
      if (!res.write(message)) {
        flow.block();
        if (!(await drained(res, options.stallSeconds * 1000))) break;
        flow.open();
      }
    }
    res.off('close', onClose);
    res.end();
  };
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
