/**
 * The pgbench driver of the database bench: the bare upserts sent by a C client
 * that costs less CPU per statement than Node, so on a small machine it leaves
 * more to the server and shows whether Node's own CPU limited the Node driver.
 * Pulse's own statement is built by recordHeartbeats in Node, so it has no
 * pgbench run. The embedded PostgreSQL ships no pgbench: the bench uses one
 * found on PATH, if any.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BATCH_SIZE, rowsPerStatement, type WalFreeRun } from './results';
import { BATCHED_UPSERT, SINGLE_UPSERT } from './statements';

/** The statements pgbench can send: the bare upserts. */
export type PgbenchStatement = 'single' | 'floor';

/**
 * A closed-loop run of `clients` pgbench clients for `seconds`. Both drivers use
 * the extended protocol without prepared statements, which is what pg does for Pulse.
 */
export async function pgbenchWriteRun(
  binary: string,
  url: string,
  statement: PgbenchStatement,
  rows: number,
  clients: number,
  seconds: number,
): Promise<WalFreeRun> {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-pgbench-'));
  // pgbench's variables are numbers or text, so the batch's id array is built by
  // a small query whose result \gset stores in :ids; the upsert then receives it as
  // its one parameter, exactly as the Node driver sends it.
  const script =
    statement === 'single'
      ? ['\\set id random(1, :rows)', `${SINGLE_UPSERT.replace('$1', ':id')};`]
      : [
          '\\set offset random(1, :stride)',
          `select array_agg(g) as ids from generate_series(:offset::bigint, :offset::bigint + ${BATCH_SIZE - 1}::bigint * :stride, :stride) as g \\gset`,
          `${BATCHED_UPSERT.replace('$1', ':ids')};`,
        ];
  const file = path.join(folder, `${statement}.sql`);
  fs.writeFileSync(file, `${script.join('\n')}\n`);
  try {
    const args = ['-n', '-M', 'extended', '-r', '-c', String(clients), '-j', String(Math.min(clients, os.cpus().length)), '-T', String(seconds)];
    args.push('-D', `rows=${rows}`, '-D', `stride=${Math.floor(rows / BATCH_SIZE)}`, '-f', file, url);
    const output = await runProcess(binary, args);
    const tps = matchNumber(output, /^tps = ([\d.]+)/m);
    const processed = matchNumber(output, /number of transactions actually processed: (\d+)/);
    // -r prints each statement's mean latency; the upsert's line is the one to report.
    const upsertLine = output.split('\n').find((line) => /^\s+[\d.]+\s+\d+\s+insert into pulse/.test(line));
    if (!upsertLine) throw new Error(`pgbench printed no latency for the upsert:\n${output}`);
    return {
      statement,
      driver: 'pgbench',
      clients,
      seconds,
      statements: processed,
      statementsPerSecond: tps,
      rowsPerSecond: tps * rowsPerStatement(statement),
      latencyAvgMs: Number(upsertLine.trim().split(/\s+/)[0]),
    };
  } finally {
    fs.rmSync(folder, { recursive: true, force: true });
  }
}

/** The first executable `binary` on PATH, or null. */
export function findOnPath(binary: string): string | null {
  for (const folder of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(folder, binary);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      /* not here */
    }
  }
  return null;
}

// Private: runs `binary` to its end; resolves with its output, rejects with it on a non-zero exit.
function runProcess(binary: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = '';
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(output) : reject(new Error(`${path.basename(binary)} exited with ${code}:\n${output}`))));
  });
}

function matchNumber(output: string, pattern: RegExp): number {
  const match = pattern.exec(output);
  if (!match) throw new Error(`Expected ${pattern} in pgbench's output:\n${output}`);
  return Number(match[1]);
}
