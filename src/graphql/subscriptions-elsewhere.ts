/**
 * A subscription sent to /graphql (what a stock Apollo Client's default link
 * does) is answered with a client error that says where subscriptions are
 * served, instead of being executed as a query (which fails as an internal
 * error: a subscription field has nothing to resolve outside a stream).
 *
 * Requests that accept Apollo's multipart subscription responses
 * (`multipart/mixed;subscriptionSpec="1.0"`) are served by the HTTP layer
 * before they reach Apollo (src/http/multipart-subscriptions.ts).
 */
import { GraphQLError } from 'graphql';
import type { ApolloServerPlugin } from '@apollo/server';

/** Where Pulse serves subscriptions to every HTTP client. */
export const SUBSCRIPTIONS_PATH = '/graphql/stream';

/** True when the Accept header asks for Apollo's multipart subscription responses. */
export function acceptsMultipartSubscriptions(accept: string | undefined): boolean {
  return /multipart\/mixed[^,]*subscriptionSpec/i.test(accept ?? '');
}

export function subscriptionsElsewherePlugin<Context extends object>(): ApolloServerPlugin<Context> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ operation, request }) {
          if (operation?.operation !== 'subscription') return;
          if (acceptsMultipartSubscriptions(request.http?.headers.get('accept'))) return;
          throw new GraphQLError(
            `Subscriptions are served at ${SUBSCRIPTIONS_PATH} (Server-Sent Events): send this operation there with \`accept: text/event-stream\`; or here at /graphql over Apollo's multipart protocol, with \`accept: multipart/mixed;subscriptionSpec="1.0", application/json\``,
            { extensions: { code: 'BAD_REQUEST', http: { status: 400 } } },
          );
        },
      };
    },
  };
}
