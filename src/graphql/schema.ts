/**
 * The executable schema: schema.graphql (the contract, read as it is) with the
 * resolvers. One instance serves GraphQL over HTTP and the event stream.
 */
import fs from 'node:fs';
import path from 'node:path';
import { makeExecutableSchema } from '@graphql-tools/schema';
import type { GraphQLSchema } from 'graphql';
import { createResolvers, type ResolverDependencies } from './resolvers';

/** The contract, read from the top-level schema.graphql: the file is the schema. */
export const SCHEMA_FILE = path.resolve(__dirname, '..', '..', 'schema.graphql');

export function loadTypeDefs(): string {
  return fs.readFileSync(SCHEMA_FILE, 'utf8');
}

export function createSchema(deps: ResolverDependencies): GraphQLSchema {
  return makeExecutableSchema({ typeDefs: loadTypeDefs(), resolvers: createResolvers(deps) });
}
