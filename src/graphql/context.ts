/**
 * The per-request GraphQL context: who is calling, and the request's loaders.
 *
 * Built once per request by the HTTP layer; resolvers only read it. The bearer
 * token is verified while the context is built (checking an identity
 * provider's token may need its key set, which is asynchronous), by the same
 * {@link identifyCaller} as REST: reads never fail on a bad token, they see as
 * an anonymous reader; only what needs the caller (`authenticate`) fails with
 * why the token was refused.
 */
import type DataLoader from 'dataloader';
import type { GraphQLResolveInfo } from 'graphql';
import { identifyCaller, type Caller } from '../auth/caller';
import type { TokenIssuer } from '../auth/tokens';
import type { Logger } from '../logger';
import type { Presence } from '../presence/presence-service';
import type { UserId } from '../presence/user-id';
import type { UserStatus } from '../presence/user-status';

export interface PulseContext {
  /** The request's id, sent back in the x-request-id header. */
  readonly requestId: string;
  /** Logs lines tagged with the request id. */
  readonly logger: Logger;
  /** The client's address (see RequestInfo), for limits on anonymous actions. */
  readonly clientAddress: string;
  /** The caller's user id; throws AuthenticationError without a valid token. */
  authenticate(): UserId;
  /**
   * Who is reading: the caller when the token is valid, null (anonymous) without
   * one or with a bad one. A read never fails on a token; it only sees less.
   */
  viewer(): UserId | null;
  readonly loaders: {
    /** Statuses as {@link viewer} sees them, one statement per request (a read replica when there is one). */
    readonly status: DataLoader<UserId, UserStatus>;
    /**
     * The same, read from the primary: for mutations' answers, which must show
     * the write just made. See {@link statusLoaderFor}.
     */
    readonly freshStatus: DataLoader<UserId, UserStatus>;
  };
}

export interface ContextDependencies {
  presence: Pick<Presence, 'createStatusLoader'>;
  tokens: TokenIssuer;
}

export interface RequestInfo {
  requestId: string;
  logger: Logger;
  /** The Authorization header as sent, if any. */
  authorization: string | undefined;
  /** The client's address (the peer, or as trusted proxies report it: TRUST_PROXY). */
  clientAddress: string;
}

export async function createContext(deps: ContextDependencies, request: RequestInfo): Promise<PulseContext> {
  return new RequestContext(deps.presence, request, await identifyCaller(deps.tokens, request.authorization));
}

// Private: a class, not an object literal, for Apollo's sake: Apollo copies the
// context of every request (`Object.assign` onto an object with the same
// prototype), which calls an own getter. Getters on the prototype survive the
// copy uncalled, so the logger stays made on first use. For the same reason the
// state is in plain properties, not `#fields`, which the copy would not carry.
class RequestContext implements PulseContext {
  readonly requestId: string;
  readonly clientAddress: string;
  readonly loaders: PulseContext['loaders'];

  constructor(
    presence: ContextDependencies['presence'],
    private readonly request: RequestInfo,
    private readonly caller: Caller,
  ) {
    this.requestId = request.requestId;
    this.clientAddress = request.clientAddress;
    const viewer = caller.viewer;
    let statusLoader: DataLoader<UserId, UserStatus> | undefined;
    let freshStatusLoader: DataLoader<UserId, UserStatus> | undefined;
    this.loaders = {
      // Created on first use: most requests need one of the two at most.
      get status() {
        statusLoader ??= presence.createStatusLoader(viewer);
        return statusLoader;
      },
      get freshStatus() {
        freshStatusLoader ??= presence.createStatusLoader(viewer, { fresh: true });
        return freshStatusLoader;
      },
    };
  }

  // A request's logger is made only if something logs.
  get logger(): Logger {
    return this.request.logger;
  }

  authenticate(): UserId {
    return this.caller.userId();
  }

  viewer(): UserId | null {
    return this.caller.viewer;
  }
}

/**
 * The status loader a field of this operation reads through: in a mutation,
 * the primary's (every answer of a mutation may show a write it just made, so
 * none may come from a replica that has not replayed it yet); in a query, the
 * one that may use a read replica. One operation uses one of them, so a request
 * still costs one status statement.
 */
export function statusLoaderFor(ctx: PulseContext, info: Pick<GraphQLResolveInfo, 'operation'>): DataLoader<UserId, UserStatus> {
  return info.operation.operation === 'mutation' ? ctx.loaders.freshStatus : ctx.loaders.status;
}
