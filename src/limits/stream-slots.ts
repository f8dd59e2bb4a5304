/**
 * Places for open event streams: at most `perClient` for one client and `max`
 * for the whole process.
 *
 * A stream holds memory for as long as it is open (what it watches, what it was
 * last sent), so one client opening thousands would exhaust the process, and
 * many clients together can too. The per-client cap is answered 429 (that client
 * should slow down), the process cap 503 (this instance is full: another may
 * not be). Each place is given back exactly once, when its stream ends.
 */

export type SlotRefusal = 'client' | 'process';

export type SlotDecision = { granted: true; release: () => void } | { granted: false; refusal: SlotRefusal };

export class StreamSlots {
  readonly #perClient: number;
  readonly #max: number;
  readonly #byClient = new Map<string, number>();
  #open = 0;

  constructor(limits: { perClient: number; max: number }) {
    this.#perClient = limits.perClient;
    this.#max = limits.max;
  }

  /** The most streams one client may hold. */
  get perClient(): number {
    return this.#perClient;
  }

  /** Streams open now. */
  get open(): number {
    return this.#open;
  }

  /** A place for one more stream of `client`, or which cap refuses it. */
  acquire(client: string): SlotDecision {
    const held = this.#byClient.get(client) ?? 0;
    if (held >= this.#perClient) return { granted: false, refusal: 'client' };
    if (this.#open >= this.#max) return { granted: false, refusal: 'process' };
    this.#byClient.set(client, held + 1);
    this.#open++;
    let released = false;
    return {
      granted: true,
      release: () => {
        if (released) return;
        released = true;
        this.#open--;
        const left = (this.#byClient.get(client) ?? 1) - 1;
        if (left === 0) this.#byClient.delete(client);
        else this.#byClient.set(client, left);
      },
    };
  }
}
