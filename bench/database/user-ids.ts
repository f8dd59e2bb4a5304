/**
 * The users of the database bench: rows 1..N loaded into pulse, and the ids each
 * measurement picks from them.
 */
import type pg from 'pg';
import type { UserId } from '../../src/presence/user-id';
import { count } from './format';

/**
 * Adds users 1 to `to`, in statements of a million rows (so progress shows
 * and no one transaction grows with the table), then VACUUM ANALYZE: the visibility
 * map and hint bits are set and the planner knows the size, as on a table that has
 * lived for a while, so the first reads measured do not pay for the load.
 */
export async function loadRows(client: pg.Client, to: number, progress: (line: string) => void): Promise<void> {
  const started = Date.now();
  for (let low = 0; low < to; low += 1_000_000) {
    const high = Math.min(to, low + 1_000_000);
    await client.query('insert into pulse (user_id, last_hb) select g, now() from generate_series($1::bigint, $2::bigint) as g', [low + 1, high]);
    progress(`  loaded ${count(high)} / ${count(to)} rows`);
  }
  await client.query('vacuum analyze pulse');
  progress(`loaded ${count(to)} rows and vacuumed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

/**
 * A batch's ids: `size` users spread evenly over 1..rows from a random offset,
 * ascending. Distinct (an upsert may not touch a row twice) and each on a page of
 * its own, the widest spread a batch of random users can have.
 */
export function spreadBatch(rows: number, size: number): UserId[] {
  const stride = Math.floor(rows / size);
  const offset = randomInt(stride) + 1;
  return Array.from({ length: size }, (_, k) => String(offset + k * stride) as UserId);
}

/** `size` random existing ids (repeats allowed, as a real screen may show one user twice). */
export function randomIds(rows: number, size: number): UserId[] {
  return Array.from({ length: size }, () => String(randomInt(rows) + 1) as UserId);
}

/**
 * Users 1..rows in a random order: each user's place in a heartbeat cycle, as
 * clients that started at random moments send theirs.
 */
export function shuffledUsers(rows: number): Uint32Array {
  const order = new Uint32Array(rows);
  for (let i = 0; i < rows; i++) order[i] = i + 1;
  for (let i = rows - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

export function randomInt(below: number): number {
  return Math.floor(Math.random() * below);
}
