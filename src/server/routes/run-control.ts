/**
 * Steering runs over HTTP: cancel, resume a paused run, complete an approval, list a run's
 * waitpoints. The work is engine/run-control.ts's; this module checks ids, maps bodies, and
 * answers unknown ids with messages that say where valid ones come from.
 */
import { createRoute, type z } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import { WeftError } from '../../core/errors.js';
import { parseRunScopedId } from '../../core/ids.js';
import { cancelRun, completeWaitpoint, resumeRun } from '../../engine/run-control.js';
import { listRunWaitpoints } from '../../engine/run-views.js';
import type { WaitpointRecord } from '../../store/run-store.js';
import { jsonBody } from '../body.js';
import { quoteId, isRunId, runNotFound } from '../errors.js';
import { errorResponses, jsonContent, requiresKey } from '../openapi.js';
import { presentRun } from '../presenters.js';
import {
  CompleteWaitpointBodySchema,
  ResumeRunBodySchema,
  RunParamsSchema,
  RunSchema,
  WaitpointListSchema,
  WaitpointParamsSchema,
  WaitpointSchema,
} from '../schemas.js';
import type { ServerApp, ServerDeps } from '../types.js';
import { recordAudit } from './audit.js';

const cancelRoute = createRoute({
  method: 'post',
  path: '/api/v1/runs/{runId}/cancel',
  operationId: 'cancelRun',
  tags: ['Runs'],
  summary: 'Cancel a run',
  description:
    'No new attempts start; running attempts see `ctx.signal` abort; waits and child runs are canceled too. The run ends `canceled`. A run that already ended is a 409 `run_not_active`.',
  security: requiresKey,
  request: { params: RunParamsSchema },
  responses: {
    200: jsonContent(RunSchema, 'The canceled run.'),
    ...errorResponses(401, 404, 409),
  },
});

function resumeRoute(maxBodyBytes: number) {
  return createRoute({
    method: 'post',
    path: '/api/v1/runs/{runId}/resume',
    operationId: 'resumeRun',
    tags: ['Runs'],
    summary: 'Resume a paused run',
    description:
      'For a run paused after a step exhausted its retries (`onExhausted: "pause"`): the paused steps get a fresh attempt budget. A run that is not paused is a 409 `run_not_paused`; `version: "current"` with a current version whose steps differ is a 409 `version_mismatch`.',
    security: requiresKey,
    middleware: [noBodyAsEmpty, jsonBody(maxBodyBytes)] as const,
    request: {
      params: RunParamsSchema,
      body: { content: { 'application/json': { schema: ResumeRunBodySchema } }, required: false },
    },
    responses: {
      200: jsonContent(RunSchema, 'The resumed run.'),
      ...errorResponses(400, 401, 404, 409, 413, 415),
    },
  });
}

const listWaitpointsRoute = createRoute({
  method: 'get',
  path: '/api/v1/runs/{runId}/waitpoints',
  operationId: 'listWaitpoints',
  tags: ['Runs'],
  summary: 'List the waitpoints of a run',
  description:
    'Sleeps, approvals and child-run waits of the run, oldest first. An approval’s `token` is what POST /api/v1/waitpoints/{token}/complete takes.',
  security: requiresKey,
  request: { params: RunParamsSchema },
  responses: {
    200: jsonContent(WaitpointListSchema, 'The waitpoints.'),
    ...errorResponses(401, 404),
  },
});

function completeRoute(maxBodyBytes: number) {
  return createRoute({
    method: 'post',
    path: '/api/v1/waitpoints/{token}/complete',
    operationId: 'completeWaitpoint',
    tags: ['Runs'],
    summary: 'Complete an approval',
    description:
      'Completes an approval token with `{ payload }`; the waiting step runs again with the payload. The payload is checked against the approval’s schema first (422 `invalid_payload`, nothing written). A token completes once: again is a 409 `waitpoint_not_waiting`.',
    security: requiresKey,
    middleware: [noBodyAsEmpty, jsonBody(maxBodyBytes)] as const,
    request: {
      params: WaitpointParamsSchema,
      body: {
        content: { 'application/json': { schema: CompleteWaitpointBodySchema } },
        required: false,
      },
    },
    responses: {
      200: jsonContent(WaitpointSchema, 'The completed waitpoint.'),
      ...errorResponses(400, 401, 404, 409, 413, 415, 422),
    },
  });
}

export function registerRunControlRoutes(app: ServerApp, deps: ServerDeps): void {
  const { stores } = deps;

  app.openapi(cancelRoute, async (c) => {
    const { environmentId } = c.get('identity');
    const { runId } = c.req.valid('param');
    if (!isRunId(runId)) throw runNotFound(runId);
    const run = await notFoundAs(runNotFound(runId), () =>
      cancelRun(stores, environmentId, runId, 'canceled through the API'),
    );
    await recordAudit(c, deps, 'run.cancel', { type: 'run', id: runId });
    return c.json(presentRun(run), 200);
  });

  app.openapi(resumeRoute(deps.maxBodyBytes), async (c) => {
    const { environmentId } = c.get('identity');
    const { runId } = c.req.valid('param');
    const body = c.req.valid('json');
    if (!isRunId(runId)) throw runNotFound(runId);
    const options: { version?: 'original' | 'current' } = {};
    if (body.version !== undefined) options.version = body.version;
    const run = await notFoundAs(runNotFound(runId), () =>
      resumeRun(stores, environmentId, runId, options),
    );
    await recordAudit(
      c,
      deps,
      'run.resume',
      { type: 'run', id: runId },
      body.version === undefined ? undefined : { version: body.version },
    );
    return c.json(presentRun(run), 200);
  });

  app.openapi(listWaitpointsRoute, async (c) => {
    const { environmentId } = c.get('identity');
    const { runId } = c.req.valid('param');
    if (!isRunId(runId)) throw runNotFound(runId);
    // The view checks the run too: waitpoints alone cannot tell "none" from "no such run".
    const waitpoints = await listRunWaitpoints(stores.runs, environmentId, runId);
    if (!waitpoints) throw runNotFound(runId);
    return c.json({ data: waitpoints.map(presentWaitpoint) }, 200);
  });

  app.openapi(completeRoute(deps.maxBodyBytes), async (c) => {
    const { environmentId } = c.get('identity');
    const { token } = c.req.valid('param');
    const body = c.req.valid('json');
    if (parseRunScopedId(token)?.prefix !== 'wp') throw waitpointNotFound(token);
    const waitpoint = await notFoundAs(waitpointNotFound(token), () =>
      completeWaitpoint(stores, environmentId, token, body.payload ?? null),
    );
    await recordAudit(
      c,
      deps,
      'waitpoint.complete',
      { type: 'waitpoint', id: token },
      { runId: waitpoint.runId, stepKey: waitpoint.stepKey },
    );
    return c.json(presentWaitpoint(waitpoint), 200);
  });
}

export function presentWaitpoint(w: WaitpointRecord): z.infer<typeof WaitpointSchema> {
  return {
    token: w.id,
    runId: w.runId,
    stepKey: w.stepKey,
    kind: w.kind,
    status: w.status,
    resumeAt: w.resumeAt,
    payloadSchema: w.payloadSchema,
    payloadDataclipId: w.payloadDataclipId,
    childRunId: w.childRunId,
    createdAt: w.createdAt,
    completedAt: w.completedAt,
  };
}

/**
 * A POST with no body at all (`curl -X POST …/resume`, with or without a JSON content type) means
 * "no fields", like an empty one: both bodies here are optional objects.
 */
const noBodyAsEmpty: MiddlewareHandler = async (c, next) => {
  if (c.req.raw.body === null) {
    const headers = new Headers(c.req.raw.headers);
    headers.set('content-type', 'application/json');
    c.req.raw = new Request(c.req.raw, { body: '{}', headers });
  }
  await next();
};

/** The engine's `not_found` says what is missing; the API's also says where valid ids come from. */
async function notFoundAs<T>(replacement: WeftError, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof WeftError && error.code === 'not_found') throw replacement;
    throw error;
  }
}

function waitpointNotFound(token: string): WeftError {
  return new WeftError(
    'not_found',
    `Waitpoint token ${quoteId(token)} does not exist in the environment of this API key. Tokens look like wp_a0…; a run's tokens are listed by GET /api/v1/runs/{runId}/waitpoints (and sent in its step.waiting events).`,
    { details: { token } },
  );
}
