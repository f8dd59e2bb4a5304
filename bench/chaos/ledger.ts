/**
 * The chaos run's books: every answer the load received, filed under the fault
 * window it arrived in. A window opens when a fault starts and closes when the
 * next one starts; before the first fault is the "steady" window.
 */

/** The faults a chaos run picks from. */
export const FAULT_KINDS = ['database-restart', 'terminate-connections', 'database-freeze', 'row-lock', 'redis-restart', 'process-kill'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** What one request (or stream) came back with. */
export type Outcome =
  | { kind: 'ok' }
  /** 503 with Retry-After and code UNAVAILABLE: the answer the issue allows during a fault. */
  | { kind: 'unavailable' }
  | { kind: 'throttled' }
  /** Connection cut by the run's own SIGKILL of that process. */
  | { kind: 'cut' }
  /** Anything else: a 500, a 200 with an error, a hang, a connection refused by a live process. */
  | { kind: 'bad'; what: string };

export interface Window {
  kind: FaultKind | 'steady';
  startedAt: number;
  /** When the fault was over (the database back, the lock released...); null while it lasts. */
  endedAt: number | null;
  /** Per Pulse process: the first successful answer after the fault ended. */
  firstSuccess: Map<string, number>;
  answers: { ok: number; unavailable: number; throttled: number; cut: number; bad: number };
  badExamples: Map<string, number>;
  acknowledged: number;
  /** Acknowledged heartbeats (the newest per user) missing from the table at the end. */
  lost: number;
  /** Pulse processes that exited without the run killing them. */
  unexpectedExits: string[];
  /** Free text: what the fault did (rows locked, connections terminated...). */
  note: string;
}

export class Ledger {
  readonly windows: Window[] = [];

  constructor(readonly processNames: readonly string[]) {
    this.open('steady');
    this.current.endedAt = this.current.startedAt;
  }

  get current(): Window {
    return this.windows[this.windows.length - 1]!;
  }

  open(kind: Window['kind']): Window {
    const window: Window = {
      kind,
      startedAt: Date.now(),
      endedAt: null,
      firstSuccess: new Map(),
      answers: { ok: 0, unavailable: 0, throttled: 0, cut: 0, bad: 0 },
      badExamples: new Map(),
      acknowledged: 0,
      lost: 0,
      unexpectedExits: [],
      note: '',
    };
    this.windows.push(window);
    return window;
  }

  /** The fault of the current window is over: recovery is timed from now. */
  faultEnded(): void {
    this.current.endedAt = Date.now();
  }

  record(processName: string, outcome: Outcome): void {
    const window = this.current;
    window.answers[outcome.kind]++;
    if (outcome.kind === 'bad') window.badExamples.set(outcome.what, (window.badExamples.get(outcome.what) ?? 0) + 1);
    if (outcome.kind === 'ok' && window.endedAt !== null && !window.firstSuccess.has(processName)) {
      window.firstSuccess.set(processName, Date.now());
    }
  }

  /**
   * Seconds from the fault's end until every process had answered a request
   * successfully; null if one never did before the next fault.
   */
  recoverySeconds(window: Window): number | null {
    if (window.endedAt === null) return null;
    let worst = 0;
    for (const name of this.processNames) {
      const first = window.firstSuccess.get(name);
      if (first === undefined) return null;
      worst = Math.max(worst, first - window.endedAt);
    }
    return worst / 1000;
  }
}
