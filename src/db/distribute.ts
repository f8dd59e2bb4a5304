/**
 * `npm run migrate -- distribute`: spreads Pulse's tables over a Citus cluster.
 *
 * Every table is sharded by the user it belongs to, and all four are co-located
 * (shard n of each holds the same users), so whatever a statement reads about one
 * user is on one node:
 *  - pulse by user_id: a heartbeat writes one shard per user;
 *  - presence_settings by user_id, co-located with pulse: the status read joins
 *    them shard by shard;
 *  - users by id, co-located: `me`, `user(id)` and a follow's checks go to one
 *    shard; a name search has no user id to go by and asks every shard;
 *  - follows by follower_id, co-located: the status read's "does the target
 *    follow the viewer?" is on the target's shard, as are "whom does X follow".
 *
 * Citus enforces a UNIQUE index or a foreign key only when it includes the
 * distribution column, so two guarantees change hands here:
 *  - users_name_key (names unique in any letter case) is rebuilt without UNIQUE,
 *    keeping its expression (search and name order still use it on every shard);
 *    sign-up takes a lock on the name and checks it first (insertUser), which is
 *    what keeps names unique on Citus.
 *  - follows_followee_id_fkey (the followee must exist) is dropped, as the
 *    followee sits on another shard; the follow mutation checks that the user
 *    exists before it inserts, and Pulse never deletes users.
 *    follows_follower_id_fkey stays: follower and follows row share a shard.
 *
 * Idempotent: a table that is already distributed as above is left alone, one
 * distributed any other way is an error that says how to fix it. Everything runs
 * in one transaction, so a failure leaves the database as it was.
 */
import { sql, type Kysely } from 'kysely';

/** A table Pulse distributes, its distribution column, in the order they are distributed. */
export const DISTRIBUTION = [
  { table: 'pulse', column: 'user_id' },
  { table: 'presence_settings', column: 'user_id' },
  { table: 'users', column: 'id' },
  { table: 'follows', column: 'follower_id' },
] as const;

/** The table the others are co-located with. */
const ANCHOR = 'pulse';

/** Thrown when the database cannot be distributed; the message says why and what to do. */
export class DistributeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DistributeError';
  }
}

/** What {@link distributeTables} did, one line per step, for the DBA. */
export interface DistributeReport {
  citusVersion: string;
  /** Worker nodes the shards are placed on (0: the coordinator holds them all). */
  workers: number;
  steps: string[];
}

/**
 * Distributes Pulse's tables on the Citus coordinator `db` points at.
 * `pendingMigrations` are the names of migrations not applied yet: tables are
 * distributed as the latest schema has them, so there must be none. Throws
 * {@link DistributeError} on plain PostgreSQL, on a worker node, when the schema is
 * not migrated, or when a table is distributed in another way.
 */
export async function distributeTables(db: Kysely<any>, pendingMigrations: readonly string[]): Promise<DistributeReport> {
  const { rows: citus } = await sql<{ version: string }>`select extversion as version from pg_extension where extname = 'citus'`.execute(db);
  if (citus.length === 0) {
    throw new DistributeError(
      'This database is plain PostgreSQL (no citus extension), so there is nothing to distribute: Pulse runs on it as it is. ' +
        'On a Citus coordinator, run `create extension citus` in this database (and in the database of the same name on every worker), add the workers with citus_add_node, then run distribute again.',
    );
  }
  const { rows: role } = await sql<{ coordinator: boolean; version: string | null }>`
    select citus_is_coordinator() as coordinator, (regexp_match(citus_version(), '^Citus ([^ ]+)'))[1] as version
  `.execute(db);
  if (!role[0]?.coordinator) {
    throw new DistributeError(
      'This database is on a Citus worker, or on a node that is not yet a coordinator: point DATABASE_URL at the coordinator (after `select citus_set_coordinator_host(...)` there) and run distribute again.',
    );
  }
  if (pendingMigrations.length > 0) {
    throw new DistributeError(
      `${pendingMigrations.length} migration(s) are pending (${pendingMigrations[0]}${pendingMigrations.length > 1 ? ', ...' : ''}): run \`npm run migrate -- latest\` first, then distribute.`,
    );
  }
  const { rows: present } = await sql<{ name: string }>`
    select c.relname as name from pg_class c
     where c.relnamespace = 'public'::regnamespace and c.relkind = 'r'
       and c.relname = any(${DISTRIBUTION.map((d) => d.table)}::text[])
  `.execute(db);
  const missing = DISTRIBUTION.map((d) => d.table).filter((table) => !present.some((row) => row.name === table));
  if (missing.length > 0) {
    throw new DistributeError(`The tables ${missing.join(', ')} do not exist yet: run \`npm run migrate -- latest\` first, then distribute.`);
  }

  const steps: string[] = [];
  await db.transaction().execute(async (trx) => {
    // Two DBAs running distribute at once: the second waits, then finds the work done.
    await sql`select pg_advisory_xact_lock(hashtext('pulse distribute'))`.execute(trx);
    const distributed = await distributedTables(trx);
    const anchorGroup = distributed.get(ANCHOR)?.colocationId;
    for (const { table, column } of DISTRIBUTION) {
      const current = distributed.get(table);
      if (current && current.column === column && (table === ANCHOR || current.colocationId === anchorGroup)) continue;
      if (current) {
        const how = current.column ? `by ${current.column}` : `as a ${current.type} table`;
        throw new DistributeError(
          `Table ${table} is already distributed ${how}${current.column === column ? ` in another co-location group than ${ANCHOR}` : ''}; Pulse needs it distributed by ${column} and co-located with ${ANCHOR}. ` +
            `Run \`select undistribute_table('${table}')\` on the coordinator, then distribute again.`,
        );
      }
    }

    if (await isUnique(trx, 'users_name_key')) {
      // See the file's comment: sign-up's lock keeps names unique on Citus.
      await sql`drop index users_name_key`.execute(trx);
      await sql`create index users_name_key on users ((lower(name) collate "C"))`.execute(trx);
      steps.push('users_name_key: rebuilt without UNIQUE (Citus cannot enforce it across shards; sign-up checks the name under a lock)');
    }
    const { rows: fk } = await sql`select 1 from pg_constraint where conname = 'follows_followee_id_fkey' and conrelid = 'follows'::regclass`.execute(trx);
    if (fk.length > 0) {
      await sql`alter table follows drop constraint follows_followee_id_fkey`.execute(trx);
      steps.push('follows_followee_id_fkey: dropped (the followee is on another shard; follow checks that the user exists)');
    }

    for (const { table, column } of DISTRIBUTION) {
      if (distributed.has(table)) {
        steps.push(`${table}: already distributed by ${column}`);
        continue;
      }
      const colocateWith = table === ANCHOR ? 'default' : ANCHOR;
      await sql`select create_distributed_table(${table}, ${column}, colocate_with => ${colocateWith})`.execute(trx);
      steps.push(`${table}: distributed by ${column}${table === ANCHOR ? '' : `, co-located with ${ANCHOR}`}`);
    }
  });

  const { rows: workers } = await sql<{ count: string }>`select count(*) as count from citus_get_active_worker_nodes()`.execute(db);
  return { citusVersion: role[0]!.version ?? citus[0]!.version, workers: Number(workers[0]!.count), steps };
}

/** Where Pulse's tables live, as a running Pulse needs to know it. */
export interface Distribution {
  /** pulse is a Citus distributed table. */
  citus: boolean;
  /** This connection is to the Citus coordinator (always true on plain PostgreSQL). */
  coordinator: boolean;
  /** Worker nodes holding shards (0 on plain PostgreSQL). */
  workers: number;
}

/** Whether `db` is a Citus cluster with pulse distributed, and which node this is. */
export async function findDistribution(db: Kysely<any>): Promise<Distribution> {
  const { rows: citus } = await sql`select 1 from pg_extension where extname = 'citus'`.execute(db);
  if (citus.length === 0) return { citus: false, coordinator: true, workers: 0 };
  const { rows } = await sql<{ distributed: boolean; coordinator: boolean; workers: string }>`
    select exists (select 1 from pg_dist_partition where logicalrelid = to_regclass('pulse') and partmethod = 'h') as distributed,
           citus_is_coordinator() as coordinator,
           (select count(*) from pg_dist_node where isactive and noderole = 'primary' and groupid <> 0) as workers
  `.execute(db);
  const row = rows[0]!;
  return { citus: row.distributed, coordinator: row.coordinator, workers: Number(row.workers) };
}

// Private: Pulse's tables that Citus already knows, with how they are distributed.
async function distributedTables(
  db: Kysely<any>,
): Promise<Map<string, { column: string | null; type: string; colocationId: number }>> {
  const { rows } = await sql<{ table_name: string; column: string | null; type: string; colocation_id: number }>`
    select logicalrelid::regclass::text as table_name,
           case when partkey is not null then column_to_column_name(logicalrelid, partkey) end as column,
           case partmethod when 'h' then 'distributed' when 'n' then 'reference or local' else partmethod::text end as type,
           colocationid as colocation_id
      from pg_dist_partition
     where logicalrelid::regclass::text = any(${DISTRIBUTION.map((d) => d.table)}::text[])
  `.execute(db);
  return new Map(rows.map((row) => [row.table_name, { column: row.column, type: row.type, colocationId: row.colocation_id }]));
}

// Private: whether the index exists and is unique.
async function isUnique(db: Kysely<any>, index: string): Promise<boolean> {
  const { rows } = await sql<{ unique: boolean }>`
    select i.indisunique as unique from pg_index i join pg_class c on c.oid = i.indexrelid
     where c.relname = ${index} and c.relnamespace = 'public'::regnamespace
  `.execute(db);
  return rows[0]?.unique ?? false;
}
