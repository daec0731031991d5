/**
 * Rerun a run from a step over HTTP (docs/rerun.md): `POST /api/v1/runs/{runId}/rerun`. The work is
 * engine/rerun.ts's; this module maps the body, documents the plan, and answers unknown ids with
 * messages that say where valid ones come from.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { WeftError } from '../../core/errors.js';
import { rerunRun, type RerunRequest } from '../../engine/rerun.js';
import { jsonBody } from '../body.js';
import { dbText } from '../db-text.js';
import { quoteId, isRunId } from '../errors.js';
import { errorResponses, jsonContent, requiresKey } from '../openapi.js';
import { presentRun } from '../presenters.js';
import { RunParamsSchema, RunSchema } from '../schemas.js';
import type { ServerApp, ServerDeps } from '../types.js';
import { recordAudit } from './audit.js';

export const RerunBodySchema = z
  .strictObject({
    fromStep: dbText().min(1).openapi({
      description:
        'The step to run again; it and everything after it rerun. A step inside a loop or parallel body reruns its owner as one unit; `step[k]` (or `loop[k]`) targets one iteration or branch: a loop restarts from iteration k and keeps the iterations before it, a parallel reruns branch k (and any branch that did not succeed) and keeps the others. An index beyond what the source ran is a 422 naming the iterations that exist.',
      example: 'enrich',
    }),
    untilStep: dbText().min(1).optional().openapi({
      description:
        'Stop after this step ("run until here"): steps that do not lead to it are skipped.',
    }),
    version: z.enum(['original', 'current']).optional().openapi({
      description:
        '`original` (default): the version the source run used. `current`: the workflow’s current version; steps whose definition changed rerun (`definition_changed`).',
    }),
    input: z.unknown().optional().openapi({
      description:
        'A new run input; default: the source run’s input, by reference. Root steps whose input changes rerun (`input_changed`).',
    }),
    dryRun: z.boolean().optional().openapi({
      description: 'Return the plan and run nothing (200).',
    }),
  })
  .openapi('RerunRequest');

const PlannedNodeSchema = z
  .object({
    stepId: z.string(),
    scope: z
      .string()
      .nullable()
      .openapi({ description: 'The loop or parallel step whose body holds it.' }),
    fate: z.enum(['rerun', 'reuse', 'skip']),
    reason: z
      .enum([
        'target',
        'definition_changed',
        'new_step',
        'missing_output',
        'upstream_changed',
        'input_changed',
        'previous_failure',
      ])
      .nullable()
      .openapi({ description: 'Why it reruns (or would, when skipped); null when reused.' }),
    detail: z.string(),
    reusedFrom: z
      .string()
      .nullable()
      .openapi({ description: 'The source step run whose result is kept.' }),
    outputDataclipId: z
      .string()
      .nullable()
      .openapi({ description: 'The reused output, by reference (no copy).' }),
  })
  .openapi('RerunPlanNode');

export const RerunPlanSchema = z
  .object({
    fromStep: z.string(),
    untilStep: z.string().nullable(),
    targetUnit: z.string().openapi({
      description:
        'The top-level step `fromStep` names (its loop or parallel owner for a body step).',
    }),
    versionId: z.string().openapi({ description: 'The workflow version the rerun uses.' }),
    nodes: z.array(PlannedNodeSchema).openapi({
      description: 'Every step of the version, top level in order, body steps after their owner.',
    }),
    counts: z.object({ rerun: z.int(), reuse: z.int(), skip: z.int() }),
    notes: z.array(z.string()),
    iterations: z
      .object({
        owner: z.string().openapi({ description: 'The loop or parallel step targeted.' }),
        kind: z.enum(['loop', 'parallel']),
        target: z.int().openapi({ description: 'The iteration or branch `fromStep` names.' }),
        sourceCount: z.int().openapi({ description: 'Iterations the source run ran.' }),
        reuse: z.array(z.int()).openapi({ description: 'Iterations kept, by reference.' }),
        rerun: z.array(z.int()).openapi({
          description: 'Iterations that run again (a loop also runs any later ones it reaches).',
        }),
        within: z
          .object({
            iteration: z.int(),
            rerun: z.array(z.string()).openapi({
              description: 'Body steps of that iteration that run again: the target and after.',
            }),
            reuse: z.array(z.string()).openapi({
              description: 'Body steps of that iteration kept from the source (before the target).',
            }),
          })
          .nullable()
          .openapi({
            description:
              'Inside the targeted iteration: which body steps rerun and which are kept; null when it reruns in full.',
          }),
      })
      .nullable()
      .openapi({
        description:
          'Set when `fromStep` targets one iteration or branch (`s[k]`) and other iterations are kept; null otherwise (the notes say why when an owner restarts from 0).',
      }),
  })
  .openapi('RerunPlan');

function rerunRoute(maxBodyBytes: number) {
  return createRoute({
    method: 'post',
    path: '/api/v1/runs/{runId}/rerun',
    operationId: 'rerunRun',
    tags: ['Runs'],
    summary: 'Rerun a run from a step',
    description:
      'Starts a new run (trigger `rerun`, `rerunOf` set) that reruns `fromStep`, everything after it, and every step whose result cannot be reused (changed, new, failed, missing, different input); all other steps are reused by reference. The plan lists every step with its fate and reason. `dryRun: true` returns only the plan. Errors: `fromStep` not in the version → 422 `unknown_step`; a needed output not kept by the project → 409 `dataclips_wiped`; a run still active → 409 `run_not_ended`.',
    security: requiresKey,
    middleware: [jsonBody(maxBodyBytes)] as const,
    request: {
      params: RunParamsSchema,
      body: { content: { 'application/json': { schema: RerunBodySchema } }, required: true },
    },
    responses: {
      201: jsonContent(
        z.object({ run: RunSchema, plan: RerunPlanSchema }).openapi('RerunResult'),
        'The rerun was created.',
      ),
      200: jsonContent(
        z.object({ plan: RerunPlanSchema }).openapi('RerunDryRun'),
        'The plan of a dry run; nothing was written.',
      ),
      ...errorResponses(400, 401, 404, 409, 413, 415, 422),
    },
  });
}

export function registerRerunRoutes(app: ServerApp, deps: ServerDeps): void {
  app.openapi(rerunRoute(deps.maxBodyBytes), async (c) => {
    const { environmentId } = c.get('identity');
    const { runId } = c.req.valid('param');
    const body = c.req.valid('json');
    const notFound = new WeftError(
      'not_found',
      `Run ${quoteId(runId)} does not exist in the environment of this API key. Run ids look like run_a0…; list runs with GET /api/v1/runs.`,
      { details: { runId } },
    );
    if (!isRunId(runId)) throw notFound;
    const request: RerunRequest = { fromStep: body.fromStep };
    if (body.untilStep !== undefined) request.untilStep = body.untilStep;
    if (body.version !== undefined) request.version = body.version;
    if (body.input !== undefined) request.input = body.input;
    if (body.dryRun !== undefined) request.dryRun = body.dryRun;
    let result;
    try {
      result = await rerunRun(deps.stores, environmentId, runId, request);
    } catch (error) {
      if (error instanceof WeftError && error.code === 'not_found') throw notFound;
      throw error;
    }
    const plan = { ...result.plan, versionId: result.versionId };
    if (result.run === null) return c.json({ plan }, 200);
    await recordAudit(
      c,
      deps,
      'run.rerun',
      { type: 'run', id: runId },
      { newRunId: result.run.id, fromStep: body.fromStep },
    );
    return c.json({ run: presentRun(result.run), plan }, 201);
  });
}
