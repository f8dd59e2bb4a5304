/**
 * Waiting for something that happens on its own time (a backend gone, a replica
 * caught up, a log line written), without a fixed sleep.
 */

/**
 * Calls `attempt` until it returns something other than `undefined` or `false`
 * (a throw counts as not yet), and resolves with that. Fails naming `what` once
 * `limitMs` have passed.
 *
 * @example await eventually('the replica to serve reads', () => state() === 'serving');
 */
export async function eventually<T>(
  what: string,
  attempt: () => T | undefined | false | Promise<T | undefined | false>,
  limitMs = 10_000,
): Promise<T> {
  for (const started = Date.now(); Date.now() - started < limitMs; ) {
    const value = await Promise.resolve()
      .then(attempt)
      .catch(() => undefined);
    if (value !== undefined && value !== false) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`gave up waiting for ${what} (${limitMs} ms)`);
}
