/**
 * The one interface between Weft and a database driver. Implemented for `pg` (pg-executor.ts) and
 * PGlite (pglite-executor.ts); nothing above src/store sees a driver type.
 */
export interface QueryResult<R> {
  rows: R[];
}

export interface Queryable {
  query<R = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
  ): Promise<QueryResult<R>>;
  /** Run a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Executor extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Run `fn` in one transaction on one connection; commits when it resolves, rolls back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * LISTEN on a channel. Returns a function that stops listening. On PostgreSQL a dedicated
   * connection is used and re-established after an error (wake-ups may be missed meanwhile,
   * which is why workers also poll).
   */
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** PostgreSQL error fields Weft looks at (both drivers expose `code`). */
export function sqlErrorCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

export const UNIQUE_VIOLATION = '23505';
