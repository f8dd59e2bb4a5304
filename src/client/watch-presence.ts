/**
 * watchPresence: live statuses in a browser (or any fetch-capable runtime), over
 * Pulse's event stream (GraphQL over Server-Sent Events at /graphql/stream).
 *
 *   const watch = watchPresence({ url, token, ids: ['42', '7'] }, (status) => {
 *     render(status.userId, status.state, status.lastSeen);
 *   });
 *   // ...
 *   watch.close();
 *
 * Without `ids`, it watches the users the token's user follows. The first events
 * are the current statuses; then one per change. When the stream breaks (network,
 * a server restarting), it reconnects with backoff and full jitter; the first
 * events after a reconnect are current statuses again, so nothing stays stale.
 */
import { fullJitter, retryAfterMs } from './backoff';

export type PresenceState = 'ONLINE' | 'AWAY' | 'BUSY' | 'OFFLINE';

export interface LiveStatus {
  userId: string;
  state: PresenceState;
  online: boolean;
  /** ISO-8601; null for never seen, or hidden from this viewer. */
  lastSeen: string | null;
  statusText: string | null;
  /** AWAY because idle rather than by choice (absent from servers that predate it). */
  idle?: boolean;
}

export interface WatchOptions {
  /** Pulse's base URL, e.g. https://pulse.example.com. */
  url: string;
  /** Bearer token (or a function returning the current one); none: an anonymous viewer. */
  token?: string | (() => string | undefined);
  /** Users to watch; omitted: the users the token's user follows. */
  ids?: string[];
  /** Longest wait between reconnects. */
  maxBackoffMs?: number;
  /** Told when the stream opens, breaks, or is refused (for a connection indicator). */
  onConnection?: (state: { connected: boolean; error?: string }) => void;
  fetch?: typeof fetch;
}

export interface Watch {
  close(): void;
}

const QUERY = `subscription ($ids: [ID!]) {
  presenceChanged(ids: $ids) { userId state online lastSeen statusText idle }
}`;

export function watchPresence(options: WatchOptions, onChange: (status: LiveStatus) => void): Watch {
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const backoff = fullJitter(500, options.maxBackoffMs ?? 30_000);
  let closed = false;
  let failures = 0;
  let abort: AbortController | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;

  async function connect(): Promise<void> {
    abort = new AbortController();
    let waitMs = 0;
    try {
      const token = typeof options.token === 'function' ? options.token() : options.token;
      const response = await doFetch(`${options.url.replace(/\/$/, '')}/graphql/stream`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'text/event-stream',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify({ query: QUERY, variables: options.ids ? { ids: options.ids } : {} }),
        signal: abort.signal,
      });
      if (!response.ok || !response.body) {
        waitMs = retryAfterMs(response.headers.get('retry-after'));
        throw new Error(`HTTP ${response.status}`);
      }
      options.onConnection?.({ connected: true });
      await readEvents(response.body, (event, data) => {
        if (event !== 'next') return;
        const payload = JSON.parse(data) as { data?: { presenceChanged?: LiveStatus }; errors?: Array<{ message: string }> };
        if (payload.errors?.length) throw new RefusedError(payload.errors[0]!.message);
        if (payload.data?.presenceChanged) {
          failures = 0;
          onChange(payload.data.presenceChanged);
        }
      });
      throw new Error('stream ended');
    } catch (error) {
      if (closed) return;
      const message = error instanceof Error ? error.message : String(error);
      options.onConnection?.({ connected: false, error: message });
      // A refused subscription (bad ids, say) will be refused again: stop.
      if (error instanceof RefusedError) return;
      timer = setTimeout(connect, Math.max(waitMs, backoff.delay(failures++)));
    }
  }

  void connect();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      abort?.abort();
    },
  };
}

class RefusedError extends Error {}

// Private: the Server-Sent Events wire format, "event: x\ndata: y\n\n" blocks.
async function readEvents(body: ReadableStream<Uint8Array>, onEvent: (event: string, data: string) => void): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
      }
      if (data.length > 0) onEvent(event, data.join('\n'));
    }
  }
}
