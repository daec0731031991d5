import { PGlite } from '@electric-sql/pglite';
import type { Executor, Queryable, QueryResult } from './executor.js';

/**
 * Embedded PostgreSQL (PGlite, WASM) behind the executor interface. One connection per process:
 * PGlite serializes queries and transactions itself, so `for update skip locked` and the
 * single-statement hot paths behave as on PostgreSQL with one session.
 *
 * Durability: with a data directory PGlite writes PostgreSQL's own files (WAL included) through
 * Node's filesystem; a statement's result is returned after PGlite has written it. An in-memory
 * instance (`dataDir` omitted) keeps nothing.
 */
export async function createPgliteExecutor(options: { dataDir?: string } = {}): Promise<Executor> {
  const db = options.dataDir === undefined ? new PGlite() : new PGlite(options.dataDir);
  await db.waitReady;
  let closed = false;

  const query = async <R>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> => {
    const result = await db.query<R>(sql, params as unknown[] | undefined);
    return { rows: result.rows };
  };

  return {
    kind: 'pglite',
    query,
    async exec(sql: string) {
      await db.exec(sql);
    },
    transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      return db.transaction(async (tx) => {
        const q: Queryable = {
          query: async <R>(sql: string, params?: readonly unknown[]) => {
            const result = await tx.query<R>(sql, params as unknown[] | undefined);
            return { rows: result.rows };
          },
          exec: async (sql: string) => {
            await tx.exec(sql);
          },
        };
        return fn(q);
      });
    },
    async listen(channel, onNotify) {
      const unsubscribe = await db.listen(channel, onNotify);
      return async () => {
        if (!closed) await unsubscribe();
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      await db.close();
    },
  };
}
