/**
 * The chaos run's short version: two Pulse processes on a PostgreSQL of the
 * test's own, a light steady load, and one fault of each kind that needs no
 * external service (database restart, connections terminated, database frozen,
 * rows locked past the statement timeout, a process killed). Every invariant
 * must hold except the recovery time, which is reported, never asserted (timing
 * on a shared machine is noise). `npm run chaos` is the long version.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_OPTIONS, runChaos, type ChaosResult } from '../bench/chaos/run';

// About 30 s of faults, but five Pulse starts and the end checks: minutes on a busy machine.
jest.setTimeout(600_000);

describe('a short chaos run', () => {
  let result: ChaosResult;
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-chaos-logs-'));
  const lines: string[] = [];

  beforeAll(async () => {
    result = await runChaos({
      ...DEFAULT_OPTIONS,
      minutes: 0,
      sequence: ['terminate-connections', 'database-restart', 'database-freeze', 'row-lock', 'process-kill'],
      gapSeconds: [3, 4],
      warmupSeconds: 3,
      users: 300,
      heartbeatIntervalMs: 2000,
      readsPerSecond: 10,
      subscriptions: 10,
      idsPerSubscription: 10,
      watchedUsers: 40,
      thresholdSeconds: 6,
      minWriteGapSeconds: 2,
      statementTimeoutMs: 1000,
      // The sources under tsx: npm test does not build.
      server: 'tsx',
      redis: false,
      seed: 1,
      logDir,
      log: (line) => lines.push(line),
    });
  });

  afterAll(() => {
    if (result && !result.held) process.stdout.write(`${lines.join('\n')}\n${result.report}\nPulse's logs: ${logDir}\n`);
    else fs.rmSync(logDir, { recursive: true, force: true });
  });

  const invariant = (start: string) => {
    const found = result.invariants.find((i) => i.name.startsWith(start));
    if (!found) throw new Error(`no invariant "${start}"`);
    return found;
  };

  it('ran each fault once, under load that got answers', () => {
    expect(result.windows.filter((w) => w.kind !== 'steady').map((w) => w.kind)).toEqual([
      'terminate-connections',
      'database-restart',
      'database-freeze',
      'row-lock',
      'process-kill',
    ]);
    expect(result.windows.reduce((n, w) => n + w.answers.ok, 0)).toBeGreaterThan(1000);
  });

  it('keeps both processes up: the only exit is the one it caused', () => {
    expect(invariant('both processes up')).toMatchObject({ held: true });
  });

  it('finds every acknowledged heartbeat in the table', () => {
    expect(invariant('every acknowledged heartbeat')).toMatchObject({ held: true });
  });

  it('answers only success, 503 UNAVAILABLE with Retry-After, or 429', () => {
    expect(invariant('no answer other than')).toMatchObject({ held: true, detail: 'none' });
  });

  it("leaves every live subscriber showing what the database says", () => {
    expect(invariant('every live subscriber')).toMatchObject({ held: true });
  });
});
