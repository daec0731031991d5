/**
 * Workflows of the key's environment, and triggering a run of one.
 */
import { createRoute } from '@hono/zod-openapi';
import { listWorkflowIds, unknownWorkflow, type WeftError } from '../../core/errors.js';
import { ID_PATTERN } from '../../core/graph.js';
import { resolveTrigger, triggerRun } from '../../engine/trigger.js';
import { listVersionStepHashes } from '../../store/workflow-reads.js';
import { jsonBody } from '../body.js';
import { quoteId, toErrorResponse } from '../errors.js';
import { errorResponses, jsonContent, requiresKey } from '../openapi.js';
import { presentRun, presentWorkflow, presentWorkflowDetail } from '../presenters.js';
import {
  MAX_TRIGGER_BATCH,
  TriggerBatchBodySchema,
  TriggerBatchResponseSchema,
  TriggerBodySchema,
  TriggeredRunSchema,
  WorkflowDetailSchema,
  WorkflowListSchema,
  WorkflowParamsSchema,
} from '../schemas.js';
import type { ServerApp, ServerDeps } from '../types.js';

const listWorkflows = createRoute({
  method: 'get',
  path: '/api/v1/workflows',
  operationId: 'listWorkflows',
  tags: ['Workflows'],
  summary: 'List workflows',
  description:
    'Every workflow registered in the environment, ordered by id, with its current version.',
  security: requiresKey,
  responses: {
    200: jsonContent(WorkflowListSchema, 'The workflows.'),
    ...errorResponses(401),
  },
});

const getWorkflow = createRoute({
  method: 'get',
  path: '/api/v1/workflows/{workflowId}',
  operationId: 'getWorkflow',
  tags: ['Workflows'],
  summary: 'Get a workflow',
  description:
    'The graph (nodes and edges) of the current version, and every version, newest first.',
  security: requiresKey,
  request: { params: WorkflowParamsSchema },
  responses: {
    200: jsonContent(WorkflowDetailSchema, 'The workflow.'),
    ...errorResponses(401, 404),
  },
});

export function createTriggerRoute(maxBodyBytes: number) {
  return createRoute({
    method: 'post',
    path: '/api/v1/workflows/{workflowId}/runs',
    operationId: 'triggerRun',
    tags: ['Runs'],
    summary: 'Trigger a run',
    description:
      'Starts a run of the current version. The run, its input and its first ready steps are committed before the answer. ' +
      'With an `idempotencyKey` seen before (same workflow, within its TTL) and the same input, the earlier run is returned with 200 and `deduplicated: true`.',
    security: requiresKey,
    middleware: [jsonBody(maxBodyBytes)] as const,
    request: {
      params: WorkflowParamsSchema,
      body: { content: { 'application/json': { schema: TriggerBodySchema } }, required: false },
    },
    responses: {
      201: {
        ...jsonContent(TriggeredRunSchema, 'The run was created.'),
        headers: {
          Location: { description: 'The run: /api/v1/runs/{id}', schema: { type: 'string' } },
        },
      },
      200: jsonContent(
        TriggeredRunSchema,
        'The idempotency key matched an earlier run; that run is returned.',
      ),
      ...errorResponses(400, 401, 404, 409, 413, 415, 422),
    },
  });
}

export function createTriggerBatchRoute(maxBodyBytes: number) {
  return createRoute({
    method: 'post',
    path: '/api/v1/workflows/{workflowId}/runs/batch',
    operationId: 'triggerRunBatch',
    tags: ['Runs'],
    summary: 'Trigger many runs',
    description:
      `Starts up to ${MAX_TRIGGER_BATCH} runs of the current version in one request, each item as the body of a single trigger. ` +
      'Answers 200 once every item is settled, with one result per item in order: the run (201 created, or 200 when its idempotency key matched an earlier run) or the error a single trigger would have answered (an input its schema refuses, an idempotency conflict, …). ' +
      'An item that is refused starts nothing and does not affect the others. What no item can change refuses the whole request and starts nothing: an unknown workflow (404), a paused environment (409), a body that is not this shape (400, naming the field, e.g. `items[3].input`). ' +
      'Runs that arrive together are written together (group commit), so a batch costs far less than as many single triggers.',
    security: requiresKey,
    middleware: [jsonBody(maxBodyBytes)] as const,
    request: {
      params: WorkflowParamsSchema,
      body: { content: { 'application/json': { schema: TriggerBatchBodySchema } }, required: true },
    },
    responses: {
      200: jsonContent(TriggerBatchResponseSchema, 'Every item settled; see each result.'),
      ...errorResponses(400, 401, 404, 409, 413, 415, 422),
    },
  });
}

export function registerWorkflowRoutes(app: ServerApp, deps: ServerDeps): void {
  const { stores } = deps;

  app.openapi(listWorkflows, async (c) => {
    const workflows = await stores.control.listWorkflows(c.get('identity').environmentId);
    return c.json({ data: workflows.map(presentWorkflow) }, 200);
  });

  app.openapi(getWorkflow, async (c) => {
    const { environmentId } = c.get('identity');
    const { workflowId } = c.req.valid('param');
    if (!ID_PATTERN.test(workflowId)) throw workflowNotFound(workflowId);
    // Three reads in parallel (the step hashes come out of each version's stored graph); the list
    // of workflows is read only to explain a 404.
    const [workflow, versions, stepHashes] = await Promise.all([
      stores.control.getWorkflow(environmentId, workflowId),
      stores.control.listVersions(environmentId, workflowId),
      listVersionStepHashes(stores.controlDb, stores.schemas.control, environmentId, workflowId),
    ]);
    if (!workflow) {
      const workflows = await stores.control.listWorkflows(environmentId);
      throw workflowNotFound(
        workflowId,
        workflows.map((w) => w.id),
      );
    }
    return c.json(presentWorkflowDetail(workflow, versions, stepHashes), 200);
  });

  app.openapi(createTriggerRoute(deps.maxBodyBytes), async (c) => {
    const identity = c.get('identity');
    const { workflowId } = c.req.valid('param');
    const body = c.req.valid('json');
    checkWorkflowId(workflowId);
    const result = await triggerRun(stores, {
      environmentId: identity.environmentId,
      workflowId,
      input: body.input,
      idempotencyKey: body.idempotencyKey,
      idempotencyTtlMs: body.idempotencyKeyTTL,
      trigger: { kind: body.source ?? 'api', ref: identity.keyId },
    });
    const run = { ...presentRun(result.run), deduplicated: result.deduplicated };
    if (result.deduplicated) return c.json(run, 200);
    return c.json(run, 201, { Location: `/api/v1/runs/${result.run.id}` });
  });

  app.openapi(createTriggerBatchRoute(deps.maxBodyBytes), async (c) => {
    const identity = c.get('identity');
    const { workflowId } = c.req.valid('param');
    const body = c.req.valid('json');
    checkWorkflowId(workflowId);
    // what no item can change refuses the request as a whole, before any run is written
    await resolveTrigger(stores, identity.environmentId, workflowId);
    const requestId = c.get('requestId');
    // all at once: the store writes the runs of triggers that arrive together in a few
    // statements (src/store/runs/creation-batch.ts); each item still settles on its own
    const data = await Promise.all(
      body.items.map((item, index) =>
        triggerRun(stores, {
          environmentId: identity.environmentId,
          workflowId,
          input: item.input,
          idempotencyKey: item.idempotencyKey,
          idempotencyTtlMs: item.idempotencyKeyTTL,
          trigger: { kind: body.source ?? 'api', ref: identity.keyId },
        }).then(
          (result) => ({
            index,
            status: result.deduplicated ? (200 as const) : (201 as const),
            run: { ...presentRun(result.run), deduplicated: result.deduplicated },
          }),
          (error: unknown) => {
            const refused = toErrorResponse(error, requestId);
            if (refused.unexpected)
              deps.logger.error(
                { err: error, requestId, workflowId, index },
                'batch trigger item failed unexpectedly',
              );
            return { index, status: refused.status, error: refused.body.error };
          },
        ),
      ),
    );
    const count = (f: (r: (typeof data)[number]) => boolean) => data.filter(f).length;
    return c.json(
      {
        data,
        created: count((r) => r.status === 201),
        deduplicated: count((r) => r.status === 200),
        refused: count((r) => 'error' in r),
      },
      200,
    );
  });
}

/** A trigger's workflow id that cannot be one: 404 `unknown_workflow`, saying what an id is. */
function checkWorkflowId(workflowId: string): void {
  if (!ID_PATTERN.test(workflowId)) {
    throw unknownWorkflow(
      workflowId,
      `${quoteId(workflowId)} is not a workflow id: ids are 1–100 letters, digits, "_", "." or "-", starting with a letter or digit. List workflows with GET /api/v1/workflows.`,
    );
  }
}

/** The same 404 `unknown_workflow` as a trigger of an unknown workflow (core/errors.ts). */
function workflowNotFound(workflowId: string, known?: string[]): WeftError {
  const list = known === undefined ? '' : ` Registered: ${listWorkflowIds(known)}.`;
  return unknownWorkflow(
    workflowId,
    `Workflow ${quoteId(workflowId)} does not exist in the environment of this API key.${list} Check the id, or start a worker that registers it.`,
    known,
  );
}
