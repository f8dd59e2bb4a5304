/**
 * Where a Pulse process spends its CPU: sums the self time of a V8 .cpuprofile
 * (from `node --cpu-prof`) by where the code lives, Pulse's own files apart from
 * each dependency, and prints the shares as a markdown table.
 *
 *   BENCH_SERVER_NODE_OPTIONS="--cpu-prof --cpu-prof-dir=/tmp/prof" BENCH_ONLY=3 BENCH_RATES=off BENCH_DATABASE=off npm run -s bench
 *   node --import tsx bench/cpu-profile-summary.ts /tmp/prof/<the server's file>.cpuprofile
 */
import fs from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function where(url: string, fn: string): string {
  if (!url) return fn === '(garbage collector)' ? 'garbage collection' : fn.startsWith('(') ? fn : `native: ${fn || '(anonymous)'}`;
  if (url.startsWith('node:')) return `Node core: ${url.slice(5).split('/').slice(0, 2).join('/')}`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg) return pkg;
  const own = /\/(src\/[^?]+)/.exec(url)?.[1];
  return own ? `Pulse: ${own}` : url;
}

function main(): void {
  const file = process.argv[2];
  if (!file) throw new Error('usage: cpu-profile-summary.ts <file.cpuprofile>');
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const totals = new Map<string, number>();
  let all = 0;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id)!;
    const us = profile.timeDeltas[i] ?? 0;
    if (node.callFrame.functionName === '(idle)') return;
    const key = where(node.callFrame.url, node.callFrame.functionName);
    totals.set(key, (totals.get(key) ?? 0) + us);
    all += us;
  });
  const rows = [...totals].sort((a, b) => b[1] - a[1]).slice(0, 25);
  console.log(`busy CPU: ${(all / 1e6).toFixed(1)} s\n`);
  console.log('| where | share of busy CPU |\n|---|---:|');
  for (const [key, us] of rows) console.log(`| ${key} | ${((100 * us) / all).toFixed(1)}% |`);
}

main();
