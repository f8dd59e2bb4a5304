/**
 * Calls between the primary and its workers over node:cluster's IPC channel:
 * one side asks (`call`), the other answers (`answer`), matched by an id.
 *
 * The channel also carries messages Pulse does not own (node:cluster's own,
 * prom-client's when used), so every Pulse message is tagged and anything else is
 * left alone.
 */

/** The end of an IPC channel: `process` in a worker, a cluster.Worker in the primary. */
export interface Channel {
  /** With a callback, a closed channel is reported to it rather than as an 'error' event that would crash the process. */
  send(message: unknown, callback: (error: Error | null) => void): unknown;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

interface CallMessage {
  pulse: 'call';
  id: number;
  kind: string;
}

interface ReplyMessage {
  pulse: 'reply';
  id: number;
  result?: unknown;
  error?: string;
}

function isCall(message: unknown): message is CallMessage {
  return typeof message === 'object' && message !== null && (message as CallMessage).pulse === 'call';
}

function isReply(message: unknown): message is ReplyMessage {
  return typeof message === 'object' && message !== null && (message as ReplyMessage).pulse === 'reply';
}

let nextId = 1;

/**
 * Asks the other end to run its `kind` handler; resolves with what it returns.
 * Rejects after `timeoutMs` (a process that died or hangs never answers) or when
 * the channel is closed.
 */
export function call<T>(channel: Channel, kind: string, timeoutMs: number): Promise<T> {
  const id = nextId++;
  return new Promise<T>((resolve, reject) => {
    const listener = (message: unknown) => {
      if (!isReply(message) || message.id !== id) return;
      done();
      if (message.error !== undefined) reject(new Error(message.error));
      else resolve(message.result as T);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`no answer to "${kind}" within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      channel.off('message', listener);
    };
    channel.on('message', listener);
    channel.send({ pulse: 'call', id, kind } satisfies CallMessage, (error) => {
      if (!error) return;
      done();
      reject(error);
    });
  });
}

/** Answers the other end's calls with `handlers[kind]()`; returns a function that stops answering. */
export function answer(channel: Channel, handlers: Record<string, () => Promise<unknown>>): () => void {
  const listener = (message: unknown) => {
    if (!isCall(message)) return;
    const handler = handlers[message.kind];
    // A channel closed while answering means the asker is gone: nobody to tell.
    const reply = (body: Omit<ReplyMessage, 'pulse' | 'id'>) =>
      channel.send({ pulse: 'reply', id: message.id, ...body } satisfies ReplyMessage, () => {});
    if (!handler) return reply({ error: `unknown call "${message.kind}"` });
    handler().then(
      (result) => reply({ result }),
      (error: unknown) => reply({ error: error instanceof Error ? error.message : String(error) }),
    );
  };
  channel.on('message', listener);
  return () => channel.off('message', listener);
}
