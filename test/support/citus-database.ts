/**
 * A distributed database of its own for each Citus test file, on the cluster
 * named by TEST_CITUS_URL (the coordinator; any database on it, e.g.
 * postgres://postgres@127.0.0.1:5433/postgres) and TEST_CITUS_WORKERS (the
 * workers' host:port, comma-separated, reached as the coordinator's user).
 *
 * Citus does not propagate CREATE DATABASE, so the database is made on every
 * node, with the citus extension in each, and the workers are added to the
 * coordinator's metadata in that database. Dropped on every node at the end.
 */
import crypto from 'node:crypto';
import pg from 'pg';

export interface CitusNodes {
  coordinator: URL;
  workers: Array<{ host: string; port: number }>;
}

/**
 * The cluster to test on, or why there is none (the Citus tests are then
 * skipped with that reason). Decided once per run by the jest global setup,
 * which tries to connect: {@link probeCitus}.
 */
export function citusNodes(): CitusNodes | { skipped: string } {
  const reason = process.env.PULSE_TEST_CITUS_SKIPPED;
  if (reason) return { skipped: reason };
  const coordinator = process.env.TEST_CITUS_URL;
  if (!coordinator) return { skipped: 'TEST_CITUS_URL is not set' };
  return { coordinator: new URL(coordinator), workers: parseWorkers(process.env.TEST_CITUS_WORKERS ?? '') };
}

function parseWorkers(list: string): Array<{ host: string; port: number }> {
  return list
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => {
      const match = /^(.+):(\d+)$/.exec(entry);
      if (!match) throw new Error(`TEST_CITUS_WORKERS: expected host:port, got ${JSON.stringify(entry)}`);
      return { host: match[1]!, port: Number(match[2]) };
    });
}

/**
 * Null when TEST_CITUS_URL's coordinator and every worker answer with Citus
 * loaded; otherwise the reason, for the skip message.
 */
export async function probeCitus(env: NodeJS.ProcessEnv): Promise<string | null> {
  if (!env.TEST_CITUS_URL) return 'TEST_CITUS_URL is not set';
  let workers;
  try {
    workers = parseWorkers(env.TEST_CITUS_WORKERS ?? '');
  } catch (error) {
    return (error as Error).message;
  }
  if (workers.length === 0) return 'TEST_CITUS_WORKERS is not set (the workers, as host:port,host:port)';
  const coordinator = new URL(env.TEST_CITUS_URL);
  for (const url of [coordinator, ...workers.map((w) => nodeUrl(coordinator, w, coordinator.pathname.slice(1)))]) {
    const client = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 3_000 });
    try {
      await client.connect();
      const { rows } = await client.query("select 1 from pg_available_extensions where name = 'citus'");
      if (rows.length === 0) return `no Citus at ${url.host}: the citus extension is not installed there`;
    } catch (error) {
      return `no Citus at ${url.host}: ${(error as Error).message}`;
    } finally {
      await client.end().catch(() => {});
    }
  }
  return null;
}

function nodeUrl(coordinator: URL, node: { host: string; port: number }, database: string): URL {
  const url = new URL(coordinator.toString());
  url.hostname = node.host;
  url.port = String(node.port);
  url.pathname = `/${database}`;
  return url;
}

async function onNode<T>(url: URL, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export interface CitusDatabase {
  name: string;
  /** The database on the coordinator: what Pulse's DATABASE_URL names. */
  url: string;
  /** The same database on each worker, where the shards live. */
  workerUrls: string[];
  drop(): Promise<void>;
}

/** An empty database on every node, made a Citus cluster with the workers added. */
export async function createCitusDatabase(nodes: CitusNodes): Promise<CitusDatabase> {
  const name = `pulse_citus_${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
  const admin = [nodes.coordinator, ...nodes.workers.map((w) => nodeUrl(nodes.coordinator, w, nodes.coordinator.pathname.slice(1)))];
  const inDatabase = admin.map((url) => nodeUrl(url, { host: url.hostname, port: Number(url.port || 5432) }, name));
  const drop = async () => {
    for (const url of admin) {
      await onNode(url, (c) => c.query(`drop database if exists ${c.escapeIdentifier(name)} with (force)`));
    }
  };
  try {
    for (const [i, url] of admin.entries()) {
      await onNode(url, (c) => c.query(`create database ${c.escapeIdentifier(name)}`));
      await onNode(inDatabase[i]!, (c) => c.query('set client_min_messages = warning; create extension citus'));
    }
    await onNode(inDatabase[0]!, async (c) => {
      await c.query('select citus_set_coordinator_host($1, $2)', [nodes.coordinator.hostname, Number(nodes.coordinator.port || 5432)]);
      for (const worker of nodes.workers) await c.query('select citus_add_node($1, $2)', [worker.host, worker.port]);
    });
  } catch (error) {
    await drop().catch(() => {});
    throw error;
  }
  return { name, url: inDatabase[0]!.toString(), workerUrls: inDatabase.slice(1).map(String), drop };
}
