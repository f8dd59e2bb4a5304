/**
 * The command-line tools a DBA and a developer use: `npm run migrate` and
 * `npm run token`, run as real processes. Each is started from sources compiled
 * once (test/support/compiled-sources.ts), and `npm run migrate`'s own command
 * line (`node --import tsx ...`) is run once as written in package.json.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { createTokenIssuer } from '../src/auth/tokens';
import { compileSources, ROOT, type CompiledSources } from './support/compiled-sources';
import { createEmptyDatabase } from './support/test-database';

const run = promisify(execFile);

/**
 * How long one run of a tool may take: on a machine this busy a start has taken
 * 10 s; one that takes longer is stuck, and is killed and reported as such.
 */
const RUN_LIMIT_MS = 30_000;
/** A test's limit: its runs of a tool, each within {@link RUN_LIMIT_MS}, and a little for the rest. */
const runsWithin = (runs: number) => runs * RUN_LIMIT_MS + 10_000;

let compiled: CompiledSources;
beforeAll(() => {
  compiled = compileSources();
});
afterAll(() => compiled.remove());

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

// Private: runs `node <args>` in the checkout, failing the test if it is killed.
async function node(args: string[], env: Record<string, string>): Promise<RunResult> {
  const options = { cwd: ROOT, env: { ...process.env, ...env, DATABASE_URL: env.DATABASE_URL ?? '' }, timeout: RUN_LIMIT_MS };
  try {
    const { stdout, stderr } = await run(process.execPath, args, options);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number | null; signal: string | null; stdout: string; stderr: string };
    if (e.signal) throw new Error(`node ${args.join(' ')} was killed (${e.signal}) after ${RUN_LIMIT_MS} ms: ${e.stderr}`);
    return { code: e.code ?? -1, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Runs a tool (`src/db/migrate-cli.ts`, ...) from the compiled sources. */
const cli = (script: string, args: string[], env: Record<string, string>) => node([compiled.entry(script), ...args], env);

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
  it(
    'shows, prints, applies, reverts and re-applies migrations',
    async () => {
      const database = await createEmptyDatabase();
      const migrate = (command: string) => cli('src/db/migrate-cli.ts', [command], { DATABASE_URL: database.url });
      try {
        const pending = await migrate('status');
        expect(pending.code).toBe(0);
        expect(pending.stdout).toMatch(/pending\s+2026-11-22-0001-create-pulse/);

        // `sql` prints what `latest` would run, and runs none of it.
        const sqlOfPending = await migrate('sql');
        expect(sqlOfPending.code).toBe(0);
        expect(sqlOfPending.stdout).toContain('-- 2026-11-22-0001-create-pulse');
        expect(sqlOfPending.stdout).toMatch(/create table pulse \(\s+user_id bigint primary key,\s+last_hb timestamptz not null/);
        expect(sqlOfPending.stdout).toContain('fillfactor = 70');
        expect(await tables(database.url)).toEqual([]);

        const latest = await migrate('latest');
        expect(latest.code).toBe(0);
        expect(latest.stdout).toMatch(/applied\s+2026-11-22-0001-create-pulse/);
        expect(latest.stdout).toMatch(/applied\s+2026-12-02-0005-add-pulse-idle/);
        expect(await tables(database.url)).toEqual(expect.arrayContaining(['pulse', 'users', 'follows', 'presence_settings']));

        const applied = await migrate('status');
        expect(applied.stdout).toMatch(/applied \d{4}-.*2026-11-22-0001-create-pulse/);
        expect(applied.stdout).not.toMatch(/pending/);
        expect((await migrate('sql')).stdout).toContain('-- no pending migrations');

        // One step down and up again (every migration's down is run in
        // test/migrator.test.ts).
        const down = await migrate('down');
        expect(down.code).toBe(0);
        expect(down.stdout).toMatch(/reverted\s+2026-12-02-0005-add-pulse-idle/);
        const up = await migrate('up');
        expect(up.code).toBe(0);
        expect(up.stdout).toMatch(/applied\s+2026-12-02-0005-add-pulse-idle/);
      } finally {
        await database.drop();
      }
    },
    runsWithin(7),
  );

  it(
    'exits non-zero with the error when a migration fails',
    async () => {
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
    },
    runsWithin(1),
  );

  it(
    'runs as package.json writes it, and exits 2 with the usage for an unknown command',
    async () => {
      const script = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.migrate!;
      const [program, ...args] = script.split(' ');
      expect(program).toBe('node');
      const result = await node([...args, 'sideways'], {});
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/usage: npm run migrate -- latest \| up \| down \| status \| sql/);
    },
    runsWithin(1),
  );
});

describe('npm run token', () => {
  it(
    'prints a token that the server accepts, signed with the kept development secret',
    async () => {
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
    },
    runsWithin(2),
  );

  it(
    'refuses a bad user id, naming it',
    async () => {
      const result = await cli('src/auth/token-cli.ts', ['abc'], { JWT_SECRET: 'c'.repeat(32) });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/Invalid user id "abc"/);
    },
    runsWithin(1),
  );
});
