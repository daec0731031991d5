import pg from 'pg';
import type { Executor, Queryable, QueryResult } from './executor.js';

export interface PgExecutorOptions {
  connectionString: string;
  /** Pool size. Default 10. */
  max?: number;
  applicationName?: string;
}

/** `pg` Pool behind the executor interface. */
export function createPgExecutor(options: PgExecutorOptions): Executor {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'weft',
  });
  // An idle client that loses its connection emits on the pool; without a listener Node would crash.
  pool.on('error', () => {});
  const listeners = new Set<pg.Client>();

  const query = async <R>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> => {
    const result = await pool.query(sql, params as unknown[] | undefined);
    return { rows: result.rows as R[] };
  };

  return {
    kind: 'postgres',
    query,
    async exec(sql: string) {
      await pool.query(sql);
    },
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      try {
        await client.query('begin');
        const tx: Queryable = {
          query: async <R>(sql: string, params?: readonly unknown[]) => {
            const result = await client.query(sql, params as unknown[] | undefined);
            return { rows: result.rows as R[] };
          },
          exec: async (sql: string) => {
            await client.query(sql);
          },
        };
        const value = await fn(tx);
        await client.query('commit');
        return value;
      } catch (error) {
        await client.query('rollback').catch(() => {});
        throw error;
      } finally {
        client.release();
      }
    },
    async listen(channel, onNotify) {
      let stopped = false;
      let client: pg.Client | undefined;
      let retry: NodeJS.Timeout | undefined;
      const connect = async (): Promise<void> => {
        if (stopped) return;
        const c = new pg.Client({
          connectionString: options.connectionString,
          application_name: `${options.applicationName ?? 'weft'}-listen`,
        });
        c.on('notification', (msg) => {
          if (msg.channel === channel) onNotify(msg.payload ?? '');
        });
        c.on('error', () => {
          listeners.delete(c);
          c.end().catch(() => {});
          if (!stopped) retry = setTimeout(() => void connect().catch(() => {}), 1000);
        });
        await c.connect();
        await c.query(`listen "${channel.replaceAll('"', '""')}"`);
        client = c;
        listeners.add(c);
      };
      await connect();
      return async () => {
        stopped = true;
        if (retry) clearTimeout(retry);
        if (client) {
          listeners.delete(client);
          await client.end().catch(() => {});
        }
      };
    },
    async close() {
      await Promise.all([...listeners].map((c) => c.end().catch(() => {})));
      listeners.clear();
      await pool.end();
    },
  };
}
