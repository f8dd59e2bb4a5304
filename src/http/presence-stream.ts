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
import { GraphQLError, parse, specifiedRules, validate, type GraphQLSchema, type ValidationRule } from 'graphql';
import { createHandler, type Request as SseRequest } from 'graphql-sse';
import { formatError } from '../graphql/errors';
import type { PulseContext, RequestInfo } from '../graphql/context';
import { maxTokens, queryLimits } from '../graphql/limits';

export interface PresenceStreamOptions {
  schema: GraphQLSchema;
  contextFor(request: RequestInfo): PulseContext;
  statusesMaxIds: number;
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
  const rules = [...specifiedRules, ...queryLimits().validationRules, onlySubscriptions];
  const tokenLimit = maxTokens(options.statusesMaxIds);

  const handler = createHandler<http.IncomingMessage, { info: RequestInfo }, StreamContext>({
    schema: options.schema,
    // Distinct connections only: no stream reservations to keep per client.
    authenticate: () => null,
    validate: (schema, document) => validate(schema, document, rules),
    onSubscribe(req: SseRequest<http.IncomingMessage, { info: RequestInfo }>, params) {
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
        contextValue: options.contextFor(req.context.info) as StreamContext,
      };
    },
    // The same masking as /graphql: known codes pass, anything else is an
    // internal error (logged with its cause, shown without it).
    onNext(ctx, _req, result) {
      if (!('errors' in result) || !result.errors?.length) return;
      for (const error of result.errors) {
        const code = error.extensions?.code;
        if (!code || code === 'INTERNAL_SERVER_ERROR') ctx.logger.error('stream: internal error', { error: error.originalError ?? error });
      }
      return { ...result, errors: result.errors.map((e) => formatError(e.toJSON(), e) as GraphQLError) };
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
