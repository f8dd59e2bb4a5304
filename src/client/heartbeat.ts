/**
 * startHeartbeat: keeps the signed-in user online from a browser tab (or any
 * fetch-capable runtime) by sending `POST /pulse` every ~10 seconds.
 *
 *   const heartbeat = startHeartbeat({ url: 'https://pulse.example.com', token });
 *   // ...
 *   heartbeat.stop();
 *
 * - Each interval is jittered (±20% by default), so tabs opened together do not
 *   beat together forever.
 * - A failure is retried with exponential backoff and full jitter, never sooner
 *   than the server's `Retry-After`.
 * - Away when idle: in a page, no input (pointer, keys, touch, wheel) for
 *   `idleAfterMs` (5 minutes by default) sends a heartbeat saying `idle: true` at
 *   once, and later ones say so too: others see the user AWAY. The first input
 *   after that, or the page becoming visible again, sends an active heartbeat at
 *   once (at most one a second), so the dot turns green without waiting for the
 *   next beat.
 * - stop() only stops: it does not tell Pulse the user left, because another tab
 *   or device may still be open. The user goes offline when the threshold passes
 *   without a heartbeat from anywhere.
 */
import { fullJitter, retryAfterMs } from './backoff';

export interface HeartbeatOptions {
  /** Pulse's base URL, e.g. https://pulse.example.com (no trailing path). */
  url: string;
  /** The bearer token, or a function that returns the current one (it may refresh). */
  token: string | (() => string);
  /** Time between heartbeats; Pulse's threshold is 30 s by default, so 10 s. */
  intervalMs?: number;
  /** Jitter as a share of the interval (0.2: ±20%). */
  jitter?: number;
  /** Longest wait between retries after failures. */
  maxBackoffMs?: number;
  /** Told of every outcome: ok, or the error and the delay until the next try. */
  onResult?: (result: { ok: true } | { ok: false; error: string; retryInMs: number }) => void;
  /**
   * No input for this long makes the user idle (AWAY to others); 0 turns idle
   * detection off. Needs a page (`document`); elsewhere the user stays active.
   */
  idleAfterMs?: number;
  /** Told when the user turns idle or active again. */
  onIdleChange?: (idle: boolean) => void;
  /** For tests: the fetch to use. */
  fetch?: typeof fetch;
}

/** What idle detection needs of a page's `document` (typed here: the client also builds without the DOM). */
interface PageEvents {
  readonly visibilityState: string;
  addEventListener(type: string, listener: () => void, options?: { passive?: boolean; capture?: boolean }): void;
  removeEventListener(type: string, listener: () => void, options?: { capture?: boolean }): void;
}

/** Input that shows the user is there. */
const ACTIVITY_EVENTS = ['pointerdown', 'pointermove', 'keydown', 'touchstart', 'wheel'] as const;
/** Fewest milliseconds between two heartbeats sent because input returned. */
const WAKE_THROTTLE_MS = 1000;

export interface Heartbeat {
  /** Stops sending; an in-flight heartbeat is abandoned. */
  stop(): void;
}

export function startHeartbeat(options: HeartbeatOptions): Heartbeat {
  const intervalMs = options.intervalMs ?? 10_000;
  const jitter = options.jitter ?? 0.2;
  const backoff = fullJitter(Math.min(1000, intervalMs), options.maxBackoffMs ?? 60_000);
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  let stopped = false;
  let failures = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let inFlight: AbortController | undefined;
  let idle = false;
  let lastSentAt = 0;

  const schedule = (ms: number) => {
    clearTimeout(timer);
    if (!stopped) timer = setTimeout(beat, ms);
  };

  async function beat(): Promise<void> {
    inFlight = new AbortController();
    lastSentAt = Date.now();
    try {
      const token = typeof options.token === 'function' ? options.token() : options.token;
      const response = await doFetch(`${options.url.replace(/\/$/, '')}/pulse`, {
        method: 'POST',
        headers: idle ? { authorization: `Bearer ${token}`, 'content-type': 'application/json' } : { authorization: `Bearer ${token}` },
        ...(idle ? { body: '{"idle":true}' } : {}),
        signal: inFlight.signal,
        // A heartbeat from a closing tab may still go out.
        keepalive: true,
      });
      if (response.ok) {
        failures = 0;
        options.onResult?.({ ok: true });
        schedule(intervalMs * (1 - jitter + 2 * jitter * Math.random()));
        return;
      }
      fail(`HTTP ${response.status}`, retryAfterMs(response.headers.get('retry-after')));
    } catch (error) {
      if (stopped) return;
      fail(error instanceof Error ? error.message : String(error), 0);
    }
  }

  function fail(error: string, serverWaitMs: number): void {
    const retryInMs = Math.max(serverWaitMs, backoff.delay(failures++));
    options.onResult?.({ ok: false, error, retryInMs });
    schedule(retryInMs);
  }

  // Private: idle detection, in a page only. A timer restarted by input (at most
  // once a second, so pointer moves cost nothing) turns the user idle; input or
  // the page showing again turns them active, with a heartbeat at once.
  const idleAfterMs = options.idleAfterMs ?? 5 * 60_000;
  const page = idleAfterMs > 0 ? ((globalThis as { document?: PageEvents }).document ?? null) : null;
  let idleTimer: ReturnType<typeof setTimeout> | undefined;
  let lastInputAt = 0;
  const setIdle = (value: boolean) => {
    if (idle === value || stopped) return;
    idle = value;
    options.onIdleChange?.(value);
    // Tell Pulse now (throttled when waking), not at the next beat.
    schedule(value ? 0 : Math.max(0, lastSentAt + WAKE_THROTTLE_MS - Date.now()));
  };
  const armIdleTimer = () => {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => setIdle(true), idleAfterMs);
  };
  const onActivity = () => {
    const now = Date.now();
    if (!idle && now - lastInputAt < WAKE_THROTTLE_MS) return;
    lastInputAt = now;
    armIdleTimer();
    setIdle(false);
  };
  const onVisibility = () => {
    if (page?.visibilityState === 'visible') onActivity();
  };
  if (page) {
    for (const type of ACTIVITY_EVENTS) page.addEventListener(type, onActivity, { passive: true, capture: true });
    page.addEventListener('visibilitychange', onVisibility);
    armIdleTimer();
  }

  void beat();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      clearTimeout(idleTimer);
      if (page) {
        for (const type of ACTIVITY_EVENTS) page.removeEventListener(type, onActivity, { capture: true });
        page.removeEventListener('visibilitychange', onVisibility);
      }
      inFlight?.abort();
    },
  };
}
