/**
 * Run state drafts. Step code gets a deep copy of the run state; when the attempt succeeds the
 * top-level keys it changed become a patch (set + delete) that commits with the output. A failed
 * attempt's draft is simply dropped, so the next attempt and other steps never see it.
 */
import { encodeJson } from '../core/json.js';

export interface StatePatch {
  /** JSON text of `{ key: value }` for changed or added keys, or null. */
  setText: string | null;
  delete: string[] | null;
}

/**
 * The draft is a null-prototype object: `ctx.state['__proto__'] = v` (or `constructor`, or
 * `toString`) creates an own key like any other, stored and returned as a plain key, instead of
 * swapping the draft's prototype and vanishing. Nested objects keep the ordinary prototype: an
 * assignment to `obj.__proto__` there changes that object's prototype and is refused when the
 * attempt commits (core/json.ts: not plain data), never silently dropped.
 */
export function draftState(state: Record<string, unknown>): Record<string, unknown> {
  // spread and defineProperty semantics (not [[Set]]): an own `__proto__` key of the stored state
  // stays an own key of the draft
  const draft = Object.create(null) as Record<string, unknown>;
  for (const [key, value] of Object.entries(structuredClone(state)))
    Object.defineProperty(draft, key, {
      value,
      writable: true,
      enumerable: true,
      configurable: true,
    });
  return draft;
}

/** The draft of a step that never read or set ctx.state: no patch, nothing to compare. */
export const STATE_UNTOUCHED: unique symbol = Symbol('state untouched');

const own = (o: object, key: string): boolean => Object.prototype.hasOwnProperty.call(o, key);

export function computeStatePatch(
  base: Record<string, unknown>,
  draft: unknown,
  what: string,
  maxBytes: number,
): StatePatch {
  if (draft === STATE_UNTOUCHED) return { setText: null, delete: null };
  if (typeof draft !== 'object' || draft === null || Array.isArray(draft)) {
    encodeJson(draft, {
      what: `${what} ctx.state`,
      root: 'ctx.state',
      maxBytes,
      code: 'invalid_output',
    });
    return { setText: null, delete: Object.keys(base) };
  }
  const next = draft as Record<string, unknown>;
  // null prototype: a `__proto__` key is data here, not the prototype setter
  const set = Object.create(null) as Record<string, unknown>;
  let changed = false;
  for (const key of Object.keys(next)) {
    const value = next[key];
    if (value === undefined) continue;
    // own keys only: `constructor` or `toString` are inherited by every object, not state
    if (!own(base, key) || JSON.stringify(value) !== JSON.stringify(base[key])) {
      set[key] = value;
      changed = true;
    }
  }
  const deleted = Object.keys(base).filter((key) => !own(next, key) || next[key] === undefined);
  const setText = changed
    ? encodeJson(set, {
        what: `${what} ctx.state`,
        root: 'ctx.state',
        maxBytes,
        code: 'invalid_output',
      }).text
    : null;
  return { setText, delete: deleted.length > 0 ? deleted : null };
}
