/**
 * Every dataclip body is JSON. Values cross from user code to storage here, so this is where
 * anything JSON cannot hold faithfully is refused, with the path to the offending value:
 * functions, symbols, bigints, non-finite numbers, Maps/Sets/class instances, cycles, `\u0000`
 * (PostgreSQL `jsonb` cannot store it) and lone UTF-16 surrogates. Objects with `toJSON`
 * (Date) are converted as JSON.stringify would.
 */
import { WeftError } from './errors.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export const DEFAULT_MAX_PAYLOAD_BYTES = 10 * 1024 * 1024;
export const MAX_JSON_DEPTH = 200;

export interface JsonProblem {
  path: string;
  found: string;
}

// eslint-disable-next-line no-control-regex
const NUL = /\u0000/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function describe(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  if (typeof value === 'bigint') return `a bigint (${value}n)`;
  if (typeof value === 'number') return `the number ${value}`;
  if (value instanceof Map) return 'a Map';
  if (value instanceof Set) return 'a Set';
  if (typeof value === 'object' && value !== null)
    return `an instance of ${value.constructor?.name ?? 'an unknown class'}`;
  return typeof value;
}

function checkString(s: string, path: string): JsonProblem | undefined {
  if (NUL.test(s))
    return { path, found: 'a string containing \\u0000 (PostgreSQL cannot store it)' };
  if (LONE_SURROGATE.test(s)) return { path, found: 'a string with a lone UTF-16 surrogate' };
  return undefined;
}

/** The first thing in `value` that is not faithful JSON, or `undefined` when it is all plain data. */
export function findJsonProblem(value: unknown, path = 'output'): JsonProblem | undefined {
  const seen = new Set<object>();
  const walk = (v: unknown, p: string, depth: number): JsonProblem | undefined => {
    if (depth > MAX_JSON_DEPTH)
      return { path: p, found: `nesting deeper than ${MAX_JSON_DEPTH} levels` };
    if (v === null || typeof v === 'boolean') return undefined;
    if (typeof v === 'string') return checkString(v, p);
    if (typeof v === 'number')
      return Number.isFinite(v) ? undefined : { path: p, found: describe(v) };
    if (typeof v !== 'object') return { path: p, found: describe(v) };
    if (typeof (v as { toJSON?: unknown }).toJSON === 'function') {
      return walk((v as { toJSON: () => unknown }).toJSON(), p, depth);
    }
    if (seen.has(v)) return { path: p, found: 'a circular reference' };
    seen.add(v);
    try {
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) {
          const item: unknown = v[i];
          if (item === undefined) return { path: `${p}[${i}]`, found: 'undefined inside an array' };
          const problem = walk(item, `${p}[${i}]`, depth + 1);
          if (problem) return problem;
        }
        return undefined;
      }
      const proto: unknown = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) return { path: p, found: describe(v) };
      for (const key of Object.keys(v)) {
        const keyProblem = checkString(key, `${p} (a key)`);
        if (keyProblem) return keyProblem;
        const item = (v as Record<string, unknown>)[key];
        if (item === undefined) continue; // dropped, as JSON.stringify does
        const problem = walk(item, `${p}.${key}`, depth + 1);
        if (problem) return problem;
      }
      return undefined;
    } finally {
      seen.delete(v);
    }
  };
  return walk(value, path, 0);
}

export interface EncodeOptions {
  /** What the value is, for messages: "step `enrich` of workflow `onboarding` output". */
  what: string;
  /** Path root used in messages, e.g. `output` or `input`. */
  root: string;
  maxBytes: number;
  /** Error code when the value is not JSON. */
  code: 'invalid_output' | 'invalid_input';
}

/**
 * Validate and serialize once. Returns the JSON text (what is sent to the database) and its byte
 * size. `undefined` becomes `null`.
 */
export function encodeJson(
  value: unknown,
  options: EncodeOptions,
): { text: string; bytes: number } {
  // A step that returns nothing (`void`) has the output null.
  const problem = value === undefined ? undefined : findJsonProblem(value, options.root);
  if (problem) {
    throw new WeftError(
      options.code,
      `${options.what} is not JSON: found ${problem.found} at \`${problem.path}\`; return plain data (objects, arrays, strings, finite numbers, booleans, null).`,
      { details: { path: problem.path, found: problem.found } },
    );
  }
  const text = value === undefined ? 'null' : JSON.stringify(value);
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > options.maxBytes) {
    throw new WeftError(
      'payload_too_large',
      `${options.what} is ${bytes} bytes, over the limit of ${options.maxBytes} bytes; store large data elsewhere and pass a reference, or raise maxPayloadBytes.`,
      { details: { sizeBytes: bytes, limitBytes: options.maxBytes } },
    );
  }
  return { text, bytes };
}
