/**
 * PGlite's executor sends each query as a named prepared statement in one call into the module
 * (src/store/pglite-prepared.ts) instead of `PGlite.query()`'s six. What is checked: the same
 * rows, values and errors as `PGlite.query()` for every parameter and column type the store uses
 * (text, integers, booleans, jsonb objects and arrays, text arrays, timestamps, nulls); a
 * statement whose result type a DDL changed is prepared again instead of failing; queries
 * interleaved with a transaction never land inside it; a SQL error leaves the session usable.
 */
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { preparedQueries, type PreparedQueries } from '../src/store/pglite-prepared.js';
import { createPgliteExecutor } from '../src/store/pglite-executor.js';

describe('PGlite prepared statements', () => {
  let db: PGlite;
  let prepared: PreparedQueries;
  beforeAll(async () => {
    db = new PGlite();
    await db.waitReady;
    prepared = preparedQueries(db)!;
    expect(prepared).toBeDefined();
    await db.exec(`create table t (id text primary key, n integer, ok boolean, doc jsonb,
                   tags text[], at timestamptz, big bigint)`);
  });
  afterAll(async () => {
    await db?.close();
  });

  it('returns what PGlite.query returns, for each type the store sends and reads', async () => {
    const at = new Date('2026-11-30T01:02:03.456Z');
    const params = [
      'a',
      7,
      true,
      { k: [1, 'x', null], nested: { y: 2 } },
      ['p', 'q "r"', 's,t'],
      at,
      '9007199254740993',
    ];
    const insert = `insert into t values ($1, $2, $3, $4, $5, $6, $7) returning *`;
    const viaPrepared = await prepared.query(insert, params);
    const viaQuery = await db.query(`select * from t where id = $1`, ['a']);
    expect(viaPrepared.rows).toEqual(viaQuery.rows);
    expect(viaPrepared.rows[0]).toEqual({
      id: 'a',
      n: 7,
      ok: true,
      doc: { k: [1, 'x', null], nested: { y: 2 } },
      tags: ['p', 'q "r"', 's,t'],
      at,
      big: 9007199254740993n,
    });
    // nulls, a jsonb array parameter, a cast in the statement, and no rows at all
    const nulls = await prepared.query(
      `insert into t values ($1, $2, $3, $4::jsonb, $5, $6, $7) returning n, doc, tags`,
      ['b', null, null, [1, 2], null, null, null],
    );
    expect(nulls.rows).toEqual([{ n: null, doc: [1, 2], tags: null }]);
    expect((await prepared.query(`select * from t where id = $1`, ['none'])).rows).toEqual([]);
    expect((await prepared.query(`select count(*)::int as c from t`, undefined)).rows).toEqual([
      { c: 2 },
    ]);
  });

  it('prepares a statement again when a DDL changed its result type', async () => {
    await db.exec(`create table shape (a integer); insert into shape values (1)`);
    const sql = `select * from shape`;
    expect((await prepared.query(sql, [])).rows).toEqual([{ a: 1 }]);
    await db.exec(`alter table shape add column b text default 'x'`);
    expect((await prepared.query(sql, [])).rows).toEqual([{ a: 1, b: 'x' }]);
  });

  it('an error is the database error, and the session goes on', async () => {
    const error = await prepared
      .query(`insert into t (id) values ($1)`, ['a'])
      .catch((e: unknown) => e as { code?: string; message?: string });
    expect(error).toMatchObject({ code: '23505' });
    expect((await prepared.query(`select id from t where id = $1`, ['a'])).rows).toEqual([
      { id: 'a' },
    ]);
  });

  it('a query sent while another caller holds a transaction waits for it, and is not part of it', async () => {
    const executor = await createPgliteExecutor();
    try {
      await executor.exec(`create table x (id integer primary key)`);
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const tx = executor
        .transaction(async (q) => {
          await q.query(`insert into x values (1)`);
          await held;
          throw new Error('roll back');
        })
        .catch(() => 'rolled back');
      await new Promise((r) => setTimeout(r, 20));
      // sent while the transaction is open: must not see (or join) its uncommitted row
      const outside = executor.query<{ c: number }>(`select count(*)::int as c from x`);
      const insertOutside = executor.query(`insert into x values ($1)`, [2]);
      release();
      expect(await tx).toBe('rolled back');
      expect((await outside).rows).toEqual([{ c: 0 }]);
      await insertOutside;
      expect((await executor.query(`select id from x order by id`)).rows).toEqual([{ id: 2 }]);
    } finally {
      await executor.close();
    }
  });
});
