/**
 * Kysely's Migrator over the files in `migrations/`.
 *
 * The files are loaded with `require`, so the same code runs under tsx (`npm start`,
 * `npm run migrate`) and under jest. On PostgreSQL the Migrator holds an advisory
 * lock while it works, so two instances starting at once apply each migration once.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  DummyDriver,
  Kysely,
  Migrator,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type Migration,
  type MigrationProvider,
  type MigrationResultSet,
} from 'kysely';
import type { Logger } from '../logger';

export const MIGRATIONS_FOLDER = path.resolve(__dirname, '..', '..', 'migrations');

/** Every `*.ts` / `*.js` file in the folder is a migration, named by its file name. */
export class FolderMigrationProvider implements MigrationProvider {
  constructor(readonly folder: string = MIGRATIONS_FOLDER) {}

  async getMigrations(): Promise<Record<string, Migration>> {
    const migrations: Record<string, Migration> = {};
    for (const file of fs.readdirSync(this.folder).sort()) {
      if (!/\.(ts|js)$/.test(file) || file.endsWith('.d.ts')) continue;
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const module = require(path.join(this.folder, file)) as Partial<Migration>;
      if (typeof module.up !== 'function') {
        throw new Error(`Migration ${file} does not export an up(db) function`);
      }
      migrations[file.replace(/\.(ts|js)$/, '')] = module as Migration;
    }
    return migrations;
  }
}

export function createMigrator(db: Kysely<any>, folder?: string): Migrator {
  return new Migrator({ db, provider: new FolderMigrationProvider(folder) });
}

/** Thrown when a migration fails; `results` says which ran, which failed. */
export class MigrationError extends Error {
  constructor(
    override readonly cause: unknown,
    readonly results: MigrationResultSet['results'],
  ) {
    super(`Migration failed: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'MigrationError';
  }
}

/** Applies every pending migration; throws {@link MigrationError} if one fails. */
export async function migrateToLatest(db: Kysely<any>, logger: Logger): Promise<void> {
  const { error, results } = await createMigrator(db).migrateToLatest();
  for (const result of results ?? []) {
    const log = result.status === 'Error' ? logger.error : logger.info;
    log(`migration ${result.migrationName}: ${result.status === 'Success' ? 'applied' : result.status.toLowerCase()}`);
  }
  if (error) throw new MigrationError(error, results);
  if (!results?.length) logger.info('migrations: schema is up to date');
}

/**
 * The SQL a migration's `up` would send, for review before it is applied: the
 * migration runs against a Kysely whose driver records statements and executes
 * nothing. Parameters, if any, are listed after their statement.
 */
export async function migrationSql(migration: Migration): Promise<string[]> {
  const statements: string[] = [];
  const recorder = new Kysely<any>({
    dialect: {
      createAdapter: () => new PostgresAdapter(),
      createDriver: () => new DummyDriver(),
      createIntrospector: (db) => new PostgresIntrospector(db),
      createQueryCompiler: () => new PostgresQueryCompiler(),
    },
    log: (event) => {
      const { sql, parameters } = event.query;
      statements.push(parameters.length ? `${sql.trim()}\n-- parameters: ${JSON.stringify(parameters)}` : sql.trim());
    },
  });
  await migration.up(recorder);
  await recorder.destroy();
  return statements;
}
