/**
 * `npm run chaos`: two Pulse processes (the production build) on an embedded
 * PostgreSQL of the run's own, a steady load through both, and every 10-20 s one
 * fault picked at random: PostgreSQL fast-stopped and started 2 s later, every
 * Pulse connection terminated, PostgreSQL frozen (SIGSTOP) for 3 s, a few pulse
 * rows locked past the statement timeout, Redis restarted (a redis-server the run
 * starts on a free port, when one is installed), one Pulse process killed with
 * SIGKILL and started again. Then it checks, per fault kind and in total, what a
 * user would notice, prints the table, and exits 1 if an invariant broke.
 *
 *   npm run chaos                        # 3 minutes of faults, then about a minute of checks
 *   npm run chaos -- --minutes 10
 *   npm run chaos -- --seed 42 --no-redis --server tsx
 *
 * Loopback only; everything it starts stops with it. The table and Pulse's logs
 * are written under bench/results/.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_OPTIONS, runChaos, type ChaosOptions } from './chaos/run';

function parseArgs(argv: string[]): Pick<ChaosOptions, 'minutes' | 'seed' | 'redis' | 'server'> {
  const options = { minutes: DEFAULT_OPTIONS.minutes, seed: Date.now() % 1_000_000, redis: true, server: 'dist' as ChaosOptions['server'] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--minutes') options.minutes = Number(value());
    else if (arg === '--seed') options.seed = Number(value());
    else if (arg === '--no-redis') options.redis = false;
    else if (arg === '--server') options.server = value() as ChaosOptions['server'];
    else throw new Error(`unknown argument ${arg} (expected --minutes N, --seed N, --no-redis, --server dist|tsx)`);
  }
  if (!(options.minutes > 0 && options.minutes <= 120)) throw new Error(`--minutes: expected a number of minutes from 0 to 120 (got ${options.minutes})`);
  if (!Number.isInteger(options.seed)) throw new Error(`--seed: expected a whole number (got ${options.seed})`);
  if (options.server !== 'dist' && options.server !== 'tsx') throw new Error(`--server: expected dist or tsx (got ${String(options.server)})`);
  return options;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  // Ctrl-C: exit, and the run's exit hook thaws and stops what it started.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  const stamp = new Date().toISOString().slice(0, 16).replace(/:/g, '');
  const logDir = path.resolve(__dirname, 'results', `chaos-${stamp}`);
  const result = await runChaos({ ...DEFAULT_OPTIONS, ...args, logDir, log: (line) => process.stdout.write(`${line}\n`) });
  fs.writeFileSync(path.join(logDir, 'report.md'), result.report);
  process.stdout.write(`\n${result.report}\nreport and Pulse's logs: ${path.relative(process.cwd(), logDir)}/\n`);
  process.exit(result.held ? 0 : 1);
}

main().catch((error: unknown) => {
  process.stderr.write(`chaos run failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(2);
});
