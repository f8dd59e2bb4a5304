/**
 * What every transport of GraphQL subscriptions shares: the event stream at
 * /graphql/stream (Server-Sent Events) and Apollo's multipart subscriptions on
 * /graphql parse, validate, authenticate and mask errors through this one place,
 * under the same limits and error policy as queries and mutations on /graphql.
 */
import {
  GraphQLError,
  parse,
  specifiedRules,
  validate,
  type DocumentNode,
  type ExecutionResult,
  type GraphQLFormattedError,
  type GraphQLSchema,
  type ValidationRule,
} from 'graphql';
import { formatError } from '../graphql/errors';
import type { PulseContext, RequestInfo } from '../graphql/context';
import { maxTokens, queryLimits } from '../graphql/limits';
import type { Logger } from '../logger';

export interface SubscriptionOperationsOptions {
  schema: GraphQLSchema;
  contextFor(request: RequestInfo): Promise<PulseContext>;
  statusesMaxIds: number;
}

/** A subscription's result as sent to its client: errors already masked. */
export interface MaskedResult {
  data?: ExecutionResult['data'];
  errors?: GraphQLFormattedError[];
}

export interface SubscriptionOperations {
  readonly schema: GraphQLSchema;
  /**
   * Parses a document under the parser's token limit; a syntax error or an
   * over-long document throws a GraphQLError with code GRAPHQL_PARSE_FAILED.
   */
  parse(query: string): DocumentNode;
  /** The document's problems under the schema and the document limits (none: valid). */
  validate(document: DocumentNode, extraRules?: readonly ValidationRule[]): readonly GraphQLError[];
  /** The per-request context: the caller (from the bearer token) and the request's loaders. */
  contextFor(request: RequestInfo): Promise<PulseContext>;
  /**
   * The result a client may see: known codes pass, anything else is an internal
   * error, logged with its cause and sent without it (as on /graphql).
   */
  mask(result: ExecutionResult, logger: Logger): MaskedResult;
}

export function createSubscriptionOperations(options: SubscriptionOperationsOptions): SubscriptionOperations {
  const rules = [...specifiedRules, ...queryLimits().validationRules];
  const tokenLimit = maxTokens(options.statusesMaxIds);
  return {
    schema: options.schema,
    parse(query) {
      try {
        return parse(query, { maxTokens: tokenLimit });
      } catch (error) {
        throw new GraphQLError((error as Error).message, { extensions: { code: 'GRAPHQL_PARSE_FAILED' } });
      }
    },
    validate(document, extraRules = []) {
      // Coded as Apollo codes them on /graphql, so masking lets them through.
      return validate(options.schema, document, [...rules, ...extraRules]).map((error) =>
        error.extensions?.code
          ? error
          : new GraphQLError(error.message, { nodes: error.nodes, extensions: { ...error.extensions, code: 'GRAPHQL_VALIDATION_FAILED' } }),
      );
    },
    contextFor: options.contextFor,
    mask(result, logger) {
      if (!result.errors?.length) return result.data === undefined ? {} : { data: result.data };
      for (const error of result.errors) {
        const code = error.extensions?.code;
        if (!code || code === 'INTERNAL_SERVER_ERROR') logger.error('subscription: internal error', { error: error.originalError ?? error });
      }
      return { ...(result.data === undefined ? {} : { data: result.data }), errors: result.errors.map((e) => withoutHttp(formatError(e.toJSON(), e))) };
    },
  };
}

// Private: `extensions.http` tells the HTTP layer which status to answer with;
// it is not part of what the client is told.
function withoutHttp(formatted: GraphQLFormattedError): GraphQLFormattedError {
  if (!formatted.extensions || !('http' in formatted.extensions)) return formatted;
  const { http: _drop, ...extensions } = formatted.extensions;
  return { ...formatted, extensions };
}
