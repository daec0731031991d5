/**
 * Reading runs: the keyset-paged list, one run with a step summary, and its step runs.
 */
import { createRoute } from '@hono/zod-openapi';
import { isRunId, runNotFound } from '../errors.js';
import { errorResponses, jsonContent, requiresKey } from '../openapi.js';
import { presentRun, presentRunDetail, presentStepRun } from '../presenters.js';
import {
  ListRunsQuerySchema,
  RunDetailSchema,
  RunListSchema,
  RunParamsSchema,
  StepRunListSchema,
} from '../schemas.js';
import type { ServerApp, ServerDeps } from '../types.js';

const listRuns = createRoute({
  method: 'get',
  path: '/api/v1/runs',
  operationId: 'listRuns',
  tags: ['Runs'],
  summary: 'List runs',
  description:
    'Newest first, ordered by (createdAt, id) descending. Follow `nextCursor` to page; each run appears exactly once across pages, even while new runs are created.',
  security: requiresKey,
  request: { query: ListRunsQuerySchema },
  responses: {
    200: jsonContent(RunListSchema, 'A page of runs.'),
    ...errorResponses(400, 401, 422),
  },
});

const getRun = createRoute({
  method: 'get',
  path: '/api/v1/runs/{runId}',
  operationId: 'getRun',
  tags: ['Runs'],
  summary: 'Get a run',
  description:
    'Status, trigger, timestamps, input and final dataclip ids, lineage, error, and step run counts by status.',
  security: requiresKey,
  request: { params: RunParamsSchema },
  responses: {
    200: jsonContent(RunDetailSchema, 'The run.'),
    ...errorResponses(401, 404),
  },
});

const listStepRuns = createRoute({
  method: 'get',
  path: '/api/v1/runs/{runId}/steps',
  operationId: 'listStepRuns',
  tags: ['Runs'],
  summary: 'List the step runs of a run',
  description:
    'Every step run in creation order, with its attempts, input and output dataclip ids, errors and `reusedFrom`.',
  security: requiresKey,
  request: { params: RunParamsSchema },
  responses: {
    200: jsonContent(StepRunListSchema, 'The step runs.'),
    ...errorResponses(401, 404),
  },
});

export function registerRunRoutes(app: ServerApp, deps: ServerDeps): void {
  const { runs } = deps.stores;

  /**
   * The hot read path. One round trip per run location, in parallel: each is an index range scan
   * of runs_env_created (runs_env_workflow_created with `workflowId`) from the cursor's
   * (created_at, id), reading `limit + 1` rows; status and time filters are applied on that scan.
   * No count(*) and no offset, so page 1,000 costs what page 1 does.
   */
  app.openapi(listRuns, async (c) => {
    const q = c.req.valid('query');
    const page = await runs.listRuns({
      environmentId: c.get('identity').environmentId,
      workflowId: q.workflowId,
      statuses: q.status,
      createdFrom: q.createdFrom,
      createdTo: q.createdTo,
      limit: q.limit,
      cursor: q.cursor,
    });
    return c.json({ data: page.data.map(presentRun), nextCursor: page.nextCursor }, 200);
  });

  app.openapi(getRun, async (c) => {
    const { environmentId } = c.get('identity');
    const { runId } = c.req.valid('param');
    if (!isRunId(runId)) throw runNotFound(runId);
    // Two reads in parallel on the run's location (the id names it): the run row, and one
    // grouped count of its step runs (countStepRuns checks the run's environment itself).
    const [run, counts] = await Promise.all([
      runs.getRun(environmentId, runId),
      runs.countStepRuns(environmentId, runId),
    ]);
    if (!run || !counts) throw runNotFound(runId);
    return c.json(presentRunDetail(run, counts), 200);
  });

  app.openapi(listStepRuns, async (c) => {
    const { runId } = c.req.valid('param');
    if (!isRunId(runId)) throw runNotFound(runId);
    const steps = await runs.listStepRuns(c.get('identity').environmentId, runId);
    if (!steps) throw runNotFound(runId);
    return c.json({ data: steps.map(presentStepRun) }, 200);
  });
}
