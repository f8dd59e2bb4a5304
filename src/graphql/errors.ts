/**
 * Errors as GraphQL callers see them: a message and `extensions.code`, with the
 * HTTP status set for the codes that have one. Anything unexpected is logged with
 * its cause and masked as INTERNAL_SERVER_ERROR, so no stack or SQL leaks out.
 */
import type { GraphQLFormattedError } from 'graphql';
import { GraphQLError } from 'graphql';
import { unwrapResolverError } from '@apollo/server/errors';
import { toPulseError } from '../errors';
import { ERROR_ANSWERS, errorHeaders, retryAfterOf } from '../http/error-answers';
import type { ApolloServerPlugin } from '@apollo/server';
import type { Logger } from '../logger';
import type { PulseContext } from './context';

/** Rethrows `error` as the GraphQLError its caller should see. */
export function toGraphQLError(error: unknown): never {
  if (error instanceof GraphQLError) throw error;
  const known = toPulseError(error);
  if (!known) throw error;
  const answer = ERROR_ANSWERS[known.code];
  const http = answer.failsGraphQLRequest ? { status: answer.status, headers: new Map(Object.entries(errorHeaders(answer.status, retryAfterOf(known)))) } : undefined;
  throw new GraphQLError(known.message, {
    originalError: known,
    extensions: { code: known.code, ...(http ? { http } : {}) },
  });
}

/**
 * Apollo's formatError: masks what is not a known, deliberate error. The cause is
 * logged, with the request id, by {@link errorLoggingPlugin}.
 */
export function formatError(formatted: GraphQLFormattedError, _error: unknown): GraphQLFormattedError {
  const code = formatted.extensions?.code;
  if (code && code !== 'INTERNAL_SERVER_ERROR') return withoutStacktrace(formatted);
  return {
    message: 'Internal server error',
    locations: formatted.locations,
    path: formatted.path,
    extensions: { code: 'INTERNAL_SERVER_ERROR' },
  };
}

/** Logs every error that will be masked, with its cause and the request's id. */
export function errorLoggingPlugin(fallback: Logger): ApolloServerPlugin<PulseContext> {
  return {
    async requestDidStart() {
      return {
        async didEncounterErrors({ contextValue, errors }) {
          for (const error of errors) {
            const code = error.extensions?.code;
            if (code && code !== 'INTERNAL_SERVER_ERROR') continue;
            (contextValue?.logger ?? fallback).error('graphql: internal error', { error: unwrapResolverError(error), path: error.path });
          }
        },
      };
    },
  };
}

function withoutStacktrace(formatted: GraphQLFormattedError): GraphQLFormattedError {
  if (!formatted.extensions || !('stacktrace' in formatted.extensions)) return formatted;
  const { stacktrace: _drop, ...extensions } = formatted.extensions;
  return { ...formatted, extensions };
}
