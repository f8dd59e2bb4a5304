/**
 * Pulse's sources (src/ and migrations/) compiled to JavaScript once, for tests
 * that run Pulse or its tools as real processes. `node --import tsx` compiles
 * every module again in each process (about twice the CPU of a compiled start);
 * this is the same esbuild transform tsx applies, done once per test file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildSync } from 'esbuild';

export const ROOT = path.resolve(__dirname, '..', '..');

export interface CompiledSources {
  /** Where `relative` (e.g. `src/db/migrate-cli.ts`) was compiled to. */
  entry(relative: string): string;
  remove(): void;
}

export function compileSources(): CompiledSources {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-compiled-'));
  try {
    buildSync({
      absWorkingDir: ROOT,
      entryPoints: ['src/**/*.ts', 'migrations/*.ts'],
      outdir,
      outbase: '.',
      format: 'cjs',
      platform: 'node',
      target: 'node20',
      logLevel: 'error',
    });
    // The layout `npm run build` makes: the compiled files keep their relative
    // places (migrations/ beside src/), with the schema and the web client's
    // sources (bundled on first request) beside them...
    fs.copyFileSync(path.join(ROOT, 'schema.graphql'), path.join(outdir, 'schema.graphql'));
    fs.cpSync(path.join(ROOT, 'src', 'web'), path.join(outdir, 'src', 'web'), { recursive: true });
    for (const file of fs.readdirSync(path.join(ROOT, 'src', 'client')).filter((f) => f.endsWith('.ts'))) {
      fs.copyFileSync(path.join(ROOT, 'src', 'client', file), path.join(outdir, 'src', 'client', file));
    }
    // ...and they find their dependencies where the sources do.
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(outdir, 'node_modules'), 'dir');
  } catch (error) {
    fs.rmSync(outdir, { recursive: true, force: true });
    throw error;
  }
  return {
    entry: (relative) => path.join(outdir, relative.replace(/\.ts$/, '.js')),
    remove: () => fs.rmSync(outdir, { recursive: true, force: true }),
  };
}
