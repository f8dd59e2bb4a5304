/**
 * The Apollo Server: Pulse's schema over HTTP, with its limits and error policy.
 */
import type http from 'node:http';
import type { GraphQLSchema } from 'graphql';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginCacheControlDisabled } from '@apollo/server/plugin/disabled';
import type { Logger } from '../logger';
import { errorCodeLabel, type Metrics } from '../observability/metrics';
import { compiledExecutorGateway } from './compiled-executor';
import type { PulseContext } from './context';
import { errorLoggingPlugin, formatError } from './errors';
import { maxTokens, queryLimits } from './limits';
import { subscriptionsElsewherePlugin } from './subscriptions-elsewhere';

export interface ApolloOptions {
  /** The executable schema (see createSchema), shared with the event stream. */
  schema: GraphQLSchema;
  /** Most ids one `statuses` call may ask for (sizes the parser's token limit). */
  statusesMaxIds: number;
  httpServer: http.Server;
  logger: Logger;
  /** Production hides the schema (no introspection). */
  production: boolean;
  metrics?: Pick<Metrics, 'requestDuration' | 'heartbeats' | 'graphqlErrors' | 'graphqlExecutions'>;
}

/**
 * Observes each operation's latency, labelled by its root fields (bounded by the
 * schema, unlike operation names, which callers choose).
 */
function latencyPlugin(metrics: Pick<Metrics, 'requestDuration'>): ApolloServerPlugin<PulseContext> {
  return {
    async requestDidStart() {
      const stop = metrics.requestDuration.startTimer();
      let operation = 'invalid';
      return {
        async didResolveOperation({ operation: op }) {
          if (!op) return;
          const fields = op.selectionSet.selections
            .map((s) => (s.kind === 'Field' ? s.name.value : '...'))
            .filter((name, i, all) => all.indexOf(name) === i)
            .sort();
          operation = `${op.operation}:${fields.join(',')}`.slice(0, 100);
        },
        async willSendResponse() {
          stop({ operation });
        },
      };
    },
  };
}

/** Counts the errors callers are sent, by code (what the dashboard's "errors by code" shows). */
function errorCountPlugin(metrics: Pick<Metrics, 'graphqlErrors'>): ApolloServerPlugin<PulseContext> {
  return {
    async requestDidStart() {
      return {
        async didEncounterErrors({ errors }) {
          for (const error of errors) metrics.graphqlErrors.inc({ code: errorCodeLabel(error.extensions?.code ?? 'INTERNAL_SERVER_ERROR') });
        },
      };
    },
  };
}

export function createApolloServer(options: ApolloOptions): ApolloServer<PulseContext> {
  const protection = queryLimits();
  return new ApolloServer<PulseContext>({
    // The schema, executed by compiled functions (graphql-jit) instead of
    // graphql-js's interpreter; everything before and after execution is Apollo's
    // as usual (compiled-executor.ts).
    gateway: compiledExecutorGateway(options.schema, options.metrics),
    formatError,
    includeStacktraceInErrorResponses: false,
    validationRules: protection.validationRules,
    parseOptions: { maxTokens: maxTokens(options.statusesMaxIds) },
    // One operation per HTTP request: a JSON array of operations is refused, so one
    // request cannot multiply its cost past the limits above.
    allowBatchedHttpRequests: false,
    introspection: !options.production,
    // CSRF prevention (on by default, kept on): a POST must carry a JSON content type
    // or an Apollo header, which a cross-site form cannot.
    csrfPrevention: true,
    // Pulse's main.ts owns SIGTERM/SIGINT: shutdown is an ordered list of steps
    // (HTTP, then buffered heartbeats, then the pool), which Apollo's own signal
    // handlers would cut short.
    stopOnTerminationSignals: false,
    // On shutdown, stop accepting connections and let in-flight requests finish.
    plugins: [
      ...protection.plugins,
      errorLoggingPlugin(options.logger),
      subscriptionsElsewherePlugin<PulseContext>(),
      ...(options.metrics ? [latencyPlugin(options.metrics)] : []),
      ...(options.metrics ? [errorCountPlugin(options.metrics)] : []),
      ApolloServerPluginDrainHttpServer({ httpServer: options.httpServer }),
      // Apollo's cache-control plugin, on by default, hooks every field of every
      // response (a `statuses` answer of 100 users is 300 and more calls) only to
      // conclude `no-store` for a schema with no cache hints. Statuses change by
      // the second, so the HTTP layer sends no-store itself (http-server.ts).
      ApolloServerPluginCacheControlDisabled(),
    ],
  });
}
