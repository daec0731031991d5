/**
 * Bearer authentication and key scopes. A key belongs to one environment; handlers read that
 * environment from the context and pass it to every store call, which is what makes another
 * tenant's ids a 404. What a key may call is decided here, in one table (ROUTE_SCOPES), not in
 * the handlers.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import type { Logger } from '../engine/logger.js';
import type { ApiKeyIdentity, ControlStore, KeyScope } from '../store/control-store.js';
import { ApiError } from './errors.js';

/**
 * The scope each /api/v1 route needs, by `METHOD path` as the OpenAPI document writes it.
 * `read`: reading; `trigger`: starting and steering runs (and reading webhook ids, which can
 * start runs); `admin`: configuration (keys, environments, projects, schedules, webhooks).
 * A route missing here needs `admin` — fail closed — and fails test/server.scopes.test.ts,
 * which walks every registered route: add the line with the route.
 */
export const ROUTE_SCOPES: Readonly<Record<string, KeyScope>> = {
  'GET /api/v1/workflows': 'read',
  'GET /api/v1/workflows/{workflowId}': 'read',
  'POST /api/v1/workflows/{workflowId}/runs': 'trigger',
  'POST /api/v1/workflows/{workflowId}/runs/batch': 'trigger',
  'GET /api/v1/runs': 'read',
  'GET /api/v1/runs/counts': 'read',
  'GET /api/v1/runs/{runId}': 'read',
  'GET /api/v1/runs/{runId}/steps': 'read',
  'GET /api/v1/runs/{runId}/state': 'read',
  'GET /api/v1/runs/{runId}/events': 'read',
  'GET /api/v1/runs/{runId}/waitpoints': 'read',
  'POST /api/v1/runs/{runId}/rerun': 'trigger',
  'POST /api/v1/runs/{runId}/cancel': 'trigger',
  'POST /api/v1/runs/{runId}/resume': 'trigger',
  'POST /api/v1/bulk-reruns': 'trigger',
  'GET /api/v1/bulk-reruns/{id}': 'read',
  'POST /api/v1/waitpoints/{token}/complete': 'trigger',
  'GET /api/v1/dataclips/{dataclipId}': 'read',
  'GET /api/v1/schedules': 'read',
  'GET /api/v1/schedules/{scheduleId}': 'read',
  'POST /api/v1/schedules': 'admin',
  'PATCH /api/v1/schedules/{scheduleId}': 'admin',
  'DELETE /api/v1/schedules/{scheduleId}': 'admin',
  'GET /api/v1/webhooks': 'trigger',
  'POST /api/v1/webhooks': 'admin',
  'PATCH /api/v1/webhooks/{webhookId}': 'admin',
  'DELETE /api/v1/webhooks/{webhookId}': 'admin',
  'GET /api/v1/keys': 'admin',
  'POST /api/v1/keys': 'admin',
  'POST /api/v1/keys/{keyId}/revoke': 'admin',
  'GET /api/v1/environments': 'admin',
  'POST /api/v1/environments': 'admin',
  'PATCH /api/v1/environments/{name}': 'admin',
  'DELETE /api/v1/environments/{name}': 'admin',
  'GET /api/v1/projects': 'admin',
  'POST /api/v1/projects': 'admin',
  'PATCH /api/v1/projects/{name}': 'admin',
  'DELETE /api/v1/projects/{name}': 'admin',
  'GET /api/v1/organization': 'admin',
  'PATCH /api/v1/organization': 'admin',
  'POST /api/v1/organization/cutover': 'admin',
  'GET /api/v1/audit': 'admin',
  'GET /api/v1/metrics/runs': 'read',
  'GET /api/v1/metrics/failure-rate': 'read',
  'GET /api/v1/metrics/durations': 'read',
  'GET /api/v1/metrics/step-durations': 'read',
  'GET /api/v1/metrics/queue-wait': 'read',
};

const SCOPE_RANK: Record<KeyScope, number> = { read: 1, trigger: 2, admin: 3 };

/** Scopes nest: `admin` allows everything, `trigger` allows `read` routes too. */
export function scopesAllow(scopes: readonly KeyScope[], needed: KeyScope): boolean {
  return scopes.some((scope) => SCOPE_RANK[scope] >= SCOPE_RANK[needed]);
}

/** `/api/v1/runs/:runId` (Hono) → `/api/v1/runs/{runId}` (OpenAPI, the table's spelling). */
export function openApiPath(honoPath: string): string {
  return honoPath.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?/g, '{$1}');
}

/** The scope a route needs; an undeclared route needs `admin`. */
export function requiredScope(method: string, path: string): KeyScope {
  return ROUTE_SCOPES[`${method.toUpperCase()} ${path}`] ?? 'admin';
}

/**
 * The route that will answer: the first matched handler registered for the request's method
 * (middleware is registered for ALL). Undefined when no route matches — the request ends in the
 * 404 handler and reads nothing.
 */
function answeringRoute(c: Context): { method: string; path: string } | undefined {
  const method = c.req.method === 'HEAD' ? 'GET' : c.req.method;
  const route = matchedRoutes(c).find((r) => r.method === method);
  return route ? { method, path: openApiPath(route.path) } : undefined;
}

/**
 * Refuse a key whose scopes do not cover the route (403 `forbidden`, naming the route, the scope
 * it needs, the key's scopes and the fix). Runs after `requireApiKey`.
 */
export function requireScope(): MiddlewareHandler<{ Variables: AuthVariables }> {
  return async (c, next) => {
    const route = answeringRoute(c);
    if (route !== undefined) {
      const needed = requiredScope(route.method, route.path);
      const { scopes, keyId } = c.get('identity');
      if (!scopesAllow(scopes, needed)) {
        const name = `${route.method} ${route.path}`;
        throw new ApiError(
          'forbidden',
          `API key ${keyId} has the scope${scopes.length === 1 ? '' : 's'} ${scopes.map((s) => `\`${s}\``).join(', ')}; ${name} needs \`${needed}\`${needed === 'admin' ? '' : ' (or a wider one)'}. Use a key with that scope: an admin creates one with \`weft keys create --scope ${needed}\` (or POST /api/v1/keys).`,
          { route: name, needed, scopes, keyId },
        );
      }
    }
    await next();
  };
}

/**
 * Start (once) the listener that drops cached keys when any process revokes one. A failure is
 * logged and retried on the next request; meanwhile the cache's short TTL bounds staleness. In
 * `strict` mode (the default in split mode) each request then waits for one round trip on the
 * LISTEN connection, so a key revoked on another server is refused on the next request here
 * (ControlStore.syncBeforeServe).
 */
export function watchControlChanges(
  control: ControlStore,
  logger: Logger,
): MiddlewareHandler<{ Variables: AuthVariables }> {
  let warned = false;
  return async (_c, next) => {
    try {
      await control.watchChanges();
    } catch (error) {
      if (!warned)
        logger.warn(
          { err: error },
          'cannot LISTEN for control-plane changes; revoked keys are refused after up to 5 s instead of at once',
        );
      warned = true;
    }
    // strict mode (split): every control change committed before this request is applied first
    await control.syncBeforeServe();
    await next();
  };
}

export type AuthVariables = { identity: ApiKeyIdentity };

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/**
 * Resolve `Authorization: Bearer <key>`. Unknown and revoked keys get the same answer, so the
 * response never tells a caller that a key once existed. The key itself is never echoed or
 * logged; messages show at most its non-secret prefix (`weft_<environment>_`).
 */
export function requireApiKey(
  control: ControlStore,
): MiddlewareHandler<{ Variables: AuthVariables }> {
  return async (c, next) => {
    const header = c.req.header('authorization');
    if (header === undefined || header.trim() === '') {
      throw unauthorized(
        'missing_key',
        'This route needs an API key: send `Authorization: Bearer <api key>`. `weft dev` prints a local key.',
      );
    }
    const token = BEARER.exec(header)?.[1];
    if (token === undefined) {
      throw unauthorized(
        'malformed_header',
        'The Authorization header is not `Bearer <api key>`; send the key after the word "Bearer" and one space.',
      );
    }
    // Only the prefix is checked here; the full shape is ControlStore.resolveApiKey's business.
    if (!token.startsWith('weft_')) {
      throw unauthorized(
        'malformed_key',
        'The bearer token is not a Weft API key (expected `weft_<environment>_<32 letters and digits>`). Check that the whole key was copied.',
      );
    }
    const identity = await control.resolveApiKey(token);
    if (identity === null) {
      const prefix = token.slice(0, token.lastIndexOf('_') + 1);
      throw unauthorized(
        'unknown_key',
        `The API key ${prefix}… is unknown or has been revoked. Create a new key for the environment.`,
      );
    }
    c.set('identity', identity);
    await next();
  };
}

function unauthorized(reason: string, message: string): ApiError {
  return new ApiError('unauthorized', message, { reason });
}

/**
 * Write each /api/v1 operation's scope into the OpenAPI document (`security: [{ bearerAuth:
 * [scope] }]`, which OpenAPI 3.1 allows for any scheme), from the same table that enforces it.
 */
export function documentScopes<D extends { paths?: Record<string, unknown> }>(
  document: D,
  scheme: string,
): D {
  for (const [path, item] of Object.entries(document.paths ?? {})) {
    if (!path.startsWith('/api/v1/') || typeof item !== 'object' || item === null) continue;
    for (const [method, operation] of Object.entries(item as Record<string, unknown>)) {
      if (typeof operation !== 'object' || operation === null || !('security' in operation))
        continue;
      (operation as { security: unknown }).security = [{ [scheme]: [requiredScope(method, path)] }];
    }
  }
  return document;
}
