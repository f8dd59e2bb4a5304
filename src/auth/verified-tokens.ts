/**
 * Tokens this process verified a moment ago, so that a client sending the same
 * token with every heartbeat (every ~10 s) does not have it verified every time:
 * decoding, HMAC and claim checks were about a tenth of a heartbeat's CPU.
 *
 * Keyed by the raw token (the exact bytes that were verified, signature
 * included), never by a part of it. Only a successful verification is kept, with
 * the user id it proved, until the earliest of: the token's `exp`, the end of
 * its allowed age (`iat` + JWT_MAX_TOKEN_AGE_SECONDS), and {@link MAX_KEPT_MS}
 * after the verification (which bounds how long a key the identity provider
 * withdrew keeps working; its key set is itself cached longer, 10 minutes by
 * default). A token is verified afresh when it is not here; a refusal is never
 * kept, so its reason is always current.
 *
 * Bounded: at most `capacity` tokens, the least recently used leaving first. To
 * help, the capacity must hold the distinct tokens one process sees within a
 * heartbeat interval (its heartbeats per second times the interval); a smaller
 * one mostly evicts tokens before they come back.
 */
import type { UserId } from '../presence/user-id';

/** How long a verification is trusted at most, whatever the token says. */
export const MAX_KEPT_MS = 60_000;

export class VerifiedTokens {
  readonly #capacity: number;
  // Private: a Map iterates in insertion order; a hit is moved to the end, so the
  // first key is always the least recently used.
  readonly #entries = new Map<string, { userId: UserId; validUntilMs: number }>();

  /** `capacity`: most tokens kept; 0 keeps none. */
  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /** The user id `token` proved, if it was verified and is still valid at `nowMs`. */
  get(token: string, nowMs: number): UserId | undefined {
    const entry = this.#entries.get(token);
    if (!entry) return undefined;
    this.#entries.delete(token);
    if (nowMs >= entry.validUntilMs) return undefined;
    this.#entries.set(token, entry);
    return entry.userId;
  }

  /**
   * Keeps what a successful verification at `nowMs` proved. `exp` and
   * `ageLimit` (`iat` + the allowed age) are in seconds, as in the token; absent
   * when the token or the rules set none.
   */
  add(token: string, userId: UserId, nowMs: number, claims: { exp?: number; ageLimit?: number }): void {
    if (this.#capacity === 0) return;
    let validUntilMs = nowMs + MAX_KEPT_MS;
    if (claims.exp !== undefined) validUntilMs = Math.min(validUntilMs, claims.exp * 1000);
    if (claims.ageLimit !== undefined) validUntilMs = Math.min(validUntilMs, claims.ageLimit * 1000);
    if (validUntilMs <= nowMs) return;
    this.#entries.delete(token);
    this.#entries.set(token, { userId, validUntilMs });
    if (this.#entries.size > this.#capacity) this.#entries.delete(this.#entries.keys().next().value!);
  }

  /** Tokens kept now. */
  get size(): number {
    return this.#entries.size;
  }
}
