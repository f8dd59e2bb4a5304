/**
 * The database bench's result as markdown: a few lines of context, then one
 * table per measurement (see run.ts for what each measures).
 */
import { BATCH_SIZE, DESIGN_BYTES_PER_ROW, IDS_PER_READ, STATUS_GROWTH_TARGET, type DatabaseBenchResult, type WriteStatement } from './results';
import { count, mb, ms, n, pct } from './format';

/** The result as markdown: a few lines of context, then one table per measurement. */
export function databaseBenchMarkdown(result: DatabaseBenchResult): string {
  const { settings, writeCeilings, sizes, growth } = result;
  const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : 'n/a');
  const range = (values: number[], format: (value: number) => string) => `${format(Math.min(...values))} – ${format(Math.max(...values))}`;
  const S = count(growth.small.rows);
  const L = count(growth.large.rows);
  const gs = growth.small.median;
  const gl = growth.large.median;
  const lines: string[] = [
    `# Database bench: ${S} and ${L} rows`,
    '',
    `${result.startedAt}, ${Math.round(result.durationSeconds)} s. Server: ${result.server.version} (shared_buffers ${result.server.sharedBuffers}, ` +
      `synchronous_commit ${result.server.synchronousCommit}). Client: Node ${result.machine.node}, ${result.machine.cores} cores (${result.machine.cpu}), ` +
      `client and server on the same machine over loopback. Every figure is the median of ${settings.rounds} rounds (each column its own median); ` +
      `the runs compared alternate within each round. Compare figures within this run only.`,
    '',
    `## Write ceilings at ${count(writeCeilings.rows)} rows`,
    '',
    `${settings.clients} clients in a closed loop for ${settings.seconds} s per run. Single: the Day-0 upsert, one heartbeat per statement, a random existing user. ` +
      `Floor: a bare unnest upsert of ${BATCH_SIZE} heartbeats (no write gap, answer or NOTIFY), the cheapest a batch can be written. ` +
      `Pulse: Pulse's own batched heartbeat statement, sent by recordHeartbeats as the heartbeat batcher sends it, ${BATCH_SIZE} users already online ` +
      `(nothing to notify, the common case) and no write gap (every heartbeat written, as the floor writes it). ` +
      `Batches: ids spread evenly over the table from a random offset, sorted. ` +
      `Both drivers send the statements unprepared over the extended protocol, as pg does for Pulse; pgbench sends only the bare upserts ` +
      `(Pulse's statement is built in Node) and builds each batch's array with one extra small query, not counted in its latency. ` +
      `WAL and shared_buffers figures are server-wide and per heartbeat.`,
    '',
    '| statement | driver | statements/s | heartbeats/s | heartbeats/s, all rounds | latency avg ms | WAL bytes/heartbeat | full-page images/heartbeat | pages in shared_buffers |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
    ...writeCeilings.ceilings.map(
      ({ statement, driver, runs, median: m }) =>
        `| ${statement} | ${driver} | ${n(m.statementsPerSecond)} | ${n(m.rowsPerSecond)} | ${range(runs.map((r) => r.rowsPerSecond), n)} | ${ms(m.latencyAvgMs)} | ` +
        `${m.walBytesPerRow.toFixed(0)} | ${m.fullPageImagesPerRow.toFixed(3)} | ${pct(m.bufferHitRatio)} |`,
    ),
    '',
    '| driver | floor / single, heartbeats/s | Pulse / single | Pulse / floor |',
    '|---|---:|---:|---:|',
    ...(['node-pg', 'pgbench'] as const).map((driver) => {
      const rate = (statement: WriteStatement) => writeCeilings.ceilings.find((c) => c.driver === driver && c.statement === statement)?.median.rowsPerSecond;
      const [single, floor, pulse] = [rate('single'), rate('floor'), rate('pulse')];
      const of = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined ? ratio(a, b) : '-');
      return `| ${driver} | ${of(floor, single)} | ${of(pulse, single)} | ${of(pulse, floor)} |`;
    }),
    ...(settings.pgbench ? [] : ['', 'pgbench was not found on PATH: the Node driver alone measured these.']),
    '',
    '## Size per row',
    '',
    `Heap is the table (fillfactor 70), index its primary key, total includes both (and the free space map). ` +
      `The designs estimated ${DESIGN_BYTES_PER_ROW} bytes per row. HOT: share of the updates since the previous line that were heap-only.`,
    '',
    '| state | heap MB | index MB | total MB | bytes/row (total) | bytes/row (heap) | x estimate | HOT |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...sizes.map(
      (s) =>
        `| ${s.label} | ${mb(s.heapBytes)} | ${mb(s.indexBytes)} | ${mb(s.totalBytes)} | ${(s.totalBytes / s.rows).toFixed(1)} | ` +
        `${(s.heapBytes / s.rows).toFixed(1)} | ${(s.totalBytes / s.rows / DESIGN_BYTES_PER_ROW).toFixed(1)} | ${s.hotRatio === null ? '-' : pct(s.hotRatio)} |`,
    ),
    '',
    '## Growth with the table',
    '',
    `Two databases side by side, ${S} rows (after one heartbeat per row) and ${L} rows (freshly loaded), measured alternately. ` +
      `Status: Pulse's status read (findStatusRows, anonymous viewer), ${IDS_PER_READ} random existing ids per call, ${n(settings.readCalls)} calls from ${settings.readClients} clients per round ` +
      `(after a tenth as many to warm up). Heartbeats: Pulse's batched statement, ${BATCH_SIZE} users each, as in the write ceilings, ${settings.clients} clients for ${settings.seconds} s per round.`,
    '',
    `| measure | ${S} rows | ${L} rows | ratio ${L}/${S} |`,
    '|---|---:|---:|---:|',
    `| status p50 ms | ${ms(gs.readP50Ms)} | ${ms(gl.readP50Ms)} | ${ratio(gl.readP50Ms, gs.readP50Ms)} |`,
    `| status p99 ms | ${ms(gs.readP99Ms)} | ${ms(gl.readP99Ms)} | ${ratio(gl.readP99Ms, gs.readP99Ms)} |`,
    `| status avg ms | ${ms(gs.readAvgMs)} | ${ms(gl.readAvgMs)} | ${ratio(gl.readAvgMs, gs.readAvgMs)} |`,
    `| status: pages in shared_buffers | ${pct(gs.readBufferHitRatio)} | ${pct(gl.readBufferHitRatio)} | |`,
    `| Pulse's batched heartbeats/s | ${n(gs.heartbeatsPerSecond)} | ${n(gl.heartbeatsPerSecond)} | ${ratio(gl.heartbeatsPerSecond, gs.heartbeatsPerSecond)} |`,
    `| Pulse's statement latency avg ms | ${ms(gs.heartbeatLatencyAvgMs)} | ${ms(gl.heartbeatLatencyAvgMs)} | ${ratio(gl.heartbeatLatencyAvgMs, gs.heartbeatLatencyAvgMs)} |`,
    `| Pulse's statement: WAL bytes/heartbeat | ${gs.walBytesPerHeartbeat.toFixed(0)} | ${gl.walBytesPerHeartbeat.toFixed(0)} | ${ratio(gl.walBytesPerHeartbeat, gs.walBytesPerHeartbeat)} |`,
    `| Pulse's statement: full-page images/heartbeat | ${gs.fullPageImagesPerHeartbeat.toFixed(3)} | ${gl.fullPageImagesPerHeartbeat.toFixed(3)} | |`,
    `| Pulse's statement: pages in shared_buffers | ${pct(gs.heartbeatBufferHitRatio)} | ${pct(gl.heartbeatBufferHitRatio)} | |`,
    '',
    statusVerdict(growth),
    '',
    `shared_buffers holds ${result.server.sharedBuffers}: pages outside it come from the OS cache, at a cost per page. A full-page image (8 kB of WAL) is ` +
      `written the first time a page changes after a checkpoint: a ${settings.seconds} s run over a large table touches mostly such pages, ` +
      `while a steady load that revisits every page within a checkpoint interval pays it once per page and interval.`,
    '',
    `Per round (${S} / ${L}):`,
    '',
    "| round | status p50 ms | status p99 ms | Pulse's batched heartbeats/s |",
    '|---:|---:|---:|---:|',
    ...growth.small.reads.map((small, i) => {
      const large = growth.large.reads[i]!;
      return (
        `| ${i + 1} | ${ms(small.p50Ms)} / ${ms(large.p50Ms)} | ${ms(small.p99Ms)} / ${ms(large.p99Ms)} | ` +
        `${n(growth.small.heartbeats[i]!.rowsPerSecond)} / ${n(growth.large.heartbeats[i]!.rowsPerSecond)} |`
      );
    }),
    '',
  ];
  return lines.join('\n');
}

// Private: the target line under the growth table.
function statusVerdict(growth: DatabaseBenchResult['growth']): string {
  const p50 = growth.large.median.readP50Ms / growth.small.median.readP50Ms;
  const p99 = growth.large.median.readP99Ms / growth.small.median.readP99Ms;
  const met = (value: number) => (value <= STATUS_GROWTH_TARGET ? 'met' : 'not met');
  return (
    `Target: status latency at ${count(growth.large.rows)} rows within ${STATUS_GROWTH_TARGET}x of ${count(growth.small.rows)}: ` +
    `p50 ${p50.toFixed(2)}x (${met(p50)}), p99 ${p99.toFixed(2)}x (${met(p99)}).`
  );
}
