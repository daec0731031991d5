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

export function draftState(state: Record<string, unknown>): Record<string, unknown> {
  return structuredClone(state);
}

export function computeStatePatch(
  base: Record<string, unknown>,
  draft: unknown,
  what: string,
  maxBytes: number,
): StatePatch {
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
  const set: Record<string, unknown> = {};
  let changed = false;
  for (const key of Object.keys(next)) {
    const value = next[key];
    if (value === undefined) continue;
    if (!(key in base) || JSON.stringify(value) !== JSON.stringify(base[key])) {
      set[key] = value;
      changed = true;
    }
  }
  const deleted = Object.keys(base).filter((key) => !(key in next) || next[key] === undefined);
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
