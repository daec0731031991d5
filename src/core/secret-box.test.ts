import { describe, expect, it } from 'vitest';
import { generateSecretKey, parseSecretKey, SecretBox } from './secret-box.js';

const k1 = parseSecretKey(generateSecretKey(), 'k1');
const k2 = parseSecretKey(generateSecretKey(), 'k2');

describe('SecretBox', () => {
  it('seals with the current key (fresh IV each time) and opens with the key id', () => {
    const box = new SecretBox(k1);
    const a = box.seal('whsec_abc', 'hook_1');
    const b = box.seal('whsec_abc', 'hook_1');
    expect(a.keyId).toBe(k1.id);
    expect(a.sealed).not.toBe(b.sealed);
    expect(a.sealed).not.toContain('whsec_abc');
    expect(box.open(a.sealed, a.keyId, 'hook_1')).toBe('whsec_abc');
  });

  it('refuses another context, a changed byte, an unknown key, and sealing without a key', () => {
    const box = new SecretBox(k1);
    const { sealed, keyId } = box.seal('s', 'hook_1');
    expect(() => box.open(sealed, keyId, 'hook_2')).toThrow(/does not decrypt/);
    const parts = sealed.split('.');
    const ct = Buffer.from(parts[3]!, 'base64url');
    ct[0] = ct[0]! ^ 1;
    parts[3] = ct.toString('base64url');
    expect(() => box.open(parts.join('.'), keyId, 'hook_1')).toThrow(/does not decrypt/);
    expect(() => new SecretBox(k2).open(sealed, keyId, 'hook_1')).toThrow(
      new RegExp(`key ${keyId}, which is not configured: set it as WEFT_SECRET_KEY`),
    );
    expect(() => new SecretBox(undefined).seal('s', 'x')).toThrow(/set WEFT_SECRET_KEY/);
  });

  it('rotation: the new key seals, old and new both open', () => {
    const before = new SecretBox(k1).seal('s', 'h');
    const rotated = new SecretBox(k2, [k1]);
    expect(rotated.open(before.sealed, before.keyId, 'h')).toBe('s');
    expect(rotated.seal('s', 'h').keyId).toBe(k2.id);
    expect(rotated.canOpen(k1.id) && rotated.canOpen(k2.id)).toBe(true);
  });

  it('reads keys from the environment: hex or base64, previous ones comma-separated; a bad key names its variable', () => {
    const hex = generateSecretKey();
    const b64 = Buffer.from(generateSecretKey(), 'hex').toString('base64');
    const box = SecretBox.fromEnv({
      WEFT_SECRET_KEY: hex,
      WEFT_SECRET_KEY_PREVIOUS: `${b64}, ${hex}`,
    });
    expect(box.current?.id).toBe(parseSecretKey(hex, 'x').id);
    expect(box.canOpen(parseSecretKey(b64, 'x').id)).toBe(true);
    expect(SecretBox.fromEnv({}).canSeal).toBe(false);
    expect(() => SecretBox.fromEnv({ WEFT_SECRET_KEY: 'short' })).toThrow(
      /WEFT_SECRET_KEY is not a 32-byte key.*openssl rand -hex 32/,
    );
    expect(() => SecretBox.fromEnv({ WEFT_SECRET_KEY_PREVIOUS: 'zz' })).toThrow(
      /WEFT_SECRET_KEY_PREVIOUS is not a 32-byte key/,
    );
  });
});
