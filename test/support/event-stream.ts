/**
 * A minimal GraphQL-over-SSE subscriber for tests: opens /graphql/stream with
 * fetch, parses the `next` / `complete` events, and lets a test wait for the
 * event it expects.
 */
export interface StreamEvent {
  data?: Record<string, any> | null;
  errors?: Array<{ message: string; extensions?: { code?: string } }>;
}

export interface Subscription {
  status: number;
  /** The response's headers (e.g. x-pulse-worker: which worker of a cluster holds the stream). */
  headers: Headers;
  events: StreamEvent[];
  /** Resolves with the first event (already received or still to come) that matches. */
  next(match: (event: StreamEvent) => boolean, timeoutMs?: number): Promise<StreamEvent>;
  completed: Promise<void>;
  close(): void;
}

export async function subscribe(
  url: string,
  query: string,
  options: { variables?: unknown; token?: string } = {},
): Promise<Subscription> {
  const abort = new AbortController();
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'text/event-stream',
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    },
    body: JSON.stringify({ query, variables: options.variables }),
    signal: abort.signal,
  });
  const events: StreamEvent[] = [];
  const waiters: Array<{ match: (e: StreamEvent) => boolean; resolve: (e: StreamEvent) => void }> = [];
  let complete!: () => void;
  const completed = new Promise<void>((resolve) => (complete = resolve));

  const received = (event: StreamEvent) => {
    events.push(event);
    for (const w of waiters.filter((w) => w.match(event))) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(event);
    }
  };

  void (async () => {
    // Refused before the stream began: one JSON answer, seen as one event.
    if (!response.body || !response.headers.get('content-type')?.startsWith('text/event-stream')) {
      const text = await response.text().catch(() => '');
      received(text ? (JSON.parse(text) as StreamEvent) : {});
      complete();
      return;
    }
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event === 'next' && data) {
            received(JSON.parse(data) as StreamEvent);
          } else if (event === 'complete') {
            complete();
          }
        }
      }
    } catch {
      /* aborted */
    }
    complete();
  })();

  return {
    status: response.status,
    headers: response.headers,
    events,
    completed,
    next(match, timeoutMs = 15_000) {
      const seen = events.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching event within ${timeoutMs} ms; got ${JSON.stringify(events)}`)), timeoutMs);
        waiters.push({
          match,
          resolve: (e) => {
            clearTimeout(timer);
            resolve(e);
          },
        });
      });
    },
    close: () => abort.abort(),
  };
}
