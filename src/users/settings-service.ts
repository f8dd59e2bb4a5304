/**
 * A user's own presence settings: the manual status (away, busy, invisible, with
 * text and expiry) and privacy. They take effect in the status read, which joins
 * them (src/presence/visible-status.ts has the rules).
 *
 * Users who exist only as ids in tokens may change them too: nothing here needs
 * a users row.
 */
import type { Database } from '../db/database';
import type { Visibility } from '../presence/visibility';
import type { UserId } from '../presence/user-id';
import type { ManualStatus } from '../presence/user-status';
import { parseText } from './parse-text';
import { findPrivacy, upsertManualStatus, upsertPrivacy, type PrivacyRow } from './settings-repository';

/** The longest status text, in characters. */
export const MAX_STATUS_TEXT = 140;

/** Who may see a user's presence, and whether others see when they were last seen. */
export interface PrivacySettings {
  visibility: Visibility;
  showLastSeen: boolean;
}

export class SettingsService {
  readonly #db: Database;
  readonly #onPresenceChange: (userIds: UserId[]) => void;

  /**
   * `onPresenceChange` is told of every change that alters what others see of a
   * user (live presence re-reads them for its subscribers).
   */
  constructor(db: Database, options: { onPresenceChange?: (userIds: UserId[]) => void } = {}) {
    this.#db = db;
    this.#onPresenceChange = options.onPresenceChange ?? (() => {});
  }

  /**
   * Sets `userId`'s manual status, replacing the previous one with its text and
   * expiry. Text is trimmed (empty: none) and at most {@link MAX_STATUS_TEXT}
   * characters. After `expiresAt` the status is AUTO again; one already past
   * leaves it AUTO at once.
   */
  async setStatus(userId: UserId, status: ManualStatus, text: string | null, expiresAt: Date | null): Promise<void> {
    // Blank text is no text, not a mistake.
    const trimmed = text?.trim() ? parseText('text', text, MAX_STATUS_TEXT) : null;
    await upsertManualStatus(this.#db, userId, { status, text: trimmed, expiresAt });
    this.#onPresenceChange([userId]);
  }

  /** Changes the privacy settings given (null: unchanged); returns them all. */
  async updatePrivacy(userId: UserId, visibility: Visibility | null, showLastSeen: boolean | null): Promise<PrivacySettings> {
    const privacy = fromRow(await upsertPrivacy(this.#db, userId, { visibility, showLastSeen }));
    this.#onPresenceChange([userId]);
    return privacy;
  }

  /** `userId`'s privacy settings (the defaults until they change them). */
  async privacy(userId: UserId): Promise<PrivacySettings> {
    return fromRow(await findPrivacy(this.#db, userId));
  }
}

// Private: rows stay in the repository's words; callers get the domain's.
function fromRow(row: PrivacyRow): PrivacySettings {
  return { visibility: row.visibility, showLastSeen: row.show_last_seen };
}
