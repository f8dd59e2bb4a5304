/**
 * Who may see a user's presence, as the user chose it (their privacy setting):
 *  - EVERYONE: any viewer, anonymous ones included (the default);
 *  - CONTACTS: the users they follow ("my contacts are the users I follow");
 *  - NOBODY: no one but themself.
 * The rule that applies it lives in visible-status.ts.
 */
export type Visibility = 'EVERYONE' | 'CONTACTS' | 'NOBODY';
