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
    'Ready when the control-plane and run-ops databases answer and their schemas are migrated to this build.',
  responses: {
    200: jsonContent(ReadySchema, 'Ready to serve.'),
    ...errorResponses(503),
  },
});

export function registerHealthRoutes(app: ServerApp, deps: ServerDeps): void {
  app.openapi(healthz, (c) => c.json({ status: 'ok' as const }, 200));

  app.openapi(readyz, async (c) => {
    const verdict = await withTimeout(deps.stores.isReady(), READY_TIMEOUT_MS).catch(
      (error: unknown) => {
        deps.logger.warn({ err: error }, 'readiness check failed');
        return 'failed' as const;
      },
    );
    if (verdict === true) return c.json({ status: 'ready' as const }, 200);
    const reason =
      verdict === 'timeout'
        ? `the database did not answer within ${READY_TIMEOUT_MS} ms`
        : verdict === 'failed'
          ? 'the readiness check failed (see the server log)'
          : 'a database is unreachable, or its schema is not migrated to this version of Weft (run the migrations, or deploy the matching version)';
    throw new ApiError('not_ready', `Not ready: ${reason}.`, {
      reason: verdict === false ? 'unreachable_or_not_migrated' : verdict,
    });
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
