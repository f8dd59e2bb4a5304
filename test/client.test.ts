/**
 * The browser client (src/client): heartbeats on a jittered interval, backoff
 * with full jitter that never retries before Retry-After, a stop that only
 * stops, and a presence watch that reconnects. Scheduling is checked with jest's
 * fake timers (no sleeping, no timing assertions); the end-to-end path against a
 * real server is test/browser.test.ts.
 */
import { fullJitter, retryAfterMs } from '../src/client/backoff';
import { startHeartbeat } from '../src/client/heartbeat';
import { watchPresence, type LiveStatus } from '../src/client/watch-presence';

describe('backoff', () => {
  it('waits a random time below an exponential cap, never above the maximum', () => {
    const upper = fullJitter(1000, 8000, () => 0.999999);
    expect([0, 1, 2, 3, 4, 10].map((a) => upper.delay(a))).toEqual([999, 1999, 3999, 7999, 7999, 7999]);
    expect(fullJitter(1000, 8000, () => 0).delay(5)).toBe(0);
  });

  it('reads Retry-After as seconds or as a date', () => {
    expect(retryAfterMs('2')).toBe(2000);
    expect(retryAfterMs(new Date(10_000).toUTCString(), 4000)).toBe(6000);
    expect(retryAfterMs(null)).toBe(0);
    expect(retryAfterMs('soon')).toBe(0);
  });
});

describe('startHeartbeat', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  const flush = async () => {
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };

  it('beats at once, then every interval give or take the jitter, with the current token', async () => {
    const calls: Array<{ url: string; auth: string | null }> = [];
    let token = 'first';
    const fetch = jest.fn(async (url: string | URL | Request, init?: RequestInit) => {
      calls.push({ url: String(url), auth: new Headers(init?.headers).get('authorization') });
      return new Response(null, { status: 204 });
    });
    const heartbeat = startHeartbeat({ url: 'http://pulse.test/', token: () => token, intervalMs: 10_000, jitter: 0.2, fetch });
    await flush();
    expect(calls).toEqual([{ url: 'http://pulse.test/pulse', auth: 'Bearer first' }]);
    token = 'refreshed';
    await jest.advanceTimersByTimeAsync(7_999); // the earliest a jittered beat may come is 8 s
    expect(calls).toHaveLength(1);
    await jest.advanceTimersByTimeAsync(4_002); // the latest is 12 s
    expect(calls).toHaveLength(2);
    expect(calls[1]!.auth).toBe('Bearer refreshed');
    heartbeat.stop();
    await jest.advanceTimersByTimeAsync(60_000);
    expect(calls).toHaveLength(2);
  });

  it('after a refusal, retries no sooner than Retry-After, and reports each outcome', async () => {
    const outcomes: unknown[] = [];
    let status = 503;
    const fetch = jest.fn(async () => new Response(null, { status, headers: status === 503 ? { 'retry-after': '5' } : {} }));
    const heartbeat = startHeartbeat({ url: 'http://pulse.test', token: 't', intervalMs: 10_000, fetch, onResult: (r) => outcomes.push(r) });
    await flush();
    expect(outcomes[0]).toMatchObject({ ok: false, error: 'HTTP 503' });
    expect((outcomes[0] as { retryInMs: number }).retryInMs).toBeGreaterThanOrEqual(5000);
    await jest.advanceTimersByTimeAsync(4_999);
    expect(fetch).toHaveBeenCalledTimes(1);
    status = 204;
    await jest.advanceTimersByTimeAsync(1_000);
    expect(fetch).toHaveBeenCalledTimes(2);
    expect(outcomes[1]).toEqual({ ok: true });
    heartbeat.stop();
  });

  it('keeps retrying after network failures, each wait below the maximum', async () => {
    const retries: number[] = [];
    const fetch = jest.fn(async () => {
      throw new TypeError('fetch failed');
    });
    const heartbeat = startHeartbeat({
      url: 'http://pulse.test',
      token: 't',
      intervalMs: 10_000,
      maxBackoffMs: 4_000,
      fetch,
      onResult: (r) => {
        if (!r.ok) retries.push(r.retryInMs);
      },
    });
    for (let i = 0; i < 6; i++) await jest.advanceTimersByTimeAsync(4_000);
    heartbeat.stop();
    expect(retries.length).toBeGreaterThanOrEqual(5);
    expect(retries.every((ms) => ms >= 0 && ms < 4_000)).toBe(true);
  });
});

describe('watchPresence', () => {
  it('delivers each status from the stream, and reconnects after the stream breaks', async () => {
    const status: LiveStatus = { userId: '7', state: 'ONLINE', online: true, lastSeen: '2026-11-22T10:00:00.000Z', statusText: null };
    let attempt = 0;
    const fetch = jest.fn(async (_url: string | URL | Request, init?: RequestInit) => {
      attempt++;
      if (attempt === 1) throw new TypeError('fetch failed');
      expect(JSON.parse(String(init!.body)).variables).toEqual({ ids: ['7'] });
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode(':\n\nevent: next\ndata: '));
          controller.enqueue(new TextEncoder().encode(`${JSON.stringify({ data: { presenceChanged: status } })}\n\n`));
          if (attempt === 2) controller.close(); // the server went away mid-stream
        },
      });
      return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } });
    });
    const received: LiveStatus[] = [];
    const connections: boolean[] = [];
    const watch = watchPresence(
      { url: 'http://pulse.test', ids: ['7'], fetch, maxBackoffMs: 20, onConnection: ({ connected }) => connections.push(connected) },
      (s) => received.push(s),
    );
    for (let i = 0; i < 100 && received.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    watch.close();
    expect(received).toEqual([status, status]);
    expect(connections.slice(0, 3)).toEqual([false, true, false]);
  });

  it('stops for good when the subscription is refused', async () => {
    const fetch = jest.fn(async () => {
      const refusal = `event: next\ndata: ${JSON.stringify({ errors: [{ message: 'Too many ids' }] })}\n\n`;
      return new Response(new Blob([refusal]).stream(), { status: 200 });
    });
    const errors: Array<string | undefined> = [];
    jest.useFakeTimers();
    try {
      const watch = watchPresence({ url: 'http://pulse.test', ids: ['1'], fetch, maxBackoffMs: 10, onConnection: (c) => errors.push(c.error) }, () => {});
      // Far longer than any retry could wait, on the fake clock.
      await jest.advanceTimersByTimeAsync(60_000);
      watch.close();
    } finally {
      jest.useRealTimers();
    }
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(errors).toContain('Too many ids');
  });
});
