/**
 * Which database errors are the database being away (restarting, starting up, unreachable, the
 * connection cut) rather than a statement that can never succeed. Only these are retried by the
 * worker's commit and by startup, and only these are "a database failure" that is never charged as
 * a step attempt: retrying a deterministic error (a bug in SQL, a constraint) would loop forever.
 */
import { sqlErrorCode } from './executor.js';

/** SQLSTATEs of a server that is going away or not accepting connections yet. */
const TRANSIENT_SQLSTATES = new Set([
  '57P01', // admin_shutdown: terminated by pg_terminate_backend or a fast/immediate shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: the database system is starting up / shutting down
  '53300', // too_many_connections
  '40001', // serialization_failure
  '40P01', // deadlock_detected
]);

/** Node socket errors of a server that is not there (yet) or dropped the connection. */
const TRANSIENT_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENOENT', // a Unix socket path whose server is not up
]);

/** Messages `pg` uses for a connection that ended under it (no code attached). */
const TRANSIENT_MESSAGES = [
  'Connection terminated',
  'connection terminated',
  'Client has encountered a connection error',
  'timeout expired',
  'Connection ended',
  'the database system is',
  'terminating connection',
];

export function isTransientDatabaseError(error: unknown): boolean {
  const code = sqlErrorCode(error);
  if (code !== undefined) {
    if (TRANSIENT_SQLSTATES.has(code) || code.startsWith('08')) return true; // 08: connection exception
    if (TRANSIENT_NODE_CODES.has(code)) return true;
  }
  if (error instanceof AggregateError) return error.errors.some(isTransientDatabaseError);
  const message = error instanceof Error ? error.message : '';
  return TRANSIENT_MESSAGES.some((m) => message.includes(m));
}

/** A deadlock or a serialization failure: the statement can simply be tried again. */
export function isConflictError(error: unknown): boolean {
  const code = sqlErrorCode(error);
  return code === '40P01' || code === '40001';
}
