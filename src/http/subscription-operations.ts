/**
 * What every transport of GraphQL subscriptions shares: the event stream at
 * /graphql/stream (Server-Sent Events) and Apollo's multipart subscriptions on
 * /graphql parse, validate, authenticate, start and mask errors through this one
 * place, under the same limits and error policy as queries and mutations on
 * /graphql.
 *
 * An open subscription may live for hours and a process holds thousands, so
 * what each one keeps is its memory bill. Here it keeps its event source (the
 * subscriber queue, whose packed arrays hold the watched users), its context
 * and a document shared with every subscription of the same text; not the
 * request's body, its variables or a parsed copy of the document. graphql-js's
 * own `subscribe()` would keep all three for the subscription's life and, for
 * every event, coerce the root field's arguments again (a list of 1,000 ids:
 * 1,000 coercions per event, a million for the first statuses alone).
 */
import {
  createSourceEventStream,
  execute,
  GraphQLError,
  getOperationAST,
  parse,
  specifiedRules,
  TypeInfo,
  validate,
  visit,
  visitWithTypeInfo,
  type DocumentNode,
  type ExecutionResult,
  type GraphQLFormattedError,
  type GraphQLSchema,
  type OperationTypeNode,
} from 'graphql';
import { formatError } from '../graphql/errors';
import type { PulseContext, RequestInfo } from '../graphql/context';
import { maxTokens, queryLimits } from '../graphql/limits';
import type { Logger } from '../logger';
import { refusalOf, type Refusal } from './error-answers';

export interface SubscriptionOperationsOptions {
  schema: GraphQLSchema;
  contextFor(request: RequestInfo): Promise<PulseContext>;
  statusesMaxIds: number;
  /** Distinct documents kept parsed and validated (default 100). */
  documentCacheSize?: number;
}

/** A subscription's result as sent to its client: errors already masked. */
export interface MaskedResult {
  data?: ExecutionResult['data'];
  errors?: GraphQLFormattedError[];
}

/** What a client asked for: the request's query, operation name and variables. */
export interface OperationRequest {
  query: string;
  operationName?: string;
  variables?: Record<string, unknown>;
}

/**
 * A document as the transports see it: parsed and validated once per distinct
 * text, shared by every subscription that sends it.
 */
export interface PreparedDocument {
  readonly document: DocumentNode;
  /** Problems under the schema and the document limits (none: valid). */
  readonly errors: readonly GraphQLError[];
  /** What `operationName` (or the only operation) is; undefined when there is no such operation. */
  operationOf(operationName: string | undefined): OperationTypeNode | undefined;
}

/** What starting a subscription came to. */
export type Started =
  /** The events, masked, until the client leaves or the server stops (`return()` ends them). */
  | { events: AsyncIterableIterator<MaskedResult> }
  /**
   * Refused before the first event. `refusal`: the request failed as a whole
   * (a database outage, no valid token), to be answered with its HTTP status
   * and headers; null: the errors are about the subscription's field (a bad id),
   * an ordinary GraphQL answer.
   */
  | { refused: MaskedResult; refusal: Refusal | null };

export interface SubscriptionOperations {
  readonly schema: GraphQLSchema;
  /**
   * Parses and validates `query`, or finds it already done. A syntax error or
   * an over-long document throws a GraphQLError with code GRAPHQL_PARSE_FAILED.
   */
  prepare(query: string): PreparedDocument;
  /** The per-request context: the caller (from the bearer token) and the request's loaders. */
  contextFor(request: RequestInfo): Promise<PulseContext>;
  /** Starts a subscription of a valid document (see {@link prepare}). */
  start(prepared: PreparedDocument, request: OperationRequest, context: PulseContext): Promise<Started>;
  /**
   * The result a client may see: known codes pass, anything else is an internal
   * error, logged with its cause and sent without it (as on /graphql).
   */
  mask(result: ExecutionResult, logger: Logger): MaskedResult;
}

/** Private: a prepared document and what its events execute. */
interface Prepared extends PreparedDocument {
  /** The document each event executes; built on the first subscription. */
  events?: EventDocument;
}

/**
 * Private: what each event of a subscription executes. graphql-js executes
 * every event as the subscription's own document with the event as root value,
 * which resolves the root field again, arguments included. A subscription
 * field's arguments choose its event stream, once, in `subscribe`; its
 * `resolve` maps an event and does not read them (presenceChanged's returns the
 * status). So events execute the document with the root fields' arguments
 * removed, and need only the variables still used below the root field (a
 * directive's `if`), usually none.
 */
interface EventDocument {
  document: DocumentNode;
  variables: readonly string[];
}

export function createSubscriptionOperations(options: SubscriptionOperationsOptions): SubscriptionOperations {
  const rules = [...specifiedRules, ...queryLimits().validationRules];
  const tokenLimit = maxTokens(options.statusesMaxIds);
  const { schema } = options;
  const cacheSize = options.documentCacheSize ?? 100;
  // Least recently used first (a Map keeps insertion order; a hit moves to the end).
  const cache = new Map<string, Prepared>();

  const operations: SubscriptionOperations = {
    schema,
    prepare(query) {
      const cached = cache.get(query);
      if (cached) {
        cache.delete(query);
        cache.set(query, cached);
        return cached;
      }
      let document;
      try {
        document = parse(query, { maxTokens: tokenLimit });
      } catch (error) {
        throw new GraphQLError((error as Error).message, { extensions: { code: 'GRAPHQL_PARSE_FAILED' } });
      }
      // Coded as Apollo codes them on /graphql, so masking lets them through.
      const errors = validate(schema, document, rules).map((error) =>
        error.extensions?.code
          ? error
          : new GraphQLError(error.message, { nodes: error.nodes, extensions: { ...error.extensions, code: 'GRAPHQL_VALIDATION_FAILED' } }),
      );
      const prepared: Prepared = {
        document,
        errors,
        operationOf: (operationName) => getOperationAST(document, operationName)?.operation,
      };
      cache.set(query, prepared);
      if (cache.size > cacheSize) cache.delete(cache.keys().next().value!);
      return prepared;
    },
    contextFor: options.contextFor,
    async start(given, request, context) {
      const prepared = given as Prepared;
      const source = await createSourceEventStream({
        schema,
        document: prepared.document,
        operationName: request.operationName,
        variableValues: request.variables,
        contextValue: context,
      });
      if (!isAsyncIterable(source)) {
        return { refused: operations.mask(source, context.logger), refusal: refusalOf(source.errors ?? []) };
      }
      const events = (prepared.events ??= eventDocument(schema, prepared.document));
      // What the closures below keep for the subscription's life: not `request`.
      const { operationName } = request;
      const variables: Record<string, unknown> = {};
      for (const name of events.variables) variables[name] = request.variables?.[name];
      return {
        events: new SubscriptionEvents(source, (event) =>
          execute({ schema, document: events.document, rootValue: event, contextValue: context, variableValues: variables, operationName }),
          (result) => operations.mask(result, context.logger),
        ),
      };
    },
    mask(result, logger) {
      if (!result.errors?.length) return result.data === undefined ? {} : { data: result.data };
      for (const error of result.errors) {
        const code = error.extensions?.code;
        if (!code || code === 'INTERNAL_SERVER_ERROR') logger.error('subscription: internal error', { error: error.originalError ?? error });
      }
      return { ...(result.data === undefined ? {} : { data: result.data }), errors: result.errors.map((e) => withoutHttp(formatError(e.toJSON(), e))) };
    },
  };
  return operations;
}

/**
 * Private: a subscription's events as its client sees them: each event of the
 * source, executed and masked when the client asks for the next one (a client
 * that reads slowly leaves its news in the source, where a newer status of a
 * user replaces the unread one).
 */
class SubscriptionEvents implements AsyncIterableIterator<MaskedResult> {
  readonly #source: AsyncIterator<unknown>;
  readonly #execute: (event: unknown) => ExecutionResult | Promise<ExecutionResult>;
  readonly #mask: (result: ExecutionResult) => MaskedResult;

  constructor(source: AsyncIterable<unknown>, run: (event: unknown) => ExecutionResult | Promise<ExecutionResult>, mask: (result: ExecutionResult) => MaskedResult) {
    this.#source = source[Symbol.asyncIterator]();
    this.#execute = run;
    this.#mask = mask;
  }

  async next(): Promise<IteratorResult<MaskedResult>> {
    const event = await this.#source.next();
    if (event.done) return { value: undefined, done: true };
    return { value: this.#mask(await this.#execute(event.value)), done: false };
  }

  async return(): Promise<IteratorResult<MaskedResult>> {
    await this.#source.return?.();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

// Private: the document without the subscription root fields' arguments and
// without the variable definitions nothing uses any more (see EventDocument).
function eventDocument(schema: GraphQLSchema, document: DocumentNode): EventDocument {
  const subscriptionType = schema.getSubscriptionType();
  const typeInfo = new TypeInfo(schema);
  const withoutArguments = visit(
    document,
    visitWithTypeInfo(typeInfo, {
      Field(node) {
        if (!subscriptionType || typeInfo.getParentType() !== subscriptionType || !node.arguments?.length) return undefined;
        return { ...node, arguments: [] };
      },
    }),
  );
  const used = new Set<string>();
  visit(withoutArguments, {
    VariableDefinition: () => false,
    Variable(node) {
      used.add(node.name.value);
    },
  });
  const trimmed = visit(withoutArguments, {
    VariableDefinition(node) {
      return used.has(node.variable.name.value) ? undefined : null;
    },
  });
  return { document: trimmed, variables: [...used] };
}

// Private: `extensions.http` tells the HTTP layer which status to answer with;
// it is not part of what the client is told.
function withoutHttp(formatted: GraphQLFormattedError): GraphQLFormattedError {
  if (!formatted.extensions || !('http' in formatted.extensions)) return formatted;
  const { http: _drop, ...extensions } = formatted.extensions;
  return { ...formatted, extensions };
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof (value as AsyncIterable<unknown> | null)?.[Symbol.asyncIterator] === 'function';
}
