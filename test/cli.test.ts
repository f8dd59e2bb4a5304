/**
 * The command-line tools a DBA and a developer use: `npm run migrate` and
 * `npm run token`, run as real processes.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { createTokenIssuer } from '../src/auth/tokens';
import { createEmptyDatabase } from './support/test-database';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..');
const NODE_ARGS = ['--import', 'tsx'];

async function cli(script: string, args: string[], env: Record<string, string>) {
  try {
    const { stdout, stderr } = await run(process.execPath, [...NODE_ARGS, script, ...args], { cwd: ROOT, env: { ...process.env, ...env, DATABASE_URL: env.DATABASE_URL ?? '' } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function tables(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ tablename: string }>("select tablename from pg_tables where schemaname = 'public' order by 1");
    return rows.map((r) => r.tablename);
  } finally {
    await client.end();
  }
}

describe('npm run migrate', () => {
  it('applies, reports, reverts and re-applies migrations', async () => {
    const database = await createEmptyDatabase();
    const env = { DATABASE_URL: database.url };
    try {
      const pending = await cli('src/db/migrate-cli.ts', ['status'], env);
      expect(pending.code).toBe(0);
      expect(pending.stdout).toMatch(/pending\s+2026-11-22-0001-create-pulse/);

      const latest = await cli('src/db/migrate-cli.ts', ['latest'], env);
      expect(latest.code).toBe(0);
      expect(latest.stdout).toMatch(/applied\s+2026-11-22-0001-create-pulse/);
      expect(await tables(database.url)).toContain('pulse');

      const status = await cli('src/db/migrate-cli.ts', ['status'], env);
      expect(status.stdout).toMatch(/applied \d{4}-.*2026-11-22-0001-create-pulse/);

      // Every migration reverts, newest first, down to an empty schema.
      for (const name of [
        '2026-11-22-0004-create-presence-settings',
        '2026-11-22-0003-create-follows',
        '2026-11-22-0002-create-users',
        '2026-11-22-0001-create-pulse',
      ]) {
        const down = await cli('src/db/migrate-cli.ts', ['down'], env);
        expect(down.code).toBe(0);
        expect(down.stdout).toMatch(new RegExp(`reverted\\s+${name}`));
      }
      expect(await tables(database.url)).toEqual(expect.not.arrayContaining(['pulse', 'users', 'follows', 'presence_settings']));

      const up = await cli('src/db/migrate-cli.ts', ['up'], env);
      expect(up.code).toBe(0);
      expect(await tables(database.url)).toContain('pulse');
    } finally {
      await database.drop();
    }
  });

  it('prints the SQL of pending migrations without applying them', async () => {
    const database = await createEmptyDatabase();
    try {
      const pending = await cli('src/db/migrate-cli.ts', ['sql'], { DATABASE_URL: database.url });
      expect(pending.code).toBe(0);
      expect(pending.stdout).toContain('-- 2026-11-22-0001-create-pulse');
      expect(pending.stdout).toMatch(/create table pulse \(\s+user_id bigint primary key,\s+last_hb timestamptz not null/);
      expect(pending.stdout).toContain('fillfactor = 70');
      expect(await tables(database.url)).not.toContain('pulse');

      await cli('src/db/migrate-cli.ts', ['latest'], { DATABASE_URL: database.url });
      const none = await cli('src/db/migrate-cli.ts', ['sql'], { DATABASE_URL: database.url });
      expect(none.stdout).toContain('-- no pending migrations');
    } finally {
      await database.drop();
    }
  });

  it('exits non-zero with the error when a migration fails', async () => {
    const database = await createEmptyDatabase();
    try {
      // A table already named pulse makes the first migration fail.
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      await client.query('create table pulse (x int)');
      await client.end();

      const result = await cli('src/db/migrate-cli.ts', ['latest'], { DATABASE_URL: database.url });
      expect(result.code).toBe(1);
      expect(result.stdout).toMatch(/FAILED\s+2026-11-22-0001-create-pulse/);
      expect(result.stderr).toMatch(/migration failed: relation "pulse" already exists/);
    } finally {
      await database.drop();
    }
  });

  it('exits 2 with the usage for an unknown command', async () => {
    const result = await cli('src/db/migrate-cli.ts', ['sideways'], {});
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/usage: npm run migrate -- latest \| up \| down \| status \| sql/);
  });
});

describe('npm run token', () => {
  it('prints a token that the server accepts, signed with the kept development secret', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-token-'));
    try {
      const result = await cli('src/auth/token-cli.ts', ['42'], { PULSE_DATA_DIR: dataDir, JWT_SECRET: '' });
      expect(result.code).toBe(0);
      const secret = fs.readFileSync(path.join(dataDir, 'jwt-secret'), 'utf8').trim();
      await expect(createTokenIssuer(secret).verify(result.stdout.trim())).resolves.toBe('42');

      // The secret is generated once: a second token verifies with the same one.
      const again = await cli('src/auth/token-cli.ts', ['43'], { PULSE_DATA_DIR: dataDir, JWT_SECRET: '' });
      await expect(createTokenIssuer(secret).verify(again.stdout.trim())).resolves.toBe('43');
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses a bad user id, naming it', async () => {
    const result = await cli('src/auth/token-cli.ts', ['abc'], { JWT_SECRET: 'c'.repeat(32) });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/Invalid user id "abc"/);
  });
});
