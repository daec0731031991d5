/**
 * Ids. A run-scoped id is `<prefix>_<tag><time><random>`: `tag` names the run location (2 chars,
 * see docs/scale.md), `time` is 10 Crockford base32 chars of milliseconds, `random` is 16 chars.
 * Within one process ids are strictly increasing (the random part is incremented inside a
 * millisecond), so `(created_at, id)` order and id order agree within a location.
 *
 * Control-plane ids use the same body without a location tag.
 */
import { randomBytes } from 'node:crypto';

/**
 * Crockford base32, lowercase: the one copy of the id alphabet. SQL's mint_id
 * (src/store/sql/location/mint_id.sql) gets it rendered in by the migrator (`{{id_alphabet}}`).
 */
export const ID_ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const ALPHABET = ID_ALPHABET;
const TAG_PATTERN = /^[0-9a-z]{2}$/;
const BODY_LENGTH = 26;

export type RunScopedPrefix = 'run' | 'sr' | 'dc' | 'wp';
export type ControlPrefix = 'org' | 'prj' | 'env' | 'key' | 'wfv' | 'sch' | 'hook';

let lastTime = -1;
let lastRandom: number[] = [];

function encodeTime(ms: number): string {
  let out = '';
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[ms % 32]! + out;
    ms = Math.floor(ms / 32);
  }
  return out;
}

/**
 * Random bytes are drawn 4 KiB at a time and handed out 16 per id: one `randomBytes(16)` per id
 * was a call into OpenSSL per step (about 20 µs of a chained step's client CPU, bench --cpu-prof).
 */
const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let poolOffset = POOL_BYTES;

function nextRandom(): number[] {
  if (poolOffset + 16 > pool.length) {
    pool = randomBytes(POOL_BYTES);
    poolOffset = 0;
  }
  const out = new Array<number>(16);
  for (let i = 0; i < 16; i++) out[i] = pool[poolOffset + i]! & 31;
  poolOffset += 16;
  return out;
}

function incrementRandom(digits: number[]): number[] {
  const out = digits.slice();
  for (let i = out.length - 1; i >= 0; i--) {
    if (out[i]! < 31) {
      out[i]! += 1;
      return out;
    }
    out[i] = 0;
  }
  return nextRandom(); // 32^16 ids in one millisecond: unreachable in practice
}

/** A time-ordered, monotonic 26-character body. */
export function mintIdBody(now: number = Date.now()): string {
  if (now <= lastTime) {
    lastRandom = incrementRandom(lastRandom);
    now = lastTime;
  } else {
    lastTime = now;
    lastRandom = nextRandom();
  }
  return encodeTime(now) + lastRandom.map((d) => ALPHABET[d]).join('');
}

export function assertLocationTag(tag: string): void {
  if (!TAG_PATTERN.test(tag)) {
    throw new Error(
      `run location tag "${tag}" is invalid: expected 2 characters of [0-9a-z], e.g. "a0"`,
    );
  }
}

export function mintRunScopedId(prefix: RunScopedPrefix, tag: string): string {
  return `${prefix}_${tag}${mintIdBody()}`;
}

export function mintControlId(prefix: ControlPrefix): string {
  return `${prefix}_${mintIdBody()}`;
}

const RUN_SCOPED = /^(run|sr|dc|wp)_([0-9a-z]{2})([0-9a-hjkmnp-tv-z]{26})$/;

/**
 * The location tag an id names, or `undefined` when the id is malformed. An id that is well formed
 * but names an unknown tag is the router's business (it goes to the default location).
 */
export function parseRunScopedId(id: string): { prefix: RunScopedPrefix; tag: string } | undefined {
  const match = RUN_SCOPED.exec(id);
  if (!match) return undefined;
  return { prefix: match[1] as RunScopedPrefix, tag: match[2]! };
}

/** Milliseconds encoded in an id body (for debugging and tests). */
export function idTime(id: string): number {
  const body = id.slice(id.length - BODY_LENGTH, id.length - 16);
  let ms = 0;
  for (const ch of body) ms = ms * 32 + ALPHABET.indexOf(ch);
  return ms;
}
