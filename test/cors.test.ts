/**
 * Browser apps on other origins: preflights are answered, responses carry the
 * CORS headers for allowed origins only, and the headers a client needs
 * (Retry-After, x-request-id) are exposed.
 */
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startTestServer, type TestServer } from './support/test-server';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(() => t.destroy());

async function withServer(env: Record<string, string>, run: (base: string, server: TestServer) => Promise<void>) {
  const server = await startTestServer({ DATABASE_URL: t.url, ...env });
  try {
    await run(server.pulse.graphqlUrl.replace(/\/graphql$/, ''), server);
  } finally {
    await server.stop();
  }
}

it('by default, lets any origin send heartbeats and open streams, without credentials', async () => {
  await withServer({}, async (base, server) => {
    const preflight = await fetch(`${base}/pulse`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    expect(preflight.headers.get('access-control-allow-headers')).toContain('authorization');
    expect(preflight.headers.get('access-control-allow-credentials')).toBeNull();

    const beat = await fetch(`${base}/pulse`, { method: 'POST', headers: { origin: 'https://app.example.com', authorization: `Bearer ${server.token('5')}` } });
    expect(beat.status).toBe(204);
    expect(beat.headers.get('access-control-allow-origin')).toBe('*');
    expect(beat.headers.get('access-control-expose-headers')).toContain('retry-after');
  });
});

it('with CORS_ALLOWED_ORIGINS, answers the listed origins only', async () => {
  await withServer({ CORS_ALLOWED_ORIGINS: 'https://app.example.com, https://admin.example.com' }, async (base) => {
    const allowed = await fetch(`${base}/status/1`, { headers: { origin: 'https://admin.example.com' } });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://admin.example.com');
    expect(allowed.headers.get('vary')).toBe('origin');
    const other = await fetch(`${base}/status/1`, { headers: { origin: 'https://evil.example.net' } });
    expect(other.status).toBe(200); // same-origin rules are the browser's to enforce
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });
});
