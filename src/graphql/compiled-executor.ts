/**
 * Executes queries and mutations with graphql-jit: each operation is compiled
 * once into a JavaScript function for this schema, instead of graphql-js walking
 * the document for every request and every item of a list (a `statuses` answer
 * of 100 users is 300 and more field completions).
 *
 * Only execution changes. It sits behind Apollo's request pipeline, where Apollo
 * lets an executor come from a gateway: parsing, the document cache, validation
 * with Pulse's limits, every plugin hook, error masking and formatting stay
 * Apollo's. What the compiled function answers is made to look like what
 * graphql-js answers (see {@link asGraphQLError}); where the two would differ,
 * graphql-js executes:
 *
 *  - a document seen for the first time: compiling costs more than one execution,
 *    so only a document that comes back (Apollo's document cache hands back the
 *    same parsed document for the same text) is compiled. A client that sends a
 *    different document every time never makes Pulse compile;
 *  - variables that do not fit their types: graphql-js reports them with the
 *    variable's definition, which Apollo answers as BAD_USER_INPUT;
 *  - subscriptions (served by the event stream), an operation name that names no
 *    operation, and anything graphql-jit declines to compile.
 */
import { execute, GraphQLError, type DocumentNode, type GraphQLSchema } from 'graphql';
import { compileQuery, isCompiledQuery, type CompiledQuery } from 'graphql-jit';
import type { ApolloServerOptionsWithGateway } from '@apollo/server';
import type { Metrics } from '../observability/metrics';
import type { PulseContext } from './context';

/** What Apollo accepts as a gateway: the schema, and an executor for it. */
export type ExecutorGateway = ApolloServerOptionsWithGateway<PulseContext>['gateway'];
type Executor = NonNullable<Awaited<ReturnType<ExecutorGateway['load']>>['executor']>;

// Private: per operation of a document, where it stands: seen once (executed by
// graphql-js), compiled, or not compilable.
type Compilation = 'seen' | CompiledQuery | 'interpreted';

/**
 * An Apollo gateway serving `schema` with compiled execution. Give it to
 * `new ApolloServer({ gateway })` in place of `schema`.
 */
export function compiledExecutorGateway(schema: GraphQLSchema, metrics?: Pick<Metrics, 'graphqlExecutions'>): ExecutorGateway {
  // Keyed by the parsed document, which Apollo's document cache keeps while the
  // document is in use: a compiled operation goes when its document does.
  const compilations = new WeakMap<DocumentNode, Map<string, Compilation>>();

  const interpret = (document: DocumentNode, context: PulseContext, variables: Record<string, unknown> | undefined, operationName: string | null) => {
    metrics?.graphqlExecutions.inc({ executor: 'graphql-js' });
    return execute({ schema, document, contextValue: context, variableValues: variables, operationName });
  };

  const executor: Executor = async (request) => {
    const { document, operation, operationName } = request;
    const context = request.context as PulseContext;
    const variables = request.request.variables;
    if (!operation || operation.operation === 'subscription') return interpret(document, context, variables, operationName);

    let byName = compilations.get(document);
    if (!byName) compilations.set(document, (byName = new Map()));
    const key = operationName ?? '';
    const known = byName.get(key);
    if (known === undefined || known === 'interpreted') {
      if (known === undefined) byName.set(key, 'seen');
      return interpret(document, context, variables, operationName);
    }
    let compiled = known;
    if (compiled === 'seen') {
      const made = compileQuery(schema, document, operationName ?? undefined);
      if (!isCompiledQuery(made)) {
        byName.set(key, 'interpreted');
        return interpret(document, context, variables, operationName);
      }
      byName.set(key, (compiled = made));
    }

    const result = await compiled.query(undefined, context, variables ?? {});
    // No data at all: the variables did not coerce, and nothing ran. graphql-js
    // says why in the form Apollo turns into BAD_USER_INPUT.
    if (!('data' in result) || result.data === undefined) return interpret(document, context, variables, operationName);
    metrics?.graphqlExecutions.inc({ executor: 'compiled' });
    return result.errors ? { ...result, errors: result.errors.map(asGraphQLError) } : result;
  };

  let loaded: ((schemaContext: { apiSchema: GraphQLSchema; coreSupergraphSdl: string }) => void) | undefined;
  return {
    onSchemaLoadOrUpdate(callback) {
      loaded = callback;
      return () => {
        loaded = undefined;
      };
    },
    async load() {
      loaded?.({ apiSchema: schema, coreSupergraphSdl: '' });
      return { executor };
    },
    async stop() {},
  };
}

/**
 * An error of the compiled execution as graphql-js makes it: a GraphQLError with
 * the message, locations and path, whose `originalError` is what the resolver
 * threw and whose extensions (the error code Apollo's masking reads) are that
 * error's. graphql-jit's own error class passes for a graphql-js GraphQLError
 * (`instanceof`) but is not one: its message is read-only, and graphql-armor,
 * which rewrites messages to hide field suggestions, fails on it (the caller
 * would get a masked internal error instead of the error's code).
 */
function asGraphQLError(error: GraphQLError): GraphQLError {
  if (Object.getPrototypeOf(error) === GraphQLError.prototype) return error;
  const original = error.originalError ?? undefined;
  const converted = new GraphQLError(error.message, {
    path: error.path,
    originalError: original,
    extensions: error.extensions ?? (original instanceof GraphQLError ? original.extensions : undefined),
  });
  // graphql-jit knows the locations but not the nodes they came from.
  (converted as { locations: GraphQLError['locations'] }).locations = error.locations;
  return converted;
}
