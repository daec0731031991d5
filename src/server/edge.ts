/**
 * What the app does at its edge when it runs as a server of its own (`weft server`) or inside a
 * user's: draining on shutdown, CORS for browser clients on other origins, the client's address
 * behind a proxy, and a deadline per request. `createApp` wires these; each is optional.
 */
import { getConnInfo } from '@hono/node-server/conninfo';
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Context, MiddlewareHandler } from 'hono';
import { cors } from 'hono/cors';
import { ApiError } from './errors.js';

// ---------------------------------------------------------------------------------------------
// Draining

const drains = new WeakMap<object, AbortController>();

/**
 * The signal an app's handlers watch for shutdown: aborted by `beginDrain(app)` (what
 * `RunningServer.close()` calls) or by the caller's own `shutdownSignal`.
 */
export function createDrainSignal(app: object, shutdownSignal?: AbortSignal): AbortSignal {
  const own = new AbortController();
  drains.set(app, own);
  return shutdownSignal ? AbortSignal.any([own.signal, shutdownSignal]) : own.signal;
}

/**
 * Tell an app built by `createApp` that its process is shutting down: event streams end with a
 * reconnect hint, `/readyz` answers 503 and responses close their connection. Apps not built by
 * `createApp` (a metrics-only app) are left alone.
 */
export function beginDrain(app: object): void {
  drains.get(app)?.abort();
}

/**
 * While draining: `/readyz` answers 503 (the balancer stops routing here) and every response
 * carries `Connection: close`, so a keep-alive client's next request opens a connection to
 * another process instead of landing on one that is about to be cut.
 */
export function drainGate(signal: AbortSignal): MiddlewareHandler {
  return async (c, next) => {
    if (signal.aborted && c.req.path === '/readyz') {
      c.header('Connection', 'close');
      throw new ApiError(
        'not_ready',
        'Not ready: this server process is shutting down; the load balancer should send requests to another one.',
        { reason: 'draining' },
      );
    }
    await next();
    if (signal.aborted) c.header('Connection', 'close');
  };
}

// ---------------------------------------------------------------------------------------------
// CORS

/**
 * CORS for the listed origins (`*` allows any). Answers `OPTIONS` preflights itself with 204, so
 * it runs before authentication: a browser sends no `Authorization` on a preflight. Bearer keys,
 * not cookies, authenticate, so credentials are never allowed.
 */
export function corsFor(origins: readonly string[]): MiddlewareHandler {
  return cors({
    origin: origins.includes('*') ? '*' : [...origins],
    allowMethods: ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE', 'OPTIONS'],
    allowHeaders: ['Authorization', 'Content-Type', 'Last-Event-ID', 'X-Request-Id'],
    exposeHeaders: ['X-Request-Id', 'Retry-After', 'WWW-Authenticate'],
    maxAge: 600,
  });
}

// ---------------------------------------------------------------------------------------------
// Client address

/**
 * The client's address for the access log. With `trustProxy`, the first address of
 * `X-Forwarded-For` (the client as the outermost proxy saw it); else the socket's peer. Only
 * trust the header when every request comes through a proxy that sets it: otherwise a client
 * can write any address it likes into the log.
 */
export function clientAddress(c: Context, trustProxy: boolean): string | undefined {
  if (trustProxy) {
    const forwarded = c.req.header('x-forwarded-for')?.split(',')[0]?.trim();
    if (forwarded) return forwarded.slice(0, 64);
  }
  try {
    return getConnInfo(c).remote.address;
  } catch {
    // Not served by @hono/node-server (mounted in another runtime or called through app.fetch).
    return undefined;
  }
}

/**
 * The scheme the client used (`https` behind a TLS-terminating proxy), for the access log: with
 * `trustProxy`, `X-Forwarded-Proto` when it is http or https; else the request's own.
 */
export function clientProtocol(c: Context, trustProxy: boolean): string {
  const forwarded = trustProxy
    ? c.req.header('x-forwarded-proto')?.split(',')[0]?.trim().toLowerCase()
    : undefined;
  if (forwarded === 'http' || forwarded === 'https') return forwarded;
  return new URL(c.req.url).protocol.replace(':', '');
}

// ---------------------------------------------------------------------------------------------
// Deadline

/**
 * Answer 503 `request_timeout` when a handler has not produced its response in `ms`. The
 * handler is not stopped (a commit may still land), which is why the message points at
 * idempotency keys: a retry with the same key returns the run that was created, never a second.
 * An event stream counts as answered once its headers are out.
 */
export function requestDeadline(ms: number): MiddlewareHandler {
  return async (c, next) => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        c.header('Retry-After', '1');
        reject(
          new ApiError(
            'request_timeout',
            `${c.req.method} ${c.req.path} did not finish within ${ms} ms (the server's request timeout); the database may be slow or unreachable. Retry it — a trigger retried with the same idempotencyKey never starts a second run.`,
            { timeoutMs: ms },
          ),
        );
      }, ms);
    });
    try {
      await Promise.race([next(), late]);
    } finally {
      clearTimeout(timer);
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Request context for log lines

const requestContext = new AsyncLocalStorage<{ requestId: string }>();

/** Run the rest of a request with its id in context (what `requestLogFields` reads). */
export function withRequestContext<T>(requestId: string, fn: () => Promise<T>): Promise<T> {
  return requestContext.run({ requestId }, fn);
}

/**
 * The request id of the request being handled, if any: a pino `mixin`, so every line logged while
 * serving a request — by the store or engine too, not only the access line — carries it.
 *
 * @example
 * const logger = pino({ mixin: requestLogFields });
 */
export function requestLogFields(): { requestId?: string } {
  const store = requestContext.getStore();
  return store ? { requestId: store.requestId } : {};
}
