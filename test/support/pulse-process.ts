/**
 * `npm start` as a child process (src/main.ts under tsx), with its output
 * collected so a test can wait for a line, and plain HTTP requests to it on a
 * fresh connection each: node:cluster hands every new connection to the next
 * worker, so fresh connections reach every worker of an instance.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');

export interface PulseProcess {
  readonly pid: number;
  output(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** Resolves once the output contains `text` (rejects if the process exits first). */
  waitFor(text: string | RegExp): Promise<RegExpMatchArray | string>;
  signal(name: NodeJS.Signals): void;
}

export function startPulseProcess(env: Record<string, string>): PulseProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, NODE_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const waiters: Array<() => void> = [];
  const collect = (chunk: Buffer) => {
    output += chunk.toString('utf8');
    for (const check of [...waiters]) check();
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    pid: child.pid!,
    output: () => output,
    exited,
    waitFor: (text) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const found = typeof text === 'string' ? (output.includes(text) ? text : null) : output.match(text);
          if (!found) return false;
          waiters.splice(waiters.indexOf(check), 1);
          resolve(found);
          return true;
        };
        waiters.push(check);
        if (check()) return;
        void exited.then(() => reject(new Error(`exited before printing ${String(text)}:\n${output}`)));
      }),
    signal: (name) => child.kill(name),
  };
}

export interface Reply {
  status: number;
  /** The x-pulse-worker header: which worker answered (null outside a cluster). */
  worker: string | null;
  body: string;
}

/** One request on a connection of its own (no keep-alive pool). */
export function request(
  port: number,
  method: string,
  pathname: string,
  options: { headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: pathname, headers: options.headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, worker: (res.headers['x-pulse-worker'] as string | undefined) ?? null, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    // A connection handed to a worker that is killed at that moment may never be
    // answered: give up on it as a client would.
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer to ${method} ${pathname} within 10 s`)));
    req.end(options.body);
  });
}

/** A GraphQL request on a connection of its own. */
export function graphqlRequest(port: number, query: string, token?: string): Promise<Reply> {
  return request(port, 'POST', '/graphql', {
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query }),
  });
}

/** The value of one series in Prometheus text, or NaN. */
export function seriesValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : NaN;
}
