/**
 * Start and stop: every part that starts registers its cleanup, and both stop()
 * and a start that fails halfway undo exactly what had started, last first.
 */
import { createHook } from 'node:async_hooks';
import net from 'node:net';
import pg from 'pg';
import { startPulse, StartupError } from '../src/app';
import { createLogger } from '../src/logger';
import { createEmptyDatabase } from './support/test-database';
import { testConfig } from './support/test-server';
import { eventually } from './support/eventually';

// An empty database that Pulse migrates itself, so every session on it is Pulse's.
let t: Awaited<ReturnType<typeof createEmptyDatabase>>;
beforeAll(async () => {
  t = await createEmptyDatabase();
});
afterAll(() => t.drop());

/** Pulse's own sessions on this test file's database, by application_name. */
async function pulseSessions(): Promise<string[]> {
  const admin = new pg.Client({ connectionString: t.url });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ application_name: string }>(
      "select application_name from pg_stat_activity where datname = current_database() and application_name like 'pulse%' order by 1",
    );
    return rows.map((r) => r.application_name);
  } finally {
    await admin.end();
  }
}

/** Repeating timers (setInterval) created while `work` runs and not cleared since. */
async function intervalsLeftBy(work: () => Promise<unknown>): Promise<{ left: () => Promise<number>; result: PromiseSettledResult<unknown> }> {
  const live = new Set<number>();
  const hook = createHook({
    init(asyncId, type, _trigger, resource) {
      if (type === 'Timeout' && (resource as { _repeat?: number | null })._repeat) live.add(asyncId);
    },
    destroy(asyncId) {
      live.delete(asyncId);
    },
  });
  hook.enable();
  const [result] = await Promise.allSettled([work()]);
  return {
    result: result!,
    left: async () => {
      // Node reports cleared timers to destroy hooks in a batch on its next turn.
      await new Promise((resolve) => setImmediate(resolve));
      hook.disable();
      return live.size;
    },
  };
}

it('undoes a start that fails on a taken port: no LISTEN session, no pool, no live-presence timer left', async () => {
  const taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const port = (taken.address() as net.AddressInfo).port;
  const lines: string[] = [];
  try {
    const { result, left } = await intervalsLeftBy(() =>
      startPulse(testConfig({ DATABASE_URL: t.url, PORT: String(port) }), createLogger('info', (l) => lines.push(l))),
    );
    expect(result.status).toBe('rejected');
    const error = (result as PromiseRejectedResult).reason as Error;
    expect(error).toBeInstanceOf(StartupError);
    expect(error.message).toContain(`Port ${port} is already in use`);

    expect(await left()).toBe(0);
    await eventually('Pulse sessions to close', async () => (await pulseSessions()).length === 0);
    const undone = lines.map((l) => JSON.parse(l).msg as string).filter((m) => m.startsWith('startup failed, undoing:'));
    expect(undone).toEqual([
      'startup failed, undoing: closing the listener, finishing in-flight requests, writing buffered heartbeats (0)',
      'startup failed, undoing: stopping live-presence timers',
      'startup failed, undoing: writing the last buffered heartbeats',
      'startup failed, undoing: closing the presence bus',
      'startup failed, undoing: closing the database',
      'startup failed, undoing: done',
    ]);
  } finally {
    await new Promise((resolve) => taken.close(resolve));
  }
});

it('stops in reverse order of start, and leaves no session or timer behind', async () => {
  const lines: string[] = [];
  const { result, left } = await intervalsLeftBy(async () => {
    const pulse = await startPulse(testConfig({ DATABASE_URL: t.url, SHUTDOWN_DRAIN_MS: '1' }), createLogger('info', (l) => lines.push(l)));
    await eventually('the LISTEN session', async () => (await pulseSessions()).includes('pulse-listen'));
    await pulse.stop();
  });
  expect(result.status).toBe('fulfilled');
  expect(await left()).toBe(0);
  await eventually('Pulse sessions to close', async () => (await pulseSessions()).length === 0);
  const steps = lines.map((l) => JSON.parse(l).msg as string).filter((m) => m.startsWith('shutdown:'));
  expect(steps).toEqual([
    'shutdown: stopping scheduled jobs',
    'shutdown: serving with Connection: close for 1 ms',
    'shutdown: ending event streams',
    'shutdown: closing the listener, finishing in-flight requests, writing buffered heartbeats (0)',
    'shutdown: stopping live-presence timers',
    'shutdown: writing the last buffered heartbeats',
    'shutdown: closing the presence bus',
    'shutdown: closing the database',
    'shutdown: done',
  ]);
});
