/**
 * The load generator, run as a process of its own so that it does not share an
 * event loop with the server it measures. Reads a {@link LoadSpec} as JSON from
 * argv[2], drives autocannon on loopback, prints a {@link LoadResult} as JSON.
 *
 * Every heartbeat request carries the token of a different user (round robin
 * over `users` ids from `firstUserId`), so the server sees many distinct users,
 * as it would in production, never one user repeated.
 */
import { createHmac } from 'node:crypto';
import autocannon from 'autocannon';

export interface LoadSpec {
  port: number;
  /** 'graphql-heartbeat' | 'graphql-noop' | 'rest-pulse' | 'graphql-statuses' | 'rest-statuses' */
  kind: LoadKind;
  connections: number;
  seconds: number;
  /** Distinct users the requests cycle through. */
  users: number;
  firstUserId: number;
  /** Where in the cycle of users the first request starts (continues the previous run). */
  startIndex: number;
  /** Ids per status read. */
  idsPerRead: number;
  jwtSecret: string;
}

export type LoadKind = 'graphql-heartbeat' | 'graphql-noop' | 'rest-pulse' | 'graphql-statuses' | 'rest-statuses';

export interface LoadResult {
  requests: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]!) as LoadSpec;
  const tokens = spec.kind === 'graphql-statuses' || spec.kind === 'rest-statuses' ? [] : signTokens(spec);
  const bodies = spec.kind === 'graphql-statuses' || spec.kind === 'rest-statuses' ? readBodies(spec) : [];
  let next = spec.startIndex;

  const request: autocannon.Request = (() => {
    switch (spec.kind) {
      case 'graphql-heartbeat':
      case 'graphql-noop':
        return {
          method: 'POST',
          path: '/graphql',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query: spec.kind === 'graphql-noop' ? 'mutation { __typename }' : 'mutation { heartbeat { online } }' }),
          setupRequest: (req) => ({ ...req, headers: { ...req.headers, authorization: `Bearer ${tokens[next++ % tokens.length]}` } }),
        };
      case 'rest-pulse':
        return {
          method: 'POST',
          path: '/pulse',
          setupRequest: (req) => ({ ...req, headers: { ...req.headers, authorization: `Bearer ${tokens[next++ % tokens.length]}` } }),
        };
      case 'graphql-statuses':
        return {
          method: 'POST',
          path: '/graphql',
          headers: { 'content-type': 'application/json' },
          setupRequest: (req) => ({ ...req, body: bodies[next++ % bodies.length] }),
        };
      case 'rest-statuses':
        return { method: 'GET', setupRequest: (req) => ({ ...req, path: bodies[next++ % bodies.length] }) };
    }
  })();

  const result = await autocannon({
    url: `http://127.0.0.1:${spec.port}`,
    connections: spec.connections,
    duration: spec.seconds,
    requests: [request],
  });
  const out: LoadResult = {
    requests: result.requests.total,
    requestsPerSecond: result.requests.total / spec.seconds,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

// Private: one HS256 token per user, as a login service would issue them. Built
// here with node:crypto's HMAC rather than jsonwebtoken's sign, which takes
// most of a millisecond per token: a hundred thousand users would spend over a
// minute signing before every run. Pulse verifies them with jsonwebtoken like any other token.
export function signTokens(spec: Pick<LoadSpec, 'users' | 'firstUserId' | 'jwtSecret'>): string[] {
  const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
  const exp = Math.floor(Date.now() / 1000) + 3600;
  return Array.from({ length: spec.users }, (_, i) => {
    const payload = Buffer.from(JSON.stringify({ sub: String(spec.firstUserId + i), exp })).toString('base64url');
    const signature = createHmac('sha256', spec.jwtSecret).update(`${header}.${payload}`).digest('base64url');
    return `${header}.${payload}.${signature}`;
  });
}

// Private: status reads of `idsPerRead` random existing users, prepared up front
// so the generator spends its time sending, not building bodies.
function readBodies(spec: LoadSpec): string[] {
  return Array.from({ length: 1000 }, () => {
    const ids = Array.from({ length: spec.idsPerRead }, () => String(spec.firstUserId + Math.floor(Math.random() * spec.users)));
    return spec.kind === 'rest-statuses'
      ? `/status/profile?userId=${ids.join(',')}`
      : JSON.stringify({ query: 'query ($ids: [ID!]!) { statuses(ids: $ids) { userId online lastSeen } }', variables: { ids } });
  });
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  });
}
