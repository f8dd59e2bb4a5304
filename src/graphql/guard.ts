/**
 * Wraps a resolver so that whatever it throws, sync or async, reaches the caller
 * as the GraphQLError {@link toGraphQLError} makes of it.
 */
import { toGraphQLError } from './errors';

export function guard<A extends unknown[], R>(resolve: (...args: A) => R | Promise<R>) {
  return async (...args: A): Promise<R> => {
    try {
      return await resolve(...args);
    } catch (error) {
      return toGraphQLError(error);
    }
  };
}
