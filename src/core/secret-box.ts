/**
 * Secrets at rest: AES-256-GCM with keys from the environment, several keys at once so that a key
 * can be rotated without downtime. Pure (node:crypto only); the store decides what to seal.
 *
 * Glossary. A *key* is 32 random bytes, given as 64 hex digits or base64 (`WEFT_SECRET_KEY`). Its
 * *key id* is the first 12 hex digits of SHA-256("weft-secret-key:" + key): stored beside each
 * ciphertext, so a reader knows which key opens it without trying them all, and never enough to
 * recover the key. A *sealed* value is `v1.<iv>.<tag>.<ciphertext>` (base64url, 12-byte IV, 16-byte
 * tag). The *context* (for webhooks: the webhook id) is authenticated as additional data, so a
 * ciphertext copied onto another row does not open there.
 *
 * Rotation: set the new key as `WEFT_SECRET_KEY` and the old one as `WEFT_SECRET_KEY_PREVIOUS`
 * (comma-separated for several); both open, only the new one seals. Once every value is re-sealed
 * (`weft secrets rotate`, or as each is read) the previous key can be removed.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { WeftError } from './errors.js';

export interface SecretKey {
  id: string;
  key: Buffer;
}

export const SECRET_KEY_ENV = 'WEFT_SECRET_KEY';
export const PREVIOUS_SECRET_KEY_ENV = 'WEFT_SECRET_KEY_PREVIOUS';
const VERSION = 'v1';

/** A fresh key as 64 hex digits (what `weft dev` keeps in its data folder). */
export function generateSecretKey(): string {
  return randomBytes(32).toString('hex');
}

/** Parse a key given as 64 hex digits or base64 of 32 bytes; `source` names where it came from. */
export function parseSecretKey(value: string, source: string): SecretKey {
  const text = value.trim();
  let key: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(text)) key = Buffer.from(text, 'hex');
  else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(text)) key = Buffer.from(text, 'base64');
  if (key?.length !== 32) {
    throw new WeftError(
      'invalid_config',
      `${source} is not a 32-byte key: expected 64 hex digits or base64 of 32 bytes, found ${text.length} characters. Generate one with \`openssl rand -hex 32\`.`,
      { details: { source, length: text.length } },
    );
  }
  const id = createHash('sha256').update('weft-secret-key:').update(key).digest('hex').slice(0, 12);
  return { id, key };
}

export class SecretBox {
  private readonly byId = new Map<string, SecretKey>();

  /**
   * @param current the key that seals; undefined: nothing can be sealed (`canSeal` is false)
   * @param previous keys that still open values sealed before a rotation
   */
  constructor(
    readonly current: SecretKey | undefined,
    previous: readonly SecretKey[] = [],
  ) {
    for (const k of previous) this.byId.set(k.id, k);
    if (current) this.byId.set(current.id, current);
  }

  /**
   * The keys in `WEFT_SECRET_KEY` and `WEFT_SECRET_KEY_PREVIOUS`; without the first, a box that
   * opens with the previous keys only and refuses to seal. Throws `invalid_config` on a malformed key.
   */
  static fromEnv(env: Record<string, string | undefined>, fallback?: string): SecretBox {
    const currentText = env[SECRET_KEY_ENV]?.trim() || fallback;
    const current =
      currentText === undefined
        ? undefined
        : parseSecretKey(currentText, env[SECRET_KEY_ENV]?.trim() ? SECRET_KEY_ENV : 'the dev key');
    const previous = (env[PREVIOUS_SECRET_KEY_ENV] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '')
      .map((s) => parseSecretKey(s, PREVIOUS_SECRET_KEY_ENV));
    return new SecretBox(current, previous);
  }

  get canSeal(): boolean {
    return this.current !== undefined;
  }

  /** Whether a value sealed with `keyId` can be opened here. */
  canOpen(keyId: string): boolean {
    return this.byId.has(keyId);
  }

  /** Seal `plaintext` with the current key, bound to `context`. Throws when there is no key. */
  seal(plaintext: string, context: string): { keyId: string; sealed: string } {
    const current = this.current;
    if (!current) {
      throw new WeftError(
        'invalid_config',
        `No key to encrypt secrets with: set ${SECRET_KEY_ENV} (64 hex digits, \`openssl rand -hex 32\`).`,
      );
    }
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', current.key, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    const sealed = [VERSION, iv, tag, ciphertext]
      .map((p) => (typeof p === 'string' ? p : p.toString('base64url')))
      .join('.');
    return { keyId: current.id, sealed };
  }

  /**
   * Open a value sealed with the key `keyId` for `context`. Throws `invalid_config` when that key
   * is not configured, and when the value does not authenticate (wrong key, wrong context, or
   * changed bytes) — the message names the key id, never the value.
   */
  open(sealed: string, keyId: string, context: string): string {
    const key = this.byId.get(keyId);
    if (!key) {
      throw new WeftError(
        'invalid_config',
        `A secret was encrypted with key ${keyId}, which is not configured: set it as ${SECRET_KEY_ENV} or in ${PREVIOUS_SECRET_KEY_ENV} (configured: ${[...this.byId.keys()].join(', ') || 'none'}).`,
        { details: { keyId, configured: [...this.byId.keys()] } },
      );
    }
    const parts = sealed.split('.');
    try {
      if (parts.length !== 4 || parts[0] !== VERSION) throw new Error('format');
      const [iv, tag, ciphertext] = parts.slice(1).map((p) => Buffer.from(p, 'base64url')) as [
        Buffer,
        Buffer,
        Buffer,
      ];
      const decipher = createDecipheriv('aes-256-gcm', key.key, iv);
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
    } catch {
      throw new WeftError(
        'invalid_config',
        `A secret sealed with key ${keyId} for ${context} does not decrypt: the value was changed or belongs to another row.`,
        { details: { keyId, context } },
      );
    }
  }
}
