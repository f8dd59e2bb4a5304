/**
 * The Apollo Server: schema.graphql plus the resolvers, with Pulse's error policy.
 */
import fs from 'node:fs';
import path from 'node:path';
import type http from 'node:http';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import type { Logger } from '../logger';
import type { PulseContext } from './context';
import { createFormatError } from './errors';
import { createResolvers, type ResolverDependencies } from './resolvers';

/** The contract, read from the top-level schema.graphql: the file is the schema. */
export const SCHEMA_FILE = path.resolve(__dirname, '..', '..', 'schema.graphql');

export function loadTypeDefs(): string {
  return fs.readFileSync(SCHEMA_FILE, 'utf8');
}

export interface ApolloOptions extends ResolverDependencies {
  httpServer: http.Server;
  logger: Logger;
}

export function createApolloServer(options: ApolloOptions): ApolloServer<PulseContext> {
  return new ApolloServer<PulseContext>({
    typeDefs: loadTypeDefs(),
    resolvers: createResolvers(options),
    formatError: createFormatError(options.logger),
    includeStacktraceInErrorResponses: false,
    // Pulse's main.ts owns SIGTERM/SIGINT: shutdown is an ordered list of steps
    // (HTTP, then buffered heartbeats, then the pool), which Apollo's own signal
    // handlers would cut short.
    stopOnTerminationSignals: false,
    // On shutdown, stop accepting connections and let in-flight requests finish.
    plugins: [ApolloServerPluginDrainHttpServer({ httpServer: options.httpServer })],
  });
}
