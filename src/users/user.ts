/**
 * A user who signed up: an id, a name, when they joined. Their presence is a
 * separate matter (PresenceService), looked up by the same id.
 */
import type { UserId } from '../presence/user-id';
import type { UserRow } from './user-repository';

export interface User {
  id: UserId;
  name: string;
  createdAt: Date;
}

export function userFromRow(row: UserRow): User {
  return { id: row.id as UserId, name: row.name, createdAt: row.created_at };
}
