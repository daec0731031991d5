import { protocol, type PGlite } from '@electric-sql/pglite';
import type { QueryResult } from './executor.js';

/**
 * Named prepared statements on PGlite, each query one call into the WASM module.
 *
 * `PGlite.query(sql, params)` sends the unnamed extended-protocol sequence as six separate calls
 * (Parse, Describe statement, Bind, Describe portal, Execute, Sync), each one a trip through the
 * module and PGlite's message parser, and PostgreSQL parses and plans the statement text anew
 * every time. On a chained step (one `complete_step` call) that JavaScript was about a quarter of
 * the process's time (`bench/RESULTS.md`, "Issue 8, session 5"). This sends Parse + Describe once
 * per distinct SQL text, and afterwards Bind + Execute + Sync as one buffer in one call.
 *
 * Values are serialized and rows parsed with the instance's own serializers and parsers, by the
 * parameter and column types the Describe returned, so results are the same as `query()`'s.
 * Runs under PGlite's own locks (`_runExclusiveTransaction`, then `_runExclusiveQuery`, the
 * order `query()` takes them), so it never lands inside another caller's transaction. A build
 * without those methods gets `undefined` from `preparedQueries` and the executor keeps using
 * `query()`.
 */
export interface PreparedQueries {
  query<R>(sql: string, params: readonly unknown[] | undefined): Promise<QueryResult<R>>;
}

interface Statement {
  name: string;
  paramTypes: number[];
  fields: Array<{ name: string; dataTypeID: number }>;
}

/** Internal PGlite members used here (declared abstract in PGlite's types, underscore-named). */
interface PgliteInternals {
  _runExclusiveTransaction<T>(fn: () => Promise<T>): Promise<T>;
  _runExclusiveQuery<T>(fn: () => Promise<T>): Promise<T>;
  serializers: Record<number, ((value: unknown) => string) | undefined>;
  parsers: Record<number, ((value: string, typeId: number) => unknown) | undefined>;
}

/** Distinct statements kept prepared; past this, further texts go through `query()`. */
const MAX_STATEMENTS = 1000;
/** SQLSTATEs after which a prepared statement is closed and prepared again (once per query). */
const STALE_STATEMENT = new Set(['0A000', '26000', '42P05']);

export function preparedQueries(db: PGlite): PreparedQueries | undefined {
  const internals = db as unknown as Partial<PgliteInternals>;
  if (
    typeof internals._runExclusiveTransaction !== 'function' ||
    typeof internals._runExclusiveQuery !== 'function' ||
    typeof internals.serializers !== 'object' ||
    typeof internals.parsers !== 'object'
  )
    return undefined;
  const pg = internals as PgliteInternals;
  const statements = new Map<string, Statement>();
  let counter = 0;

  const exclusive = <T>(fn: () => Promise<T>): Promise<T> =>
    pg._runExclusiveTransaction(() => pg._runExclusiveQuery(fn));

  /** Prepare `sql` under a new name; `stale`: the statement it replaces, closed in the same call. */
  const prepare = async (sql: string, stale?: Statement): Promise<Statement> => {
    const name = `weft_p${++counter}`;
    const { messages } = await db.execProtocol(
      Buffer.concat([
        ...(stale ? [protocol.serialize.close({ type: 'S', name: stale.name })] : []),
        protocol.serialize.parse({ name, text: sql }),
        protocol.serialize.describe({ type: 'S', name }),
        protocol.serialize.sync(),
      ]),
      { syncToFs: false },
    );
    let paramTypes: number[] = [];
    let fields: Statement['fields'] = [];
    for (const m of messages) {
      if (m.name === 'parameterDescription')
        paramTypes = (m as unknown as { dataTypeIDs: number[] }).dataTypeIDs;
      else if (m.name === 'rowDescription')
        fields = (m as unknown as { fields: Statement['fields'] }).fields.map((f) => ({
          name: f.name,
          dataTypeID: f.dataTypeID,
        }));
    }
    const statement = { name, paramTypes, fields };
    statements.set(sql, statement);
    return statement;
  };

  const run = async <R>(s: Statement, params: readonly unknown[]): Promise<QueryResult<R>> => {
    const values = params.map((value, i) => {
      if (value === null || value === undefined) return null;
      const serializer = pg.serializers[s.paramTypes[i]!];
      return serializer ? serializer(value) : String(value);
    });
    const { messages } = await db.execProtocol(
      Buffer.concat([
        protocol.serialize.bind({ statement: s.name, values }),
        protocol.serialize.execute({}),
        protocol.serialize.sync(),
      ]),
    );
    const rows: R[] = [];
    for (const m of messages) {
      if (m.name !== 'dataRow') continue;
      const cells = (m as unknown as { fields: Array<string | null> }).fields;
      const row: Record<string, unknown> = {};
      for (let i = 0; i < s.fields.length; i++) {
        const f = s.fields[i]!;
        const cell = cells[i] ?? null;
        const parser = pg.parsers[f.dataTypeID];
        row[f.name] = cell === null ? null : parser ? parser(cell, f.dataTypeID) : cell;
      }
      rows.push(row as R);
    }
    return { rows };
  };

  return {
    async query<R>(sql: string, params: readonly unknown[] | undefined) {
      const known = statements.get(sql);
      if (!known && statements.size >= MAX_STATEMENTS) {
        const result = await db.query<R>(sql, params as unknown[] | undefined);
        return { rows: result.rows };
      }
      try {
        return await exclusive(async () => run<R>(known ?? (await prepare(sql)), params ?? []));
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (!known || code === undefined || !STALE_STATEMENT.has(code)) throw error;
        // the statement was invalidated under us (its result type changed): prepare it again
        statements.delete(sql);
        return exclusive(async () => run<R>(await prepare(sql, known), params ?? []));
      }
    },
  };
}
