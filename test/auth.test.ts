/**
 * Who may send a heartbeat: only the bearer of a valid HS256 token, and only for
 * the user its `sub` names. Every failure is UNAUTHENTICATED with HTTP 401.
 */
import jwt from 'jsonwebtoken';
import { sql } from 'kysely';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startTestServer, TEST_JWT_SECRET, type TestServer } from './support/test-server';

let t: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  t = await createTestDatabase();
  server = await startTestServer({ DATABASE_URL: t.url });
});
afterAll(async () => {
  await server.stop();
  await t.destroy();
});

const HEARTBEAT = 'mutation { heartbeat { userId online } }';
const now = () => Math.floor(Date.now() / 1000);
const sign = (payload: object, options: jwt.SignOptions = {}, secret = TEST_JWT_SECRET) =>
  jwt.sign(payload, secret, { algorithm: 'HS256', ...options });
// A token with alg "none": header and payload, no signature.
const unsigned = (payload: object) =>
  `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.`;

describe('heartbeat without a valid token', () => {
  it.each<[string, () => Record<string, string>, RegExp]>([
    ['no Authorization header', () => ({}), /Missing bearer token/],
    ['a non-Bearer scheme', () => ({ authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }), /Malformed Authorization header/],
    ['an empty bearer token', () => ({ authorization: 'Bearer ' }), /Malformed Authorization header/],
    ['a token that is not a JWT', () => ({ authorization: 'Bearer not.a.jwt' }), /not a well-formed JWT/],
    ['a token signed with another secret', () => ({ authorization: `Bearer ${sign({ sub: '42' }, {}, 'another-secret-of-at-least-32-characters')}` }), /signature verification failed/],
    ['a token with a tampered payload', () => ({ authorization: `Bearer ${tamper(sign({ sub: '42' }))}` }), /signature verification failed/],
    ['an expired token', () => ({ authorization: `Bearer ${sign({ sub: '42', exp: now() - 10 })}` }), /Token expired at/],
    ['a token not valid yet (nbf)', () => ({ authorization: `Bearer ${sign({ sub: '42', nbf: now() + 3600 })}` }), /Token not valid before/],
    ['an alg "none" token', () => ({ authorization: `Bearer ${unsigned({ sub: '42' })}` }), /Invalid token/],
    ['a token without sub', () => ({ authorization: `Bearer ${sign({ name: 'x' })}` }), /no `sub` claim/],
    ['a token whose sub is not a user id', () => ({ authorization: `Bearer ${sign({ sub: 'alice' })}` }), /`sub` claim "alice" is not a user id/],
    ['a token whose sub is zero', () => ({ authorization: `Bearer ${sign({ sub: '0' })}` }), /is not a user id/],
  ])('rejects %s with 401 UNAUTHENTICATED', async (_name, headers, message) => {
    const reply = await server.graphql(HEARTBEAT, { headers: headers() });
    expect(reply.status).toBe(401);
    expect(reply.body.errors![0]!.extensions!.code).toBe('UNAUTHENTICATED');
    expect(reply.body.errors![0]!.message).toMatch(message);
    const { rows } = await sql`select user_id from pulse`.execute(t.db);
    expect(rows).toEqual([]);
  });

  it('rejects a token signed with an asymmetric algorithm (algorithm confusion)', async () => {
    const { privateKey } = require('node:crypto').generateKeyPairSync('rsa', { modulusLength: 2048 });
    const token = jwt.sign({ sub: '42' }, privateKey, { algorithm: 'RS256' });
    const reply = await server.graphql(HEARTBEAT, { token });
    expect(reply.status).toBe(401);
    expect(reply.body.errors![0]!.message).toMatch(/only HS256 is accepted/);
  });
});

describe('with a valid token', () => {
  it('writes the heartbeat of the user the token names', async () => {
    const reply = await server.graphql(HEARTBEAT, { token: sign({ sub: '1234', exp: now() + 60 }) });
    expect(reply.status).toBe(200);
    expect(reply.body.data!.heartbeat).toEqual({ userId: '1234', online: true });
  });

  it('lets anyone read statuses without a token, even with a bad one', async () => {
    const anonymous = await server.graphql('{ status(id: "1234") { userId } }');
    const badToken = await server.graphql('{ status(id: "1234") { userId } }', { token: 'garbage' });
    expect(anonymous.body.data).toEqual({ status: { userId: '1234' } });
    expect(badToken.body.data).toEqual({ status: { userId: '1234' } });
  });
});

function tamper(token: string): string {
  const [header, , signature] = token.split('.');
  const payload = Buffer.from(JSON.stringify({ sub: '1' })).toString('base64url');
  return `${header}.${payload}.${signature}`;
}
