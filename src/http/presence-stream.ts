/**
 * The event stream at /graphql/stream: GraphQL subscriptions over Server-Sent
 * Events (the GraphQL over SSE protocol, `graphql-sse`), in its "distinct
 * connections" mode: one HTTP response per subscription, which any HTTP client,
 * proxy and load balancer already understands. No WebSockets.
 *
 * Only subscriptions are served here (queries and mutations go to /graphql), under
 * the same document limits, body limit and error policy as /graphql.
 */
import type http from 'node:http';
import { GraphQLError, type ExecutionResult, type ValidationRule } from 'graphql';
import { createHandler, type Request as SseRequest } from 'graphql-sse';
import type { PulseContext, RequestInfo } from '../graphql/context';
import type { SubscriptionOperations } from './subscription-operations';

export interface PresenceStreamOptions {
  /** Parsing, limits, context and error masking, shared with /graphql's multipart subscriptions. */
  operations: SubscriptionOperations;
}

/** Serves one request to the stream; resolves when the response has ended. */
export type PresenceStream = (req: http.IncomingMessage, res: http.ServerResponse, info: RequestInfo, body: string) => Promise<void>;

// graphql-sse wants its context to be a plain record.
type StreamContext = PulseContext & Record<PropertyKey, unknown>;

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
  const { operations } = options;

  const handler = createHandler<http.IncomingMessage, { info: RequestInfo }, StreamContext>({
    schema: operations.schema,
    // Distinct connections only: no stream reservations to keep per client.
    authenticate: () => null,
    validate: (_schema, document) => operations.validate(document, [onlySubscriptions]),
    onSubscribe(req: SseRequest<http.IncomingMessage, { info: RequestInfo }>, params) {
      let document;
      try {
        document = operations.parse(params.query);
      } catch (error) {
        return [
          JSON.stringify({ errors: [{ message: (error as Error).message, extensions: { code: 'GRAPHQL_PARSE_FAILED' } }] }),
          { status: 400, statusText: 'Bad Request', headers: { 'content-type': 'application/json; charset=utf-8' } },
        ];
      }
      return {
        schema: operations.schema,
        document,
        operationName: params.operationName,
        variableValues: params.variables,
        contextValue: operations.contextFor(req.context.info) as StreamContext,
      };
    },
    // The same masking as /graphql.
    onNext(ctx, _req, result) {
      if (!('errors' in result) || !result.errors?.length) return;
      return operations.mask(result as ExecutionResult, ctx.logger) as ExecutionResult;
    },
  });

  return async (req, res, info, body) => {
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
      context: { info },
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
      if (!res.writable) break;
      await new Promise<void>((resolve, reject) => res.write(message, (error) => (error ? reject(error) : resolve())));
    }
    res.off('close', onClose);
    res.end();
  };
}
