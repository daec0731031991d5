/**
 * ClickHouse literals (src/analytics/clickhouse-sql.ts): 18.16 has no server-side parameters, so
 * every value is quoted by hand. Any string (quotes, backslashes, control characters, any Unicode)
 * round-trips through a real server unchanged, and identifiers and integers refuse what they
 * cannot quote.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Clickhouse } from '../src/analytics/clickhouse.js';
import {
  quoteIdentifier,
  quoteInt,
  quoteString,
  quoteStringList,
} from '../src/analytics/clickhouse-sql.js';
import {
  CLICKHOUSE_ABSENT,
  clickhouseBinary,
  ThrowawayClickhouse,
} from './support/throwaway-clickhouse.js';

const present = clickhouseBinary() !== undefined;
if (!present) console.warn(CLICKHOUSE_ABSENT);

describe('ClickHouse literals without a server', () => {
  it('refuses identifiers and integers it cannot quote', () => {
    expect(quoteIdentifier('weft_2')).toBe('weft_2');
    for (const bad of ['', '1a', 'a-b', 'a b', 'a;drop', '`a`'])
      expect(() => quoteIdentifier(bad)).toThrow(/not a ClickHouse identifier/);
    expect(quoteInt(42)).toBe('42');
    expect(quoteInt(-7n)).toBe('-7');
    for (const bad of [1.5, Number.NaN, Infinity, 2 ** 60])
      expect(() => quoteInt(bad)).toThrow(/not an integer literal/);
    expect(() => quoteStringList([])).toThrow(/empty list/);
    expect(quoteString("it's \\ here")).toBe("'it\\'s \\\\ here'");
  });
});

describe.skipIf(!present)('ClickHouse literals on a real server (18.16)', () => {
  let server: ThrowawayClickhouse;
  let ch: Clickhouse;
  beforeAll(async () => {
    server = await ThrowawayClickhouse.create();
    ch = await Clickhouse.connect({ url: server.url });
  }, 60_000);
  afterAll(async () => {
    await ch?.close();
    await server?.destroy();
  });

  it('answers `SELECT version()` with 18.16 or later', async () => {
    expect(await ch.version()).toMatch(/^\d+\.\d+/);
  });

  it('any string round-trips unchanged', async () => {
    const nasty = [
      "'",
      "\\'",
      '\\',
      "'; DROP TABLE x; --",
      '\u0000\n\r\t\u0007\u007f',
      '😀 é ü 中',
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.constantFrom(...nasty),
          fc.string({ unit: 'grapheme', maxLength: 40 }),
          fc.string({ unit: 'binary', maxLength: 40 }),
        ),
        async (s) => {
          // lone surrogates are not UTF-8: they cannot be sent as JSON text to any server
          fc.pre(Buffer.from(s, 'utf8').toString('utf8') === s);
          const rows = await ch.query<{ v: string; n: string }>(
            `SELECT ${quoteString(s)} AS v, toString(${quoteString(s)} IN ${quoteStringList([s, 'x'])}) AS n`,
          );
          expect(rows).toEqual([{ v: s, n: '1' }]);
        },
      ),
      { numRuns: 150 },
    );
  });
});
