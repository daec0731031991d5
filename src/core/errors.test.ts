// The test reads the sources it checks; the module under test stays pure.
// eslint-disable-next-line no-restricted-imports
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ALL_ERROR_CODES, ERROR_CODES, isWeftErrorCode } from './error-codes.js';
import { describeError, isRetryable, TerminalError, WeftError } from './errors.js';

const SRC = fileURLToPath(new URL('..', import.meta.url));
const STATUSES = [400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 503];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(ts|sql)$/.test(name) && !name.endsWith('.test.ts') ? [path] : [];
  });
}

/**
 * Codes written as literals where an error is made or matched: `new WeftError('x'`,
 * `new ApiError('x'`, `code: 'x'`, `code === 'x'`, and the SQL functions' `'code', 'x'`. The
 * constructors are type-checked too; the object literals (a step error recorded by the reaper, a
 * release's `database_unavailable`) and comparisons are not, hence this scan.
 */
const PATTERNS = [
  /(?:WeftError|ApiError)\(\s*'([a-z_]+)'/g,
  /\bcode:\s*'([a-z_]+)'/g,
  /\bcode\s*[!=]==\s*'([a-z_]+)'/g,
  /'code',\s*'([a-z_]+)'/g,
];
/** Literals these patterns catch that are not Weft error codes, each with where it comes from. */
const NOT_OURS = new Set([
  'string', // typeof x.code === 'string'
  'custom', // zod issue codes (server/errors.ts, db-text.ts)
  'unrecognized_keys',
  'invalid_type', // zod's issue code (core/json-schema.ts)
]);

describe('the table of error codes', () => {
  it('gives every code an HTTP status, a retryable flag and a one-line fix', () => {
    expect(ALL_ERROR_CODES.length).toBeGreaterThan(30);
    for (const code of ALL_ERROR_CODES) {
      const spec = ERROR_CODES[code];
      expect(code).toMatch(/^[a-z][a-z_]*[a-z]$/);
      expect(STATUSES, code).toContain(spec.status);
      expect(typeof spec.retryable, code).toBe('boolean');
      expect(spec.fix.length, code).toBeGreaterThan(20);
      expect(spec.fix, code).not.toContain('\n');
    }
  });

  it('holds the codes issue 8 made real, and the API-only ones', () => {
    for (const code of [
      'loop_limit_exceeded',
      'waitpoint_timed_out',
      'worker_shutdown',
      'terminal',
      'unauthorized',
      'forbidden',
      'request_timeout',
      'unknown_workflow',
    ])
      expect(isWeftErrorCode(code), code).toBe(true);
    expect(isWeftErrorCode('workflow_not_found')).toBe(false);
    expect(isWeftErrorCode('toString')).toBe(false);
  });

  it('lists every code thrown, recorded or matched anywhere in src', () => {
    const unknown: string[] = [];
    let found = 0;
    for (const file of sourceFiles(SRC)) {
      // comments (JSDoc examples of user codes, prose) are not code
      const text = readFileSync(file, 'utf8')
        .split('\n')
        .filter((line) => !/^\s*(\/\/|\/\*|\*|--)/.test(line))
        .join('\n');
      for (const pattern of PATTERNS)
        for (const match of text.matchAll(pattern)) {
          const code = match[1]!;
          if (NOT_OURS.has(code)) continue;
          found++;
          if (!isWeftErrorCode(code)) unknown.push(`${relative(SRC, file)}: ${code}`);
        }
    }
    expect(found).toBeGreaterThan(100);
    expect(unknown).toEqual([]);
  });
});

describe('TerminalError', () => {
  it('is a WeftError with code `terminal`, never retried', () => {
    const cause = new Error('HTTP 400');
    const error = new TerminalError('user 42 has no email address', { cause });
    expect(error).toBeInstanceOf(TerminalError);
    expect(error).toBeInstanceOf(WeftError);
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe('terminal');
    expect(error.name).toBe('TerminalError');
    expect(error.cause).toBe(cause);
    expect(isRetryable(error.code)).toBe(false);
    expect(describeError(error)).toMatchObject({
      name: 'TerminalError',
      message: 'user 42 has no email address',
      code: 'terminal',
      terminal: true,
    });
  });

  it('records a code of the caller’s own in place of `terminal`', () => {
    const error = new TerminalError('card declined', { code: 'card_declined' });
    expect(error.code).toBe('terminal');
    expect(error.errorCode).toBe('card_declined');
    expect(describeError(error)).toMatchObject({ code: 'card_declined', terminal: true });
  });
});

describe('describeError', () => {
  it('marks a WeftError terminal exactly when the table says its code is not retryable', () => {
    for (const code of ALL_ERROR_CODES)
      expect(describeError(new WeftError(code, 'x')).terminal, code).toBe(
        !ERROR_CODES[code].retryable,
      );
  });

  it('keeps any other error retryable, with its code when it has a string one', () => {
    const plain = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    expect(describeError(plain)).toMatchObject({ code: 'ECONNRESET', terminal: false });
    expect(describeError('a string')).toEqual({
      name: 'NonError',
      message: 'a string',
      terminal: false,
    });
  });
});
