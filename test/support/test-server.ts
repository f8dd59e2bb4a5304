/**
 * A whole Pulse, listening on a free port over this test file's database, and a
 * small client for it. Tests talk to it over real HTTP, as a user would.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startPulse, type Pulse } from '../../src/app';
import { loadConfig, type Config } from '../../src/config';
import { silentLogger, type Logger } from '../../src/logger';
import { parseUserId } from '../../src/presence/user-id';

export const TEST_JWT_SECRET = 'test-secret-that-is-at-least-32-characters-long';

/**
 * A configuration for a test Pulse. `env` should name a PULSE_DATA_DIR the caller
 * removes ({@link startTestServer} makes and removes one of its own).
 */
export function testConfig(env: Record<string, string | undefined>): Config {
  return loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    JWT_SECRET: TEST_JWT_SECRET,
    NODE_ENV: 'test',
    SHUTDOWN_DRAIN_MS: '0',
    // Every test client is 127.0.0.1: per-client rates are tested where they are
    // the subject (test/client-limits.test.ts), not in every file that signs up.
    SIGNUP_RATE: 'off',
    SEARCH_RATE: 'off',
    ...env,
  });
}

export interface TestServer {
  pulse: Pulse;
  /** SQL of every statement the server sent. */
  statements: string[];
  graphql(query: string, options?: { variables?: unknown; token?: string; headers?: Record<string, string> }): Promise<GraphQLReply>;
  token(userId: string, expiresInSeconds?: number): string;
  /** Signs `name` up through `createUser`; fails the test if that is refused. */
  signUp(name: string): Promise<{ id: string; name: string; token: string }>;
  stop(): Promise<void>;
}

export interface GraphQLReply {
  status: number;
  body: {
    data?: Record<string, any> | null;
    errors?: Array<{ message: string; extensions?: { code?: string } }>;
  };
}

export async function startTestServer(env: Record<string, string | undefined>, logger: Logger = silentLogger): Promise<TestServer> {
  const statements: string[] = [];
  // Its own data folder, removed when it stops (or fails to start).
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-data-'));
  const removeDataDir = () => fs.rmSync(dataDir, { recursive: true, force: true });
  let pulse: Pulse;
  try {
    pulse = await startPulse(testConfig({ PULSE_DATA_DIR: dataDir, ...env }), logger, { onStatement: (sql) => statements.push(sql) });
  } catch (error) {
    removeDataDir();
    throw error;
  }
  const server: TestServer = {
    pulse,
    statements,
    async graphql(query, options = {}) {
      const response = await fetch(pulse.graphqlUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
          ...options.headers,
        },
        body: JSON.stringify({ query, variables: options.variables }),
      });
      return { status: response.status, body: (await response.json()) as GraphQLReply['body'] };
    },
    token: (userId, expiresInSeconds = 3600) => pulse.tokens.sign(parseUserId(userId), expiresInSeconds),
    async signUp(name) {
      const reply = await server.graphql('mutation ($name: String!) { createUser(name: $name) { user { id name } token } }', { variables: { name } });
      if (reply.body.errors) throw new Error(`sign-up of ${JSON.stringify(name)} refused: ${reply.body.errors[0]!.message}`);
      const { user, token } = reply.body.data!.createUser;
      return { id: user.id, name: user.name, token };
    },
    stop: () => pulse.stop().finally(removeDataDir),
  };
  return server;
}
