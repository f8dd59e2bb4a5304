/**
 * The sustained run's result as markdown: the method in a paragraph, one row per
 * minute, and Pulse's targets for 1M users online checked against the rows.
 */
import { count, mb, n, pct } from './format';
import type { SustainedInterval, SustainedResult } from './sustained';

/** HOT updates needed per update, in every minute after the first (a target for 1M users online). */
export const HOT_RATIO_TARGET = 0.9;
/** Achieved / offered below which the rate counts as not met. */
const RATE_MET = 0.99;

export function sustainedMarkdown(result: SustainedResult): string {
  const { settings, intervals } = result;
  const s = settings.statement;
  const lines = [
    `# Sustained heartbeats: ${n(settings.rate)}/s over ${count(settings.rows)} users for ${settings.minutes} min`,
    '',
    `${result.startedAt}, ${Math.round(result.durationSeconds)} s in all. Server: ${result.server.version} (shared_buffers ${result.server.sharedBuffers}, ` +
      `synchronous_commit ${result.server.synchronousCommit}). Client: Node ${result.machine.node}, ${result.machine.cores} cores (${result.machine.cpu}), ` +
      `client and server on the same machine over loopback.`,
    '',
    `Method: ${count(settings.rows)} rows loaded and vacuumed, then an open loop offers ${n(settings.rate)} heartbeats/s, every user once every ` +
      `${settings.cycleSeconds.toFixed(1)} s in a fixed random order, to Pulse's HeartbeatBatcher (adaptive group commit, at most ${settings.batchMax} users ` +
      `a statement, ${settings.batchesInFlight} statements at once), whose write calls recordHeartbeats as Pulse does (threshold ${s.thresholdSeconds} s, ` +
      `write gap ${s.minWriteGapSeconds} s, NOTIFY on ${s.notifyChannel ?? 'none'}). No HTTP. Arrivals are dropped, and counted, while ` +
      `${n(settings.backlogLimit)} already wait for a statement. Written and skipped count the rows of the statements that finished in the minute; ` +
      `statement times are as the batcher sees them (sent to committed). Table: heap + primary key. HOT: share of the minute's updates that were heap-only. ` +
      `Dead: n_dead_tup at the minute's end. WAL: bytes of WAL (pg_current_wal_lsn, server-wide) per heartbeat written. Driver CPU: this process ` +
      `(the open loop and the batcher), in cores. Loaded: ${mb(result.loaded.heapBytes + result.loaded.indexBytes)} MB.`,
    '',
    '| minute | offered/s | written/s | achieved | skipped/s | dropped | statements/s | users/statement | p50 ms | p99 ms | table MB | HOT | dead tuples | autovacuums | WAL B/heartbeat | FPI/heartbeat | driver CPU |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...intervals.map((i, index) => {
      const handled = i.written + i.skipped;
      const succeeded = i.statements - i.failedStatements;
      return (
        `| ${index + 1} | ${n(i.offered / i.seconds)} | ${n(i.written / i.seconds)} | ${i.offered > 0 ? pct(handled / i.offered) : '-'} | ${n(i.skipped / i.seconds)} | ` +
        `${n(i.dropped)} | ${n(i.statements / i.seconds)} | ${succeeded > 0 ? n(handled / succeeded) : '-'} | ` +
        `${i.statementP50Ms.toFixed(1)} | ${i.statementP99Ms.toFixed(1)} | ${mb(i.heapBytes + i.indexBytes)} | ${i.updates > 0 ? pct(i.hotUpdates / i.updates) : '-'} | ` +
        `${n(i.deadTuples)} | ${i.autovacuums} | ${i.written > 0 ? n(i.walBytes / i.written) : '-'} | ${i.written > 0 ? (i.fullPageImages / i.written).toFixed(3) : '-'} | ` +
        `${i.driverCpuShare.toFixed(2)} |`
      );
    }),
    '',
    ...verdicts(result),
    '',
  ];
  return lines.join('\n');
}

// Private: the targets for 1M users online, each with the figures that decide it.
function verdicts(result: SustainedResult): string[] {
  const { intervals, settings } = result;
  const afterFirst = intervals.length > 1 ? intervals.slice(1) : intervals;
  const handled = (i: SustainedInterval) => i.written + i.skipped;
  const offered = afterFirst.reduce((sum, i) => sum + i.offered, 0);
  const achieved = offered > 0 ? afterFirst.reduce((sum, i) => sum + handled(i), 0) / offered : 0;
  const hot = afterFirst.filter((i) => i.updates > 0).map((i) => i.hotUpdates / i.updates);
  const size = (i: SustainedInterval) => i.heapBytes + i.indexBytes;
  // "Flat after the first minutes": the last size against the end of minute 3
  // (or the first, in a shorter run).
  const reference = intervals[Math.min(2, intervals.length - 1)]!;
  const last = intervals[intervals.length - 1]!;
  const dead = Math.max(...intervals.map((i) => i.deadTuples));
  const met = (ok: boolean) => (ok ? 'met' : 'not met');
  const failed = intervals.reduce((sum, i) => sum + i.failedStatements, 0);
  return [
    `Targets (minutes after the first):`,
    '',
    `- Rate: ${pct(achieved)} of the ${n(settings.rate)} heartbeats/s offered were written or skipped (${met(achieved >= RATE_MET)}); ` +
      `${n(intervals.reduce((sum, i) => sum + i.dropped, 0))} dropped in all, ${failed} statements failed.`,
    `- HOT ratio >= ${HOT_RATIO_TARGET}: lowest ${hot.length ? pct(Math.min(...hot)) : '-'} (${met(hot.length > 0 && Math.min(...hot) >= HOT_RATIO_TARGET)}).`,
    `- Table size flat: ${mb(size(reference))} MB at minute ${intervals.indexOf(reference) + 1}, ${mb(size(last))} MB at the end ` +
      `(${size(reference) > 0 ? `${(((size(last) - size(reference)) / size(reference)) * 100).toFixed(1)}%` : '-'}); ${mb(result.loaded.heapBytes + result.loaded.indexBytes)} MB loaded.`,
    `- Dead tuples bounded: at most ${n(dead)} (${pct(dead / settings.rows)} of the rows) at a minute's end; ${intervals.reduce((sum, i) => sum + i.autovacuums, 0)} autovacuum runs.`,
  ];
}
