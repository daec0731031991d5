import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Executor, ExecutorLogger, Queryable, QueryResult } from './executor.js';
import { PgListener } from './pg-listener.js';

export interface PgExecutorOptions {
  connectionString: string;
  /** Pool size. Default 10. */
  max?: number;
  applicationName?: string;
  /** Where the LISTEN connection reports going down and coming back (once per change). */
  logger?: ExecutorLogger;
  /** How often the LISTEN connection is pinged, and how long a ping may take. Default 15 s, 10 s. */
  listenerPing?: { everyMs: number; timeoutMs: number };
}

/**
 * Every statement is sent as a named prepared statement (the name is a hash of its text), so each
 * pooled connection parses and plans a statement once and then only binds and executes it. The
 * trigger statement in particular is long; re-planning it per run cost more server CPU than running
 * it. Names are per text, so two texts never share one.
 */
const statementNames = new Map<string, string>();
function statementName(sql: string): string {
  let name = statementNames.get(sql);
  if (name === undefined) {
    name = `weft_${createHash('sha1').update(sql).digest('hex').slice(0, 24)}`;
    if (statementNames.size > 5000) statementNames.clear(); // dynamic SQL must not grow this forever
    statementNames.set(sql, name);
  }
  return name;
}

/** `pg` Pool behind the executor interface. */
export function createPgExecutor(options: PgExecutorOptions): Executor {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'weft',
    // A server that drops packets (not refuses them) must not hang a query forever: the caller
    // gets an error it can retry (startup, commit retries) instead.
    connectionTimeoutMillis: 10_000,
  });
  // An idle client that loses its connection emits on the pool; without a listener Node would crash.
  pool.on('error', () => {});
  // A client the pool has just connected is handed to `pool.connect()`'s promise inside the
  // socket's data handler, and the pool has already dropped its idle listener by then: a session
  // terminated at once (its FATAL in the same read) emitted 'error' before `transaction()` could
  // listen, and ended the process (seen with pg_terminate_backend under load; the test kills
  // sessions as they connect). This listener stays for the client's life; each user of a client
  // still learns of the loss (its next query fails, the pool discards a client not queryable).
  pool.on('connect', (client) => {
    client.on('error', () => {});
  });
  const listener = new PgListener(
    options.connectionString,
    `${options.applicationName ?? 'weft'}-listen`,
    options.logger,
    options.listenerPing,
  );

  const query = async <R>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> => {
    const result = await pool.query({
      name: statementName(sql),
      text: sql,
      values: params as unknown[] | undefined,
    });
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
      // The pool listens for errors only on idle clients: a checked-out client whose session is
      // terminated between two statements (pg_terminate_backend, a restart) would emit an
      // unhandled 'error' and end the process. Keep it, and throw it from the next statement.
      let lost: Error | undefined;
      const onError = (error: Error) => {
        lost = error;
      };
      client.on('error', onError);
      try {
        await client.query('begin');
        const tx: Queryable = {
          query: async <R>(sql: string, params?: readonly unknown[]) => {
            const result = await client.query({
              name: statementName(sql),
              text: sql,
              values: params as unknown[] | undefined,
            });
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
        client.off('error', onError);
        // a client whose session was lost is destroyed, not handed to the next caller
        client.release(lost);
      }
    },
    listen(channel, onNotify, listenOptions) {
      return listener.subscribe(channel, onNotify, listenOptions);
    },
    listenerHealth() {
      return listener.health();
    },
    listenBarrier() {
      return listener.barrier();
    },
    async close() {
      await listener.close();
      await pool.end();
    },
  };
}
