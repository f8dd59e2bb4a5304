/**
 * The presence bus: how one Pulse process tells every other one (and itself)
 * "these users' presence may have changed". Messages carry user ids only, never
 * statuses: each subscriber re-reads what its viewer may see, so privacy rules
 * are applied in one place and nothing leaks through the bus.
 *
 * Two implementations share the contract: PostgreSQL LISTEN/NOTIFY (nothing
 * extra to run) and Redis pub/sub (scales past NOTIFY's single queue).
 */
import type { UserId } from '../presence/user-id';

export interface PresenceBus {
  /** For logs: which bus, where. */
  readonly description: string;
  /**
   * The channel a heartbeat statement may NOTIFY itself, in the same statement
   * that writes (PostgreSQL bus only); null when events are published with
   * {@link publish}.
   */
  readonly notifyChannel: string | null;
  /** Tells every process, this one included, that these users may have changed. */
  publish(userIds: readonly UserId[]): Promise<void>;
  /**
   * Calls `onChange` with the ids of every message from any process, and
   * `onResync` after the bus connection was lost and is back: messages may have
   * been missed, so whoever listens should re-read everything they watch.
   */
  listen(onChange: (userIds: UserId[]) => void, onResync: () => void): void;
  /** Whether the listening connection is up now (messages from other processes arrive). */
  readonly connected: boolean;
  close(): Promise<void>;
}

/** Largest NOTIFY payload PostgreSQL accepts is 8000 bytes; stay well under it. */
export const MAX_MESSAGE_BYTES = 7000;

/** Splits ids into comma-joined messages of at most {@link MAX_MESSAGE_BYTES}. */
export function toMessages(userIds: readonly UserId[]): string[] {
  const messages: string[] = [];
  let current = '';
  for (const id of userIds) {
    if (current.length + id.length + 1 > MAX_MESSAGE_BYTES) {
      messages.push(current);
      current = '';
    }
    current = current ? `${current},${id}` : id;
  }
  if (current) messages.push(current);
  return messages;
}

/** The ids of one message; anything that is not an id is dropped. */
export function fromMessage(message: string): UserId[] {
  return message.split(',').filter((id) => /^[1-9][0-9]{0,18}$/.test(id)) as UserId[];
}
