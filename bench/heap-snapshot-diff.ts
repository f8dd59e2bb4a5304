/**
 * What a process holds more of in one V8 heap snapshot than in another, by kind
 * of object: sums the objects' own sizes by type and constructor (or, for
 * strings and code, by type), and prints the largest differences as a markdown
 * table, divided by `per` (e.g. the number of streams opened in between).
 *
 *   STREAM_MEMORY_SNAPSHOTS=/tmp/snap npm run -s bench:stream-memory
 *   node --import tsx bench/heap-snapshot-diff.ts /tmp/snap/stream-memory-0-streams.heapsnapshot \
 *     /tmp/snap/stream-memory-200-streams.heapsnapshot 200
 *
 * Own sizes, not retained sizes: a 1,000-entry array counts its slots here and
 * the strings it points to under "string". Chrome DevTools' Comparison view on
 * the same two files shows who retains what.
 */
import fs from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Own bytes and object count by kind. */
type Totals = Map<string, { bytes: number; count: number }>;

function totals(file: string): Totals {
  const heap = JSON.parse(fs.readFileSync(file, 'utf8')) as Snapshot;
  const fields = heap.snapshot.meta.node_fields;
  const types = heap.snapshot.meta.node_types[0];
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((field) => fields.indexOf(field));
  const byKind: Totals = new Map();
  for (let i = 0; i < heap.nodes.length; i += fields.length) {
    const type = types[heap.nodes[i + typeAt!]!]!;
    // Strings and code are told apart by type only: their names are their contents.
    const kind = type === 'object' || type === 'closure' || type === 'native' ? `${type}: ${heap.strings[heap.nodes[i + nameAt!]!]}` : type;
    const entry = byKind.get(kind) ?? { bytes: 0, count: 0 };
    entry.bytes += heap.nodes[i + sizeAt!]!;
    entry.count += 1;
    byKind.set(kind, entry);
  }
  return byKind;
}

function main(): void {
  const [before, after, perText = '1'] = process.argv.slice(2);
  const per = Number(perText);
  if (!before || !after || !(per > 0)) {
    throw new Error('usage: heap-snapshot-diff.ts <before.heapsnapshot> <after.heapsnapshot> [per, e.g. the streams opened]');
  }
  const a = totals(before);
  const b = totals(after);
  const rows = [...new Set([...a.keys(), ...b.keys()])]
    .map((kind) => {
      const x = a.get(kind) ?? { bytes: 0, count: 0 };
      const y = b.get(kind) ?? { bytes: 0, count: 0 };
      return { kind, bytes: (y.bytes - x.bytes) / per, count: (y.count - x.count) / per };
    })
    .filter((row) => Math.abs(row.bytes) >= 64)
    .sort((p, q) => Math.abs(q.bytes) - Math.abs(p.bytes));
  const total = rows.reduce((sum, row) => sum + row.bytes, 0);
  const lines = ['| kind | bytes | objects |', '|---|---:|---:|'];
  for (const row of rows.slice(0, 30)) lines.push(`| ${row.kind.replace(/\|/g, '\\|').slice(0, 80)} | ${Math.round(row.bytes)} | ${row.count.toFixed(1)} |`);
  process.stdout.write(`${lines.join('\n')}\n\nall kinds (at least 64 bytes each): ${(total / 1024).toFixed(1)} KB per ${per === 1 ? 'run' : `1 of ${per}`}\n`);
}

main();
