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
   * LISTEN on a channel. Returns a function that stops listening. On PostgreSQL one dedicated
   * connection per executor carries every channel; after an outage it is re-established with
   * backoff, for as long as the executor is open. Notifications sent while it was down are lost,
   * so a subscriber that cannot afford to miss one passes `onReconnect` and polls there (workers
   * also poll on an interval). Resolves even when the database is down (the connection is then
   * made in the background).
   */
  listen(
    channel: string,
    onNotify: (payload: string) => void,
    options?: ListenOptions,
  ): Promise<() => Promise<void>>;
  /** The LISTEN connection's state (PostgreSQL); undefined where there is none to lose (PGlite). */
  listenerHealth?(): ListenerHealth;
  /**
   * A round trip on the LISTEN connection that starts after this call (PostgreSQL): when it
   * resolves `true`, every notification committed before the call has been delivered to its
   * subscribers (the server sends pending notifications before it answers a query). `false`:
   * the connection is not up, so nothing can be promised. Concurrent calls share round trips.
   * Absent where notifications stay in one process (PGlite).
   */
  listenBarrier?(): Promise<boolean>;
  close(): Promise<void>;
}

export interface ListenOptions {
  /** Called after the LISTEN connection came back from an outage: catch up on what was missed. */
  onReconnect?: () => void;
}

/**
 * `idle`: nothing subscribed. `connecting`: the first connection is being made. `connected`:
 * every channel is LISTENed. `down`: lost or never made; reconnecting with backoff.
 */
export interface ListenerHealth {
  state: 'idle' | 'connecting' | 'connected' | 'down' | 'closed';
  /** When the state last changed. */
  since: Date;
  /** Times the connection came back after being down. */
  reconnects: number;
  /** Failed reconnection attempts in the current outage. */
  failedAttempts: number;
  channels: string[];
  /** The driver's last error while down (may name hosts: for logs, not for responses). */
  lastError?: string;
}

/** The slice of a pino logger the store uses (no driver or engine types leak either way). */
export interface ExecutorLogger {
  info(data: Record<string, unknown>, message: string): void;
  warn(data: Record<string, unknown>, message: string): void;
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
