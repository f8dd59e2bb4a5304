/**
 * Tokens from an identity provider: Pulse in production checks them against a
 * key set served by a small JWKS server on loopback inside this test, as Auth0,
 * Okta or Keycloak publish theirs: the right token, the wrong audience or issuer,
 * an expired one, one without `exp`, one too old, a key rotated in after Pulse
 * first fetched the set, the right key id with another key, and HS256 or `none`
 * tokens presented to a key-set setup.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type JWK, type KeyLike } from 'jose';
import jwt from 'jsonwebtoken';
import { sql } from 'kysely';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startTestServer, TEST_JWT_SECRET, type TestServer } from './support/test-server';

const ISSUER = 'https://login.example.com/';
const AUDIENCE = 'pulse-api';
const HEARTBEAT = 'mutation { heartbeat { userId online } }';

interface SigningKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: KeyLike;
  jwk: JWK;
}

async function signingKey(kid: string, alg: 'RS256' | 'ES256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

/** The provider's key server: serves whatever `published` holds, counting fetches. */
class KeyServer {
  published: JWK[] = [];
  fetches = 0;
  #server = http.createServer((_req, res) => {
    this.fetches++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: this.published }));
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/.well-known/jwks.json`;
  }

  stop(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

function token(key: SigningKey, claims: { sub?: string; iss?: string; aud?: string; exp?: number | null; iat?: number; kid?: string } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const builder = new SignJWT({})
    .setProtectedHeader({ alg: key.alg, kid: claims.kid ?? key.kid })
    .setSubject(claims.sub ?? '4242')
    .setIssuer(claims.iss ?? ISSUER)
    .setAudience(claims.aud ?? AUDIENCE)
    .setIssuedAt(claims.iat ?? now);
  if (claims.exp !== null) builder.setExpirationTime(claims.exp ?? now + 600);
  return builder.sign(key.privateKey);
}

let t: TestDatabase;
let keys: KeyServer;
let server: TestServer;
let rsa: SigningKey;
let ec: SigningKey;
let rotated: SigningKey;

const heartbeatWith = (bearer: string) => server.graphql(HEARTBEAT, { token: bearer });

beforeAll(async () => {
  t = await createTestDatabase();
  keys = new KeyServer();
  [rsa, ec, rotated] = await Promise.all([signingKey('rsa-1', 'RS256'), signingKey('ec-1', 'ES256'), signingKey('rsa-2', 'RS256')]);
  keys.published = [rsa.jwk, ec.jwk];
  const url = await keys.start();
  server = await startTestServer({
    DATABASE_URL: t.url,
    NODE_ENV: 'production',
    JWT_SECRET: undefined,
    JWT_JWKS_URL: url,
    JWT_ISSUER: ISSUER,
    JWT_AUDIENCE: AUDIENCE,
    JWT_ALGORITHMS: 'RS256,ES256',
    JWT_MAX_TOKEN_AGE_SECONDS: '3600',
    // So the rotation case need not wait out the default 30 s between fetches.
    JWT_JWKS_COOLDOWN_SECONDS: '0',
  });
});
afterAll(async () => {
  await server?.stop();
  await keys?.stop();
  await t?.destroy();
});

it('accepts RS256 and ES256 tokens from the key set, as the user in `sub`', async () => {
  for (const key of [rsa, ec]) {
    const reply = await heartbeatWith(await token(key, { sub: '4242' }));
    expect(reply.status).toBe(200);
    expect(reply.body.data).toEqual({ heartbeat: { userId: '4242', online: true } });
  }
});

it.each([
  ['a wrong audience', { aud: 'another-api' }, /`aud` claim/],
  ['a wrong issuer', { iss: 'https://evil.example.com/' }, /`iss` claim/],
  ['an expired token', { exp: Math.floor(Date.now() / 1000) - 60 }, /expired/i],
  ['a token without exp (production)', { exp: null }, /no `exp` claim/],
  ['a token issued two hours ago (JWT_MAX_TOKEN_AGE_SECONDS=3600)', { iat: Math.floor(Date.now() / 1000) - 7200 }, /issued too long ago/],
])('refuses %s with 401 and says why', async (_case, claims, message) => {
  const reply = await heartbeatWith(await token(rsa, claims));
  expect(reply.status).toBe(401);
  expect(reply.body.errors![0]!.extensions!.code).toBe('UNAUTHENTICATED');
  expect(reply.body.errors![0]!.message).toMatch(message);
});

it('refuses a token with the right key id but signed by another key', async () => {
  const impostor = await signingKey('rsa-1', 'RS256');
  const reply = await heartbeatWith(await token(impostor));
  expect(reply.status).toBe(401);
  expect(reply.body.errors![0]!.message).toMatch(/signature verification failed/);
});

it('accepts a key rotated in after the set was first fetched, without a restart', async () => {
  expect((await heartbeatWith(await token(rsa))).status).toBe(200);
  const before = await heartbeatWith(await token(rotated, { sub: '77' }));
  expect(before.status).toBe(401);
  expect(before.body.errors![0]!.message).toMatch(/does not publish/);

  keys.published = [rsa.jwk, ec.jwk, rotated.jwk];
  const after = await heartbeatWith(await token(rotated, { sub: '77' }));
  expect(after.body.data).toEqual({ heartbeat: { userId: '77', online: true } });
});

it('refuses HS256 tokens, even signed with a secret the server once had, and alg none', async () => {
  const hs256 = jwt.sign({}, TEST_JWT_SECRET, { algorithm: 'HS256', subject: '4242', issuer: ISSUER, audience: AUDIENCE, expiresIn: 600 });
  const reply = await heartbeatWith(hs256);
  expect(reply.status).toBe(401);
  expect(reply.body.errors![0]!.message).toMatch(/HS256 tokens are not accepted here/);

  const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${Buffer.from(
    JSON.stringify({ sub: '4242', iss: ISSUER, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 600 }),
  ).toString('base64url')}.`;
  const none = await heartbeatWith(unsigned);
  expect(none.status).toBe(401);
  expect(none.body.errors![0]!.extensions!.code).toBe('UNAUTHENTICATED');
});

it('reads a status as the token user and anonymous with a refused token, without failing the read', async () => {
  const good = await server.graphql('{ me { id } status(id: "4242") { userId } }', { token: await token(ec, { sub: '4242' }) });
  expect(good.body.data).toEqual({ me: null, status: { userId: '4242' } });
  const refused = await server.graphql('{ status(id: "4242") { userId } }', { token: await token(rsa, { aud: 'another-api' }) });
  expect(refused.body.data).toEqual({ status: { userId: '4242' } });
});

it('does not offer sign-up, which would need a secret to sign tokens with: SIGNUP_DISABLED, and no user made', async () => {
  const reply = await server.graphql('mutation { createUser(name: "Ann") { user { id } token } }');
  expect(reply.status).toBe(200);
  expect(reply.body.data).toBeNull();
  expect(reply.body.errors![0]!.extensions!.code).toBe('SIGNUP_DISABLED');
  expect(reply.body.errors![0]!.message).toMatch(/identity provider \(JWT_JWKS_URL\); sign up there/);
  const { rows } = await sql`select name from users where name = 'Ann'`.execute(t.db);
  expect(rows).toEqual([]);
});

describe('with the default 30 s between fetches for unknown key ids', () => {
  it('fetches the key set at most once more however many unknown key ids arrive', async () => {
    const provider = new KeyServer();
    provider.published = [rsa.jwk];
    const url = await provider.start();
    const strict = await startTestServer({ DATABASE_URL: t.url, JWT_SECRET: undefined, JWT_JWKS_URL: url, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE });
    try {
      expect((await strict.graphql(HEARTBEAT, { token: await token(rsa) })).status).toBe(200);
      const fetchesAfterFirst = provider.fetches;
      for (let i = 0; i < 20; i++) {
        const reply = await strict.graphql(HEARTBEAT, { token: await token(rsa, { kid: `junk-${i}` }) });
        expect(reply.status).toBe(401);
      }
      expect(provider.fetches - fetchesAfterFirst).toBeLessThanOrEqual(1);
      // The genuine user is still served.
      expect((await strict.graphql(HEARTBEAT, { token: await token(rsa) })).status).toBe(200);
    } finally {
      await strict.stop();
      await provider.stop();
    }
  });
});
