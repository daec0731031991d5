/**
 * Literals for ClickHouse SQL, written by hand because the oldest server Weft supports (18.16,
 * Debian's) has no server-side query parameters (`{name:Type}` arrived in 19.x) — the official
 * client's `query_params` fail there with "Unknown setting param_…". Every value that reaches a
 * ClickHouse query goes through one of these functions; nothing is spliced in raw.
 *
 * String literal rules (ClickHouse "Syntax: String literals"): single quotes; a backslash starts an
 * escape, so `\` and `'` are escaped with a backslash; control characters are written as escapes so
 * the query text stays one line of printable text. The same rules hold on current ClickHouse.
 */

/** `'…'` with `\\`, `\'` and control characters escaped. */
export function quoteString(value: string): string {
  let out = "'";
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === "'") out += "\\'";
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (code === 0) out += '\\0';
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out + "'";
}

/** An integer literal; refuses anything that is not a safe integer (or a bigint). */
export function quoteInt(value: number | bigint): string {
  if (typeof value === 'bigint') return value.toString();
  if (!Number.isSafeInteger(value)) throw new Error(`not an integer literal: ${String(value)}`);
  return String(value);
}

/** `(a, b, c)` of string literals, for `in`; never empty (an empty list is `('')`-free: caller checks). */
export function quoteStringList(values: readonly string[]): string {
  if (values.length === 0) throw new Error('an empty list has no ClickHouse literal');
  return `(${values.map(quoteString).join(', ')})`;
}

/** A ClickHouse identifier (database or table name): only `[A-Za-z_][A-Za-z0-9_]*` is accepted. */
export function quoteIdentifier(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
    throw new Error(
      `"${name}" is not a ClickHouse identifier Weft accepts: use letters, digits and "_", starting with a letter`,
    );
  return name;
}
