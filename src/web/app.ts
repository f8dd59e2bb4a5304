/**
 * The live page served at /: sign up (or paste a token), find and follow people,
 * see their dots turn green and grey with "last seen", set your own status and
 * privacy. Built only on Pulse's public API and its browser client (src/client):
 * what any frontend could do.
 */
import { startHeartbeat, watchPresence, type Heartbeat, type LiveStatus, type Watch } from '../client';

declare global {
  interface Window {
    PULSE_CONFIG: { heartbeatIntervalMs: number };
  }
}

interface Person {
  id: string;
  name: string;
}

const TOKEN_KEY = 'pulse-token';
const base = window.location.origin;
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

let heartbeat: Heartbeat | undefined;
let watch: Watch | undefined;
let me: Person | undefined;
let following: Person[] = [];
const statuses = new Map<string, LiveStatus>();

// Private: one GraphQL request; throws the first error's message.
async function gql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: Array<{ message: string }> };
  if (body.errors?.length) throw new Error(body.errors[0]!.message);
  return body.data as T;
}

async function signIn(token: string): Promise<void> {
  sessionStorage.setItem(TOKEN_KEY, token);
  const { me: who } = await gql<{ me: Person | null }>('{ me { id name } }');
  if (!who) {
    sessionStorage.removeItem(TOKEN_KEY);
    throw new Error('That token belongs to no signed-up user');
  }
  me = who;
  $('me-name').textContent = who.name;
  $('signin').hidden = true;
  $('app').hidden = false;
  heartbeat = startHeartbeat({
    url: base,
    token: () => sessionStorage.getItem(TOKEN_KEY) ?? '',
    intervalMs: window.PULSE_CONFIG.heartbeatIntervalMs,
    // ?idleAfterMs=... shortens the idle delay (for trying it out, and the browser test).
    idleAfterMs: Number(new URLSearchParams(window.location.search).get('idleAfterMs')) || undefined,
    onIdleChange: () => void refreshMe(),
    onResult: (result) => {
      if (result.ok) void refreshMe();
    },
  });
  await refreshFollowing();
}

function signOut(): void {
  heartbeat?.stop();
  watch?.close();
  sessionStorage.removeItem(TOKEN_KEY);
  window.location.reload();
}

async function refreshMe(): Promise<void> {
  const { status } = await gql<{ status: LiveStatus }>('query ($id: ID!) { status(id: $id) { userId state online lastSeen statusText idle } }', { id: me!.id });
  $('me-dot').className = `dot ${status.state}${status.idle ? ' idle' : ''}`;
  $('me-detail').textContent = describe(status);
}

async function refreshFollowing(): Promise<void> {
  ({ following } = await gql<{ following: Person[] }>('{ following { id name } }'));
  // Watch exactly the people followed now: without ids, the stream watches the
  // viewer's follows as they are when it opens.
  watch?.close();
  statuses.clear();
  watch = watchPresence(
    { url: base, token: () => sessionStorage.getItem(TOKEN_KEY) ?? undefined, onConnection: ({ connected }) => ($('connection').textContent = connected ? '● live' : '○ reconnecting…') },
    (status) => {
      statuses.set(status.userId, status);
      renderFollowing();
    },
  );
  renderFollowing();
}

function renderFollowing(): void {
  const list = $('following');
  list.replaceChildren(
    ...following.map((person) => {
      const status = statuses.get(person.id);
      const item = document.createElement('li');
      item.dataset.testid = `following-${person.name}`;
      item.dataset.state = status?.state ?? 'UNKNOWN';
      item.dataset.idle = String(status?.idle ?? false);
      item.innerHTML = `<span class="dot ${status?.state ?? ''}${status?.idle ? ' idle' : ''}"></span><span class="name"></span><span class="detail"></span>`;
      item.querySelector('.name')!.textContent = person.name;
      item.querySelector('.detail')!.textContent = status ? describe(status) : '…';
      return item;
    }),
  );
  $('following-empty').hidden = following.length > 0;
}

async function search(query: string): Promise<void> {
  const { searchUsers } = await gql<{ searchUsers: { edges: Array<{ node: Person }> } }>(
    'query ($q: String!) { searchUsers(query: $q, first: 20) { edges { node { id name } } } }',
    { q: query },
  );
  $('results').replaceChildren(
    ...searchUsers.edges
      .map((edge) => edge.node)
      .filter((person) => person.id !== me?.id)
      .map((person) => {
        const item = document.createElement('li');
        const name = document.createElement('span');
        name.className = 'name';
        name.textContent = person.name;
        const button = document.createElement('button');
        const followed = following.some((f) => f.id === person.id);
        button.textContent = followed ? 'Unfollow' : 'Follow';
        button.dataset.testid = `follow-${person.name}`;
        button.onclick = async () => {
          await gql(followed ? 'mutation ($id: ID!) { unfollow(userId: $id) }' : 'mutation ($id: ID!) { follow(userId: $id) { id } }', { id: person.id });
          await refreshFollowing();
          await search(query);
        };
        item.append(name, button);
        return item;
      }),
  );
}

/** "online", "away: lunch", "last seen 2 min ago", "offline". */
function describe(status: LiveStatus): string {
  const text = status.statusText ? `: ${status.statusText}` : '';
  switch (status.state) {
    case 'ONLINE':
      return `online${text}`;
    case 'AWAY':
      return status.idle ? `away (idle)${text}` : `away${text}`;
    case 'BUSY':
      return `busy${text}`;
    case 'OFFLINE':
      return status.lastSeen ? `last seen ${ago(new Date(status.lastSeen))}` : 'offline';
  }
}

function ago(when: Date): string {
  const seconds = Math.max(0, Math.round((Date.now() - when.getTime()) / 1000));
  if (seconds < 60) return 'just now';
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return when.toLocaleDateString();
}

function onSubmit(id: string, handle: () => Promise<void>): void {
  $(id).addEventListener('submit', (event) => {
    event.preventDefault();
    handle().catch((error: Error) => {
      $('signin-error').textContent = error.message;
      if (!$('app').hidden) alert(error.message);
    });
  });
}

onSubmit('signup-form', async () => {
  const name = $<HTMLInputElement>('signup-name').value;
  const { createUser } = await gql<{ createUser: { token: string } }>('mutation ($name: String!) { createUser(name: $name) { token } }', { name });
  await signIn(createUser.token);
});
onSubmit('token-form', () => signIn($<HTMLInputElement>('token-input').value.trim()));
onSubmit('search-form', () => search($<HTMLInputElement>('search-input').value));
onSubmit('status-form', async () => {
  const text = $<HTMLInputElement>('status-text').value || null;
  await gql('mutation ($s: ManualStatus!, $t: String) { setStatus(status: $s, text: $t) { state } }', { s: $<HTMLSelectElement>('status-select').value, t: text });
  await refreshMe();
});
onSubmit('privacy-form', async () => {
  await gql('mutation ($v: Visibility, $l: Boolean) { updatePrivacy(visibility: $v, showLastSeen: $l) { visibility } }', {
    v: $<HTMLSelectElement>('visibility-select').value,
    l: $<HTMLInputElement>('show-last-seen').checked,
  });
});
$('signout').addEventListener('click', signOut);
// "last seen 2 min ago" ages by itself.
setInterval(renderFollowing, 15_000);

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) signIn(saved).catch(() => sessionStorage.removeItem(TOKEN_KEY));
