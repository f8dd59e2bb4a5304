/**
 * The live page at / and the browser client at /sdk.js, bundled from TypeScript
 * with esbuild on first request and kept in memory (a few tens of ms, once per
 * process), so `npm start` serves them with no build step.
 */
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { build } from 'esbuild';

const SRC = path.resolve(__dirname, '..');

export interface WebAssets {
  /** Answers GET /, /app.js or /sdk.js; false for any other path. */
  serve(pathname: string, res: http.ServerResponse): Promise<boolean>;
}

export function createWebAssets(options: { heartbeatIntervalMs: number }): WebAssets {
  const bundles = new Map<string, Promise<string>>();
  const bundle = (entry: string) => {
    let code = bundles.get(entry);
    if (!code) {
      code = build({ entryPoints: [path.join(SRC, entry)], bundle: true, write: false, format: 'esm', target: 'es2020', minify: true }).then(
        (result) => result.outputFiles[0]!.text,
      );
      // A failed build is retried on the next request rather than cached.
      code.catch(() => bundles.delete(entry));
      bundles.set(entry, code);
    }
    return code;
  };
  let page: string | undefined;

  return {
    async serve(pathname, res) {
      if (pathname === '/') {
        page ??= fs
          .readFileSync(path.join(SRC, 'web', 'index.html'), 'utf8')
          .replace('__PULSE_CONFIG__', JSON.stringify({ heartbeatIntervalMs: options.heartbeatIntervalMs }));
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' });
        res.end(page);
        return true;
      }
      const entry = pathname === '/app.js' ? 'web/app.ts' : pathname === '/sdk.js' ? 'client/index.ts' : null;
      if (!entry) return false;
      const code = await bundle(entry);
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-cache' });
      res.end(code);
      return true;
    },
  };
}
