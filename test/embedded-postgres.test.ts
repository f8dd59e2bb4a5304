/**
 * The embedded PostgreSQL behind `npm start`: data survives a restart, and every
 * way the start can fail ends in one sentence that names the fix.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startPulse } from '../src/app';
import { EmbeddedPostgresError, explainPostgresOutput, firstBlockedFolder, startEmbeddedPostgres } from '../src/db/embedded-postgres';
import { silentLogger } from '../src/logger';
import { freePort } from './support/free-port';
import { testConfig } from './support/test-server';

const isRoot = process.getuid?.() === 0;
const folders: string[] = [];

function traversableTempFolder(): string {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-embedded-'));
  fs.chmodSync(folder, 0o755);
  folders.push(folder);
  return folder;
}

afterAll(() => {
  for (const folder of folders) fs.rmSync(folder, { recursive: true, force: true });
});

it('keeps heartbeats across a restart of Pulse and its embedded database', async () => {
  const dataDir = traversableTempFolder();
  const port = await freePort();
  const env = { DATABASE_URL: undefined, PULSE_DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(port) };

  const first = await startPulse(testConfig(env), silentLogger);
  const token = first.tokens.sign('77' as never, 60);
  const heartbeat = await post(first.graphqlUrl, 'mutation { heartbeat { lastSeen } }', token);
  await first.stop();
  expect(fs.existsSync(path.join(dataDir, 'postgres', 'postmaster.pid'))).toBe(false);

  const second = await startPulse(testConfig(env), silentLogger);
  try {
    const status = await post(second.graphqlUrl, '{ status(id: "77") { lastSeen } }');
    expect(status.data.status.lastSeen).toBe(heartbeat.data.heartbeat.lastSeen);
  } finally {
    await second.stop();
  }
});

it('says which port is taken and how to fix it', async () => {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const { port } = blocker.address() as net.AddressInfo;
  try {
    const start = startEmbeddedPostgres({ clusterDir: path.join(traversableTempFolder(), 'postgres'), port, logger: silentLogger });
    await expect(start).rejects.toThrow(EmbeddedPostgresError);
    await expect(start).rejects.toThrow(`Port ${port} is already in use`);
    await expect(start).rejects.toThrow('EMBEDDED_PG_PORT');
  } finally {
    blocker.close();
  }
});

it('says when the data folder cannot be used, naming it', async () => {
  const folder = traversableTempFolder();
  const file = path.join(folder, 'not-a-folder');
  fs.writeFileSync(file, 'x');
  const start = startEmbeddedPostgres({ clusterDir: path.join(file, 'postgres'), port: await freePort(), logger: silentLogger });
  await expect(start).rejects.toThrow(`Pulse cannot use its data folder ${file}`);
  await expect(start).rejects.toThrow('PULSE_DATA_DIR');
});

(isRoot ? it : it.skip)('as root, names the folder the postgres user cannot enter and the fix', async () => {
  const locked = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-locked-')); // 0700, like mktemp -d
  folders.push(locked);
  const start = startEmbeddedPostgres({ clusterDir: path.join(locked, 'data', 'postgres'), port: await freePort(), logger: silentLogger });
  await expect(start).rejects.toThrow(`that user cannot enter ${locked}`);
  await expect(start).rejects.toThrow(`chmod o+x ${locked}`);
});

describe('firstBlockedFolder', () => {
  it('finds the first folder on the path that others cannot enter', () => {
    const outer = traversableTempFolder();
    const inner = path.join(outer, 'inner');
    fs.mkdirSync(path.join(inner, 'deeper'), { recursive: true });
    fs.chmodSync(inner, 0o700);
    const stranger = { uid: 65_000, gid: 65_000 };
    expect(firstBlockedFolder(path.join(inner, 'deeper'), stranger)).toBe(inner);
    expect(firstBlockedFolder(outer, stranger)).toBeNull();
  });
});

describe('explainPostgresOutput', () => {
  it.each([
    ['LOG:  could not bind IPv4 address "127.0.0.1": Address already in use', /Port 5 is already in use/],
    ['FATAL:  lock file "postmaster.pid" already exists', /Another PostgreSQL is already using \/d/],
    ['FATAL:  data directory "/d" has wrong ownership', /wrong owner or mode/],
    ['FATAL:  could not open file "global/pg_control": Permission denied', /cannot read its files in \/d/],
    ['FATAL:  something else entirely', /stopped during startup: FATAL:  something else entirely/],
  ])('explains %j', (output, expected) => {
    expect(explainPostgresOutput(output, '/d', 5)).toMatch(expected);
  });
});

async function post(url: string, query: string, token?: string): Promise<any> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query }),
  });
  return response.json();
}
