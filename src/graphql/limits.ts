/**
 * Limits on what one GraphQL document may ask, checked before anything executes,
 * for queries and mutations (Apollo) and subscriptions (the event stream) alike.
 * Pulse's own operations are shallow (depth 5 at most:
 * `searchUsers { edges { node { status { state } } } }`) and few-aliased; a frontend
 * that needs many users asks `statuses(ids:)` rather than aliasing `status` a
 * hundred times.
 */
import { ApolloArmor } from '@escape.tech/graphql-armor';

export function queryLimits() {
  return new ApolloArmor({
    maxDepth: { n: 8, ignoreIntrospection: false, flattenFragments: true },
    maxAliases: { n: 30 },
    maxDirectives: { n: 10 },
    // graphql-armor's token plugin answers a plain syntax error with a 500; the
    // parser's own limit (see maxTokens) reports both as GRAPHQL_PARSE_FAILED.
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

/** Parser token limit: room for a `statuses` call that spells out its maximum number of ids inline. */
export function maxTokens(statusesMaxIds: number): number {
  return Math.max(2000, statusesMaxIds * 2 + 500);
}
