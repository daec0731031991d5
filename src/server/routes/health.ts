/**
 * Probes. Liveness says the process answers; readiness says it can serve: the databases answer
 * and their migrations match this build. Neither needs an API key (load balancers have none).
 */
import { createRoute } from '@hono/zod-openapi';
import { ApiError } from '../errors.js';
import { errorResponses, jsonContent } from '../openapi.js';
import { HealthSchema, ReadySchema } from '../schemas.js';
import type { ServerApp, ServerDeps } from '../types.js';

/** A hung pool must not hang the probe: past this, the database counts as not answering. */
export const READY_TIMEOUT_MS = 2_000;

const healthz = createRoute({
  method: 'get',
  path: '/healthz',
  operationId: 'healthz',
  tags: ['Health'],
  summary: 'Liveness',
  responses: { 200: jsonContent(HealthSchema, 'The process is up.') },
});

const readyz = createRoute({
  method: 'get',
  path: '/readyz',
  operationId: 'readyz',
  tags: ['Health'],
  summary: 'Readiness',
  description:
    'Ready when the control-plane and run-ops databases answer, their schemas are migrated to this build, and the LISTEN connection (live events, run waits) is up. The 503 body names the reason: `database_unreachable`, `not_migrated` or `listener_down`.',
  responses: {
    200: jsonContent(ReadySchema, 'Ready to serve.'),
    ...errorResponses(503),
  },
});

export function registerHealthRoutes(app: ServerApp, deps: ServerDeps): void {
  app.openapi(healthz, (c) => c.json({ status: 'ok' as const }, 200));

  app.openapi(readyz, async (c) => {
    const verdict = await withTimeout(deps.stores.readiness(), READY_TIMEOUT_MS).catch(
      (error: unknown) => {
        deps.logger.warn({ err: error }, 'readiness check failed');
        return 'failed' as const;
      },
    );
    if (verdict !== 'timeout' && verdict !== 'failed' && verdict.ready) {
      const down = listenerDown(deps);
      if (!down) return c.json({ status: 'ready' as const }, 200);
      deps.logger.warn(
        { lastError: down.lastError, downMs: down.downMs },
        'LISTEN connection down',
      );
      throw new ApiError(
        'not_ready',
        `Not ready: the LISTEN connection to the run-ops database has been down for ${down.downMs} ms (reconnecting with backoff; ${down.failedAttempts} failed attempts so far). Until it is back, live events and run waits fall back to polling. The database itself answers, so this usually clears within seconds; if it persists, check max_connections and the server log.`,
        { reason: 'listener_down', database: 'run_ops', downMs: down.downMs },
      );
    }
    if (verdict === 'timeout' || verdict === 'failed') {
      const reason =
        verdict === 'timeout'
          ? `the database did not answer within ${READY_TIMEOUT_MS} ms`
          : 'the readiness check failed (see the server log)';
      throw new ApiError('not_ready', `Not ready: ${reason}.`, { reason: verdict });
    }
    if (verdict.reason === 'unreachable') {
      // The driver's message may name hosts and users: it goes to the log, not to the probe.
      deps.logger.warn(
        { database: verdict.database, err: verdict.message },
        'database unreachable',
      );
      const which =
        verdict.database === 'control'
          ? 'control-plane (DATABASE_URL)'
          : 'run-ops (RUN_OPS_DATABASE_URL)';
      throw new ApiError(
        'not_ready',
        `Not ready: the ${which} database is unreachable (see the server log for the driver's error). Check that it is up and that the URL is right.`,
        { reason: 'database_unreachable', database: verdict.database },
      );
    }
    throw new ApiError(
      'not_ready',
      `Not ready: schema${verdict.schemas.length > 1 ? 's' : ''} ${verdict.schemas.map((s) => `"${s}"`).join(', ')} ${verdict.schemas.length > 1 ? 'are' : 'is'} not migrated to this version of Weft. Run \`weft migrate\` (same database URLs), or deploy the version that matches the database.`,
      { reason: 'not_migrated', schemas: verdict.schemas },
    );
  });
}

/** The LISTEN connection's outage, if it is down (PostgreSQL; PGlite has none to lose). */
function listenerDown(
  deps: ServerDeps,
): { downMs: number; failedAttempts: number; lastError: string | undefined } | undefined {
  const health = deps.stores.runOpsDb.listenerHealth?.();
  if (health?.state !== 'down') return undefined;
  return {
    downMs: Date.now() - health.since.getTime(),
    failedAttempts: health.failedAttempts,
    lastError: health.lastError,
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
