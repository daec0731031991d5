/**
 * The API key lives in localStorage (one per browser profile and origin). `weft dev` prints a
 * link with the key in the URL fragment: a fragment is never sent to the server, and the page
 * removes it from the address bar (and history) as soon as it has read it.
 */
const STORAGE_KEY = 'weft.apiKey';

type Listener = () => void;
const listeners = new Set<Listener>();

/** Why the sign-in page shows: no key yet, or the API refused the one we have. */
export interface SignInReason {
  kind: 'none' | 'refused';
  message?: string;
}

let refused: SignInReason | null = null;

export function getApiKey(): string | null {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

export function setApiKey(key: string): void {
  localStorage.setItem(STORAGE_KEY, key.trim());
  refused = null;
  emit();
}

export function signOut(): void {
  localStorage.removeItem(STORAGE_KEY);
  refused = null;
  emit();
}

/** Called by the API client on a 401: the page switches to the sign-in form with the reason. */
export function keyRefused(message: string): void {
  if (refused?.message === message) return;
  refused = { kind: 'refused', message };
  emit();
}

export function signInReason(): SignInReason | null {
  if (refused) return refused;
  return getApiKey() ? null : { kind: 'none' };
}

export function subscribeAuth(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function emit(): void {
  for (const l of listeners) l();
}

/** `#key=weft_…` → stored, and the fragment removed without a new history entry. */
export function consumeKeyFragment(): void {
  const match = /^#key=([^&]+)/.exec(window.location.hash);
  if (!match?.[1]) return;
  setApiKey(decodeURIComponent(match[1]));
  window.history.replaceState(
    window.history.state,
    '',
    window.location.pathname + window.location.search,
  );
}
