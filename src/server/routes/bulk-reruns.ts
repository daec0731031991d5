/**
 * Bulk recovery over HTTP: `POST /api/v1/bulk-reruns` (a dry-run summary, or a tracked action that
 * reruns every selected run from its failed step) and `GET /api/v1/bulk-reruns/{id}` (progress).
 * The work is engine/bulk-rerun.ts's; this module validates, documents and answers.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { WeftError } from '../../core/errors.js';
import {
  createBulkRerun,
  MAX_BULK_RUNS,
  BULK_DRY_RUN_SAMPLE,
  processBulkRerunBatch,
  selectBulkRuns,
  summarizeBulkRerun,
  bulkStoreOf,
  type BulkRerunRequest,
} from '../../engine/bulk-rerun.js';
import { prepareRerun } from '../../engine/rerun.js';
import type { BulkRerunItem, BulkRerunRecord } from '../../store/bulk-rerun-store.js';
import { isBulkId } from '../../store/bulk-rerun-store.js';
import type { Logger } from '../../engine/logger.js';
import type { Stores } from '../../store/stores.js';
import { jsonBody } from '../body.js';
import { dbText } from '../db-text.js';
import { quoteId } from '../errors.js';
import { errorResponses, jsonContent, requiresKey } from '../openapi.js';
import type { ServerApp, ServerDeps } from '../types.js';
import { recordAudit } from './audit.js';

const Time = z.iso
  .datetime({ offset: true, error: 'expected an ISO 8601 date-time such as 2025-01-31T09:30:00Z' })
  .refine((v) => !v.startsWith('0000'), {
    error: 'year 0000 does not exist; the earliest is 0001',
  });

export const BulkRerunBodySchema = z
  .strictObject({
    filter: z
      .strictObject({
        // An id no workflow can have is a missing workflow like any other: 404 unknown_workflow,
        // as on every route (not a 400 here and a 404 there).
        workflowId: dbText().min(1).max(200).openapi({ example: 'onboarding' }),
        status: z
          .array(z.enum(['failed', 'succeeded', 'canceled']))
          .min(1)
          .optional()
          .openapi({ description: 'Runs in any of these (ended) statuses. Default `["failed"]`.' }),
        createdFrom: Time.optional().openapi({
          description: 'Runs created at or after this instant.',
        }),
        createdTo: Time.optional().openapi({
          description: 'Runs created before this instant (exclusive).',
        }),
      })
      .refine(
        (f) =>
          !f.createdFrom || !f.createdTo || Date.parse(f.createdFrom) <= Date.parse(f.createdTo),
        { message: 'createdFrom is after createdTo; swap them', path: ['createdFrom'] },
      )
      .openapi({ description: `Which runs: at most ${MAX_BULK_RUNS}.` }),
    fromStep: dbText().min(1).max(200).optional().openapi({
      description:
        'Rerun every run from this step (`s`, or one iteration `s[3]`). Default: each run from the step that failed it.',
    }),
    version: z.enum(['original', 'current']).optional().openapi({
      description: '`original` (default): each run’s own version. `current`: the current one.',
    }),
    dryRun: z.boolean().optional().openapi({
      description: 'Return the summary only; nothing is written (200).',
    }),
  })
  .openapi('BulkRerunRequest');

const SummarySchema = z
  .object({
    runs: z.int().openapi({ description: 'Runs the filter selects.' }),
    planned: z.int().openapi({
      description: `Runs planned for this summary: the first ${BULK_DRY_RUN_SAMPLE}, newest first.`,
    }),
    steps: z
      .array(z.object({ stepId: z.string(), rerun: z.int(), reuse: z.int(), skip: z.int() }))
      .openapi({
        description: 'Per step: in how many planned runs it reruns, is reused, skipped.',
      }),
    fromSteps: z.array(z.object({ fromStep: z.string(), runs: z.int() })),
    problems: z
      .array(z.object({ runId: z.string(), code: z.string(), message: z.string() }))
      .openapi({ description: 'Planned runs that cannot be rerun, and why (at most 20).' }),
  })
  .openapi('BulkRerunSummary');

const BulkRerunSchema = z
  .object({
    id: z.string().openapi({ example: 'bulk_01jh8k2m3n4p5q6r7s8t9v0w1x' }),
    status: z.enum(['running', 'succeeded', 'failed']).openapi({
      description:
        '`running` until every selected run was handled; then `succeeded`, or `failed` when some could not be rerun (see `items`).',
    }),
    total: z.int(),
    done: z.int().openapi({ description: 'Runs rerun so far.' }),
    failed: z.int().openapi({ description: 'Runs that could not be rerun.' }),
    runIds: z.array(z.string()).openapi({ description: 'The reruns created so far, in order.' }),
    items: z
      .array(
        z.object({
          sourceRunId: z.string(),
          status: z.enum(['pending', 'done', 'failed']),
          rerunId: z.string().nullable(),
          fromStep: z.string().nullable(),
          error: z.object({ code: z.string(), message: z.string() }).nullable(),
        }),
      )
      .openapi({ description: 'Every selected run, in order, and what became of it.' }),
    filter: z.record(z.string(), z.unknown()),
    fromStep: z.string().nullable(),
    version: z.enum(['original', 'current']),
    createdAt: z.string(),
    updatedAt: z.string(),
    finishedAt: z.string().nullable(),
  })
  .openapi('BulkRerun');

const BulkParamsSchema = z.object({
  id: dbText().openapi({
    param: { name: 'id', in: 'path' },
    example: 'bulk_01jh8k2m3n4p5q6r7s8t9v0w1x',
  }),
});

function presentBulk(
  bulk: BulkRerunRecord,
  items: BulkRerunItem[],
): z.infer<typeof BulkRerunSchema> {
  return {
    id: bulk.id,
    status: bulk.status,
    total: bulk.total,
    done: bulk.done,
    failed: bulk.failed,
    runIds: items.filter((i) => i.rerunId !== null).map((i) => i.rerunId!),
    items: items.map((i) => ({
      sourceRunId: i.sourceRunId,
      status: i.status,
      rerunId: i.rerunId,
      fromStep: i.fromStep,
      error: i.error,
    })),
    filter: { ...bulk.filter },
    fromStep: bulk.fromStep,
    version: bulk.version,
    createdAt: bulk.createdAt,
    updatedAt: bulk.updatedAt,
    finishedAt: bulk.finishedAt,
  };
}

function createBulkRoute(maxBodyBytes: number) {
  return createRoute({
    method: 'post',
    path: '/api/v1/bulk-reruns',
    operationId: 'createBulkRerun',
    tags: ['Runs'],
    summary: 'Rerun many runs (bulk recovery)',
    description:
      'Selects runs by `filter` (default: failed ones) and reruns each from its failed step, or from `fromStep`. `dryRun: true` answers 200 with a summary (how many runs, per step how often it reruns or is reused) and writes nothing; otherwise 202 with a tracked action, processed in batches by any Weft process (exactly once per run, resumed after a crash); follow it with GET /api/v1/bulk-reruns/{id}. Errors: unknown workflow → 404; nothing matches, or more than 10000 runs → 422; `fromStep` not in the workflow → 422 `unknown_step`.',
    security: requiresKey,
    middleware: [jsonBody(maxBodyBytes)] as const,
    request: {
      body: { content: { 'application/json': { schema: BulkRerunBodySchema } }, required: true },
    },
    responses: {
      200: jsonContent(
        z.object({ summary: SummarySchema }).openapi('BulkRerunDryRun'),
        'The dry-run summary; nothing was written.',
      ),
      202: jsonContent(BulkRerunSchema, 'The action was stored; processing has started.'),
      ...errorResponses(400, 401, 404, 413, 415, 422),
    },
  });
}

const getBulkRoute = createRoute({
  method: 'get',
  path: '/api/v1/bulk-reruns/{id}',
  operationId: 'getBulkRerun',
  tags: ['Runs'],
  summary: 'Get a bulk rerun’s progress',
  description: 'Status, counts, the reruns created so far, and what became of each selected run.',
  security: requiresKey,
  request: { params: BulkParamsSchema },
  responses: {
    200: jsonContent(BulkRerunSchema, 'The action.'),
    ...errorResponses(401, 404),
  },
});

/** Start on a new action at once, in the background; a dead process leaves it to the others. */
function drainSoon(stores: Stores, logger: Logger): void {
  void (async () => {
    for (let i = 0; i < 1000; i++) {
      const bulk = await processBulkRerunBatch(stores, { logger });
      if (!bulk) return;
    }
  })().catch((error: unknown) =>
    logger.warn({ err: error }, 'bulk rerun batch failed; a worker will retry'),
  );
}

export function registerBulkRerunRoutes(app: ServerApp, deps: ServerDeps): void {
  app.openapi(createBulkRoute(deps.maxBodyBytes), async (c) => {
    const { environmentId } = c.get('identity');
    const body = c.req.valid('json');
    const request: BulkRerunRequest = { filter: body.filter };
    if (body.fromStep !== undefined) request.fromStep = body.fromStep;
    if (body.version !== undefined) request.version = body.version;
    const runs = await selectBulkRuns(deps.stores, environmentId, body.filter);
    if (request.fromStep !== undefined) {
      // A step the workflow does not have fails every run alike: say so now, not per run.
      try {
        await prepareRerun(deps.stores, environmentId, runs[0]!.id, {
          fromStep: request.fromStep,
          version: request.version,
          dryRun: true,
        });
      } catch (error) {
        if (error instanceof WeftError && error.code === 'unknown_step') throw error;
      }
    }
    if (body.dryRun) {
      const summary = await summarizeBulkRerun(deps.stores, environmentId, request, runs);
      return c.json({ summary }, 200);
    }
    const bulk = await createBulkRerun(deps.stores, environmentId, request, runs);
    drainSoon(deps.stores, deps.logger);
    const read = await bulkStoreOf(deps.stores).get(environmentId, bulk.id);
    await recordAudit(
      c,
      deps,
      'bulk_rerun.create',
      { type: 'bulk_rerun', id: bulk.id },
      { workflowId: body.filter.workflowId, runs: runs.length },
    );
    return c.json(presentBulk(read!.bulk, read!.items), 202);
  });

  app.openapi(getBulkRoute, async (c) => {
    const { environmentId } = c.get('identity');
    const { id } = c.req.valid('param');
    const notFound = new WeftError(
      'not_found',
      `Bulk rerun ${quoteId(id)} does not exist in the environment of this API key. Ids look like bulk_…; POST /api/v1/bulk-reruns returns one.`,
      { details: { id } },
    );
    if (!isBulkId(id)) throw notFound;
    const read = await bulkStoreOf(deps.stores).get(environmentId, id);
    if (!read) throw notFound;
    return c.json(presentBulk(read.bulk, read.items), 200);
  });
}
