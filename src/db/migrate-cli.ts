/**
 * `npm run migrate -- latest | up | down | status | sql | distribute`: the DBA's
 * view of the schema. `sql` prints what `latest` would run, without running it;
 * `distribute` spreads the migrated tables over a Citus cluster (distribute.ts).
 *
 * Uses DATABASE_URL, or the embedded PostgreSQL in the data folder like `npm
 * start` does. Exits non-zero, with the error, when a migration fails.
 */
import { ConfigError, loadConfig } from '../config';
import { createLogger } from '../logger';
import { connectDatabase } from './connect';
import { DistributeError, distributeTables } from './distribute';
import { createMigrator, migrationSql } from './migrator';
import type { MigrationResultSet } from 'kysely';

const COMMANDS = ['latest', 'up', 'down', 'status', 'sql', 'distribute'] as const;
type Command = (typeof COMMANDS)[number];

async function main(argv: string[]): Promise<number> {
  const command = argv[0] as Command | undefined;
  if (!command || !COMMANDS.includes(command)) {
    process.stderr.write(`usage: npm run migrate -- ${COMMANDS.join(' | ')}\n`);
    return 2;
  }

  let config;
  try {
    config = loadConfig(process.env, { forServer: false });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      return 1;
    }
    throw error;
  }
  const logger = createLogger(config.logLevel === 'debug' ? 'debug' : 'warn');
  const connection = await connectDatabase(config, logger);
  process.stdout.write(`database: ${connection.description}\n`);
  try {
    const migrator = createMigrator(connection.db);
    if (command === 'status') {
      const migrations = await migrator.getMigrations();
      for (const m of migrations) {
        process.stdout.write(`${m.executedAt ? `applied ${m.executedAt.toISOString()}` : 'pending                         '}  ${m.name}\n`);
      }
      if (migrations.length === 0) process.stdout.write('no migrations\n');
      return 0;
    }
    if (command === 'sql') {
      const pending = (await migrator.getMigrations()).filter((m) => !m.executedAt);
      if (pending.length === 0) process.stdout.write('-- no pending migrations\n');
      for (const migration of pending) {
        process.stdout.write(`-- ${migration.name}\n${(await migrationSql(migration.migration)).join(';\n\n')};\n\n`);
      }
      return 0;
    }
    if (command === 'distribute') {
      const pending = (await migrator.getMigrations()).filter((m) => !m.executedAt).map((m) => m.name);
      try {
        const report = await distributeTables(connection.db, pending);
        process.stdout.write(`Citus ${report.citusVersion}, ${report.workers} worker node(s)\n`);
        for (const step of report.steps) process.stdout.write(`${step}\n`);
        return 0;
      } catch (error) {
        if (!(error instanceof DistributeError)) throw error;
        process.stderr.write(`distribute: ${error.message}\n`);
        return 1;
      }
    }
    const result =
      command === 'latest' ? await migrator.migrateToLatest() : command === 'up' ? await migrator.migrateUp() : await migrator.migrateDown();
    return report(result);
  } finally {
    await connection.close();
  }
}

function report({ error, results }: MigrationResultSet): number {
  for (const r of results ?? []) {
    const verb = r.status === 'Success' ? (r.direction === 'Up' ? 'applied' : 'reverted') : r.status === 'Error' ? 'FAILED' : 'not run';
    process.stdout.write(`${verb.padEnd(8)}  ${r.migrationName}\n`);
  }
  if (error) {
    process.stderr.write(`migration failed: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  if (!results?.length) process.stdout.write('nothing to do\n');
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`migrate: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
