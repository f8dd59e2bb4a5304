import { NO_MIGRATIONS, sql } from 'kysely';
import { createDatabase } from '../src/db/database';
import { createMigrator, migrateToLatest } from '../src/db/migrator';
import { silentLogger } from '../src/logger';
import { createEmptyDatabase } from './support/test-database';

it('is safe when several instances start at once: each migration is applied once', async () => {
  const database = await createEmptyDatabase();
  const instances = [1, 2, 3].map(() =>
    createDatabase({ url: database.url, poolMax: 2, connectionTimeoutMs: 5000, statementTimeoutMs: 10_000, logger: silentLogger }),
  );
  try {
    await Promise.all(instances.map((db) => migrateToLatest(db, silentLogger)));
    const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(instances[0]!);
    expect(rows.map((r) => r.name)).toEqual([
      '2026-11-22-0001-create-pulse',
      '2026-11-22-0002-create-users',
      '2026-11-22-0003-create-follows',
      '2026-11-22-0004-create-presence-settings',
      '2026-12-02-0005-add-pulse-idle',
    ]);
  } finally {
    await Promise.all(instances.map((db) => db.destroy()));
    await database.drop();
  }
});

it('creates the pulse table tuned for churn, with no index on last_hb', async () => {
  const database = await createEmptyDatabase();
  const db = createDatabase({ url: database.url, poolMax: 1, connectionTimeoutMs: 5000, statementTimeoutMs: 10_000, logger: silentLogger });
  try {
    await migrateToLatest(db, silentLogger);
    const { rows } = await sql<{ reloptions: string[] }>`select reloptions from pg_class where relname = 'pulse'`.execute(db);
    expect(rows[0]!.reloptions).toEqual(
      expect.arrayContaining(['fillfactor=70', 'autovacuum_vacuum_scale_factor=0.02', 'autovacuum_vacuum_threshold=1000']),
    );
    const indexes = await sql<{ indexdef: string }>`select indexdef from pg_indexes where tablename = 'pulse'`.execute(db);
    expect(indexes.rows).toHaveLength(1);
    expect(indexes.rows[0]!.indexdef).toMatch(/UNIQUE INDEX pulse_pkey ON public.pulse USING btree \(user_id\)/);
    // Nothing else is checked on a heartbeat: no foreign key from pulse to users.
    const constraints = await sql<{ contype: string }>`
      select contype from pg_constraint where conrelid = 'pulse'::regclass
    `.execute(db);
    expect(constraints.rows).toEqual([{ contype: 'p' }]);
  } finally {
    await db.destroy();
    await database.drop();
  }
});

it('reverts every migration, newest first, down to an empty schema, and applies them again', async () => {
  const database = await createEmptyDatabase();
  const db = createDatabase({ url: database.url, poolMax: 1, connectionTimeoutMs: 5000, statementTimeoutMs: 10_000, logger: silentLogger });
  const tables = async () =>
    (await sql<{ tablename: string }>`select tablename from pg_tables where schemaname = 'public' and tablename not like 'kysely%'`.execute(db)).rows.map(
      (r) => r.tablename,
    );
  try {
    await migrateToLatest(db, silentLogger);
    const down = await createMigrator(db).migrateTo(NO_MIGRATIONS);
    expect(down.error).toBeUndefined();
    expect(down.results!.map((r) => `${r.direction} ${r.migrationName} ${r.status}`)).toEqual([
      'Down 2026-12-02-0005-add-pulse-idle Success',
      'Down 2026-11-22-0004-create-presence-settings Success',
      'Down 2026-11-22-0003-create-follows Success',
      'Down 2026-11-22-0002-create-users Success',
      'Down 2026-11-22-0001-create-pulse Success',
    ]);
    expect(await tables()).toEqual([]);
    await migrateToLatest(db, silentLogger);
    expect((await tables()).sort()).toEqual(['follows', 'presence_settings', 'pulse', 'users']);
  } finally {
    await db.destroy();
    await database.drop();
  }
});
