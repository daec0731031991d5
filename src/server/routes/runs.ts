/**
 * Reading runs: the keyset-paged list, one run with a step summary, and its step runs.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { ID_PATTERN } from '../../core/graph.js';
import { RUN_STATUSES, type RunStatus } from '../../store/rows.js';
import {
  countRuns as countRunsIn,
  getRunDetail,
  getRunState as readRunState,
  listRuns as listRunsIn,
  listStepRuns as listStepRunsOf,
} from '../../engine/run-views.js';
import { readLocations } from '../../engine/cutover.js';
import { dbText } from '../db-text.js';
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
    'Every step run in creation order, with its attempts (errors, stacks, durations), input and output dataclip ids, state patch, and `reusedFrom`. On a rerun, the steps it reused from earlier runs are listed too (after its own rows, `reusedFrom` naming the run and step run), so a rerun reads as a whole run.',
  security: requiresKey,
  request: { params: RunParamsSchema },
  responses: {
    200: jsonContent(StepRunListSchema, 'The step runs.'),
    ...errorResponses(401, 404),
  },
});

const CountTime = z.iso
  .datetime({ offset: true, error: 'expected an ISO 8601 date-time such as 2025-01-31T09:30:00Z' })
  .refine((v) => !v.startsWith('0000'), {
    error: 'year 0000 does not exist; the earliest is 0001',
  });

export const RunCountsQuerySchema = z
  .strictObject({
    workflowId: dbText()
      .regex(ID_PATTERN, 'not a workflow id (letters, digits, "_", "." and "-", at most 100)')
      .optional()
      .openapi({ param: { name: 'workflowId', in: 'query' }, example: 'onboarding' }),
    createdFrom: CountTime.optional().openapi({
      param: { name: 'createdFrom', in: 'query' },
      description: 'Runs created at or after this instant (ISO 8601).',
    }),
    createdTo: CountTime.optional().openapi({
      param: { name: 'createdTo', in: 'query' },
      description: 'Runs created before this instant (ISO 8601, exclusive).',
    }),
  })
  .refine(
    (q) => !q.createdFrom || !q.createdTo || Date.parse(q.createdFrom) <= Date.parse(q.createdTo),
    { message: 'createdFrom is after createdTo; swap them', path: ['createdFrom'] },
  );

const RunCountsSchema = z
  .object({
    counts: z.object(
      Object.fromEntries(RUN_STATUSES.map((s) => [s, z.int()])) as Record<RunStatus, z.ZodInt>,
    ),
  })
  .openapi('RunCounts');

const countRuns = createRoute({
  method: 'get',
  path: '/api/v1/runs/counts',
  operationId: 'countRuns',
  tags: ['Runs'],
  summary: 'Count runs by status',
  description:
    'How many runs of the environment are in each status (every status present, 0 when none), optionally of one workflow and created in a time range. One grouped query per run location.',
  security: requiresKey,
  request: { query: RunCountsQuerySchema },
  responses: {
    200: jsonContent(RunCountsSchema, 'Counts per status.'),
    ...errorResponses(400, 401, 422),
  },
});

const RunStateSchema = z
  .object({
    runId: z.string(),
    state: z.record(z.string(), z.unknown()).openapi({
      description: 'The run state: top-level keys set by committed steps (`ctx.state`).',
    }),
    finalState: z.unknown().openapi({
      description:
        'The run’s final output (its single leaf’s output, or a map by step id); null until it ends, or when the project does not save dataclips.',
    }),
    finalDataclipId: z.string().nullable(),
  })
  .openapi('RunState');

const getRunState = createRoute({
  method: 'get',
  path: '/api/v1/runs/{runId}/state',
  operationId: 'getRunState',
  tags: ['Runs'],
  summary: 'Get the run state and final state',
  description: 'The run state and the final state in one read.',
  security: requiresKey,
  request: { params: RunParamsSchema },
  responses: {
    200: jsonContent(RunStateSchema, 'The states.'),
    ...errorResponses(401, 404),
  },
});

export function registerRunRoutes(app: ServerApp, deps: ServerDeps): void {
  const { runs } = deps.stores;

  // Registered before GET /runs/{runId}, which would otherwise take `counts` for a run id.
  app.openapi(countRuns, async (c) => {
    const q = c.req.valid('query');
    const query = {
      environmentId: c.get('identity').environmentId,
      workflowId: q.workflowId,
      createdFrom: q.createdFrom,
      createdTo: q.createdTo,
    };
    return c.json({ counts: await countRunsIn(runs, query) }, 200);
  });

  app.openapi(getRunState, async (c) => {
    const { runId } = c.req.valid('param');
    if (!isRunId(runId)) throw runNotFound(runId);
    const read = await readRunState(runs, c.get('identity').environmentId, runId);
    if (!read) throw runNotFound(runId);
    return c.json(
      {
        runId,
        state: read.state,
        finalState: read.finalState,
        finalDataclipId: read.finalDataclipId,
      },
      200,
    );
  });

  /**
   * The hot read path. One round trip per run location, in parallel: each is an index range scan
   * of runs_env_created (runs_env_workflow_created with `workflowId`) from the cursor's
   * (created_at, id), reading `limit + 1` rows; status and time filters are applied on that scan.
   * No count(*) and no offset, so page 1,000 costs what page 1 does.
   */
  app.openapi(listRuns, async (c) => {
    const q = c.req.valid('query');
    const environmentId = c.get('identity').environmentId;
    // Only the locations the organization ever minted into (engine/cutover.ts): an organization
    // never cut over reads its one location. The environment row is cached: no added query.
    const env = await deps.stores.control.getEnvironment(environmentId);
    // With the analytics mirror and `runsListFrom: 'analytics'`, a filtered list is answered by
    // ClickHouse (fresh to the replication lag, docs/analytics.md); a list of given run ids is a
    // by-id read: PostgreSQL.
    const list =
      deps.runsListFromAnalytics && deps.analytics.source === 'clickhouse' && !q.runId
        ? (query: Parameters<typeof listRunsIn>[1]) => deps.analytics.listRuns(query)
        : (query: Parameters<typeof listRunsIn>[1]) => listRunsIn(runs, query);
    const page = await list({
      environmentId,
      workflowId: q.workflowId,
      statuses: q.status,
      createdFrom: q.createdFrom,
      createdTo: q.createdTo,
      limit: q.limit,
      cursor: q.cursor,
      runIds: q.runId,
      locations: env ? readLocations(env.flags, runs) : undefined,
    });
    return c.json({ data: page.data.map(presentRun), nextCursor: page.nextCursor }, 200);
  });

  app.openapi(getRun, async (c) => {
    const { environmentId } = c.get('identity');
    const { runId } = c.req.valid('param');
    if (!isRunId(runId)) throw runNotFound(runId);
    // Two reads in parallel on the run's location (the id names it): the run row, and one
    // grouped count of its step runs.
    const detail = await getRunDetail(runs, environmentId, runId);
    if (!detail) throw runNotFound(runId);
    return c.json(presentRunDetail(detail.run, detail.counts), 200);
  });

  app.openapi(listStepRuns, async (c) => {
    const { runId } = c.req.valid('param');
    if (!isRunId(runId)) throw runNotFound(runId);
    const steps = await listStepRunsOf(runs, c.get('identity').environmentId, runId);
    if (!steps) throw runNotFound(runId);
    return c.json({ data: steps.map(presentStepRun) }, 200);
  });
}
