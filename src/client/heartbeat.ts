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
  /** For tests: the fetch to use. */
  fetch?: typeof fetch;
}

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

  const schedule = (ms: number) => {
    if (!stopped) timer = setTimeout(beat, ms);
  };

  async function beat(): Promise<void> {
    inFlight = new AbortController();
    try {
      const token = typeof options.token === 'function' ? options.token() : options.token;
      const response = await doFetch(`${options.url.replace(/\/$/, '')}/pulse`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
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

  void beat();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      inFlight?.abort();
    },
  };
}
