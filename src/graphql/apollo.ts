/**
 * The Apollo Server: schema.graphql plus the resolvers, with Pulse's error policy.
 */
import fs from 'node:fs';
import path from 'node:path';
import type http from 'node:http';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloArmor } from '@escape.tech/graphql-armor';
import type { Logger } from '../logger';
import type { Metrics } from '../observability/metrics';
import type { PulseContext } from './context';
import { errorLoggingPlugin, formatError } from './errors';
import { createResolvers, type ResolverDependencies } from './resolvers';

/** The contract, read from the top-level schema.graphql: the file is the schema. */
export const SCHEMA_FILE = path.resolve(__dirname, '..', '..', 'schema.graphql');

export function loadTypeDefs(): string {
  return fs.readFileSync(SCHEMA_FILE, 'utf8');
}

export interface ApolloOptions extends ResolverDependencies {
  httpServer: http.Server;
  logger: Logger;
  /** Production hides the schema (no introspection). */
  production: boolean;
  metrics?: Pick<Metrics, 'requestDuration' | 'heartbeats'>;
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

/**
 * Limits on what one document may ask, checked before anything executes. Pulse's
 * own queries are shallow (depth 5 at most:
 * `searchUsers { edges { node { status { state } } } }`) and few-aliased; a frontend that needs
 * many users asks `statuses(ids:)` rather than aliasing `status` a hundred times.
 */
function armor() {
  return new ApolloArmor({
    maxDepth: { n: 8, ignoreIntrospection: false, flattenFragments: true },
    maxAliases: { n: 30 },
    maxDirectives: { n: 10 },
    // graphql-armor's token plugin answers a plain syntax error with a 500; the
    // parser's own limit (parseOptions below) reports both as GRAPHQL_PARSE_FAILED.
    maxTokens: { enabled: false },
    // graphql-armor's cost grows with depth, not with list sizes: one search page
    // asking every field of every user and status costs about 6,700. Room for
    // about three of those in one document; a hostile document still stops early.
    costLimit: { maxCost: 20_000 },
    // "Did you mean ...?" hints would map the schema for someone who cannot
    // introspect it.
    blockFieldSuggestion: { enabled: true },
  }).protect();
}

/** Room for a `statuses` call that spells out its maximum number of ids inline. */
function maxTokens(statusesMaxIds: number): number {
  return Math.max(2000, statusesMaxIds * 2 + 500);
}

export function createApolloServer(options: ApolloOptions): ApolloServer<PulseContext> {
  const protection = armor();
  return new ApolloServer<PulseContext>({
    typeDefs: loadTypeDefs(),
    resolvers: createResolvers(options),
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
      ...(options.metrics ? [latencyPlugin(options.metrics)] : []),
      ApolloServerPluginDrainHttpServer({ httpServer: options.httpServer }),
    ],
  });
}
