/**
 * "Database text": every string the API takes that reaches SQL (ids in the path, query
 * parameters, idempotency keys, labels, secrets, names…) goes through `dbText()`, so a request
 * that PostgreSQL would refuse or silently change is a 422 naming the field, never a 500 and never
 * two values stored as one.
 *
 * - `\u0000` (NUL): PostgreSQL `text` cannot hold it; the query fails (a 500 before this check).
 * - A lone UTF-16 surrogate (half of a pair): not Unicode. Encoding it to UTF-8 for the wire
 *   replaces it with U+FFFD, so `"a\uD800"`, `"a\uDC00"` and `"a\uFFFD"` became one key (three
 *   different idempotency keys answered as one run). Refused; U+FFFD itself is a valid character
 *   and stays distinct.
 *
 * Run inputs and waitpoint payloads are JSON values, checked by core/json.ts (`encodeJson`) with
 * the same two rules; this module is for the strings the API itself reads.
 */
import { z } from '@hono/zod-openapi';
import { ApiError, DB_TEXT_ISSUE } from './errors.js';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Why `s` cannot be stored as text as it is, or undefined when it can. */
export function databaseTextProblem(s: string): string | undefined {
  const nul = s.indexOf('\u0000');
  if (nul >= 0)
    return `contains a NUL character (\\u0000) at index ${nul}, which the database cannot store; remove it`;
  const match = LONE_SURROGATE.exec(s);
  if (match) {
    const unit = match[0].charCodeAt(0).toString(16).toUpperCase();
    return `contains a lone UTF-16 surrogate (\\u${unit}) at index ${match.index}, which is not Unicode text (it would be stored as U+FFFD and merge with other values); send well-formed text`;
  }
  return undefined;
}

/** A string schema that refuses NUL and lone surrogates (422 `invalid_input`, naming the field). */
export function dbText(): z.ZodString {
  return z.string().check((ctx) => {
    const problem = databaseTextProblem(ctx.value);
    if (problem)
      ctx.issues.push({
        code: 'custom',
        message: problem,
        input: ctx.value,
        params: { weft: DB_TEXT_ISSUE },
      });
  }) as z.ZodString;
}

/**
 * For strings read outside a schema (headers such as `Idempotency-Key` and `Last-Event-ID`):
 * the same rule, as an error naming where the string came from.
 */
export function assertDatabaseText(value: string, field: string): void {
  const problem = databaseTextProblem(value);
  if (problem === undefined) return;
  throw new ApiError('invalid_input', `\`${field}\` ${problem}.`, { field, where: 'header' });
}
