/**
 * Webhooks. `POST /hooks/{webhookId}` starts a run from any HTTP client (a payment provider, a Git
 * host, a form): no API key — the unguessable id is the capability — and the request becomes the
 * run's input dataclip (kind `webhook_request`):
 *
 *   { "method": "POST", "headers": { "content-type": "application/json", … },
 *     "query": { "a": "1", "tag": ["x", "y"] }, "body": <JSON if the content type is JSON, else text> }
 *
 * Hop-by-hop headers and credentials (`authorization`, `proxy-authorization`, `cookie`) are not
 * kept. A webhook created with a secret only accepts requests signed with it:
 *
 *   x-weft-signature: sha256=<hex HMAC-SHA256 of the raw request body, keyed with the secret>
 *
 * e.g. `printf %s "$BODY" | openssl dgst -sha256 -hmac "$SECRET"`. The comparison takes constant
 * time. An `idempotency-key` header dedups deliveries: a repeated key returns the first run (200)
 * even if headers differ between the deliveries (providers re-sign retries).
 *
 * Management (`/api/v1/webhooks`) is behind API keys and scoped to the key's environment. Reading
 * a delivery (signature, headers, query, body) is webhook-request.ts.
 */
import { getRun } from '../../engine/run-views.js';
import { createRoute, z } from '@hono/zod-openapi';
import { listWorkflowIds, unknownWorkflow, WeftError } from '../../core/errors.js';
import { ID_PATTERN } from '../../core/graph.js';
import { triggerRun } from '../../engine/trigger.js';
import type { RunRecord } from '../../store/rows.js';
import { mintWebhookSecret, type WebhookRecord } from '../../store/webhook-store.js';
import { jsonBody, readLimited, tooLarge } from '../body.js';
import { audited } from './audit.js';
import { ApiError, quoteId } from '../errors.js';
import { assertDatabaseText, dbText } from '../db-text.js';
import { errorResponses, jsonContent, requiresKey } from '../openapi.js';
import type { ServerApp, ServerDeps } from '../types.js';
import {
  keptHeaders,
  parseBody,
  queryOf,
  SIGNATURE_HEADER,
  verifySignature,
} from './webhook-request.js';

/** Longest `idempotency-key` header: the stored key is `webhook:<webhook id>:<header>`, ≤ 255. */
export const MAX_WEBHOOK_IDEMPOTENCY_KEY = 180;

// ---------------------------------------------------------------------------------------------
// Schemas (here rather than in schemas.ts: only these routes use them)

const WebhookSchema = z
  .object({
    id: z
      .string()
      .openapi({ example: 'hook_01jh8k2m3n4p5q6r7s8t9v0w1x8m2c4k7q9r1t3v5w7y9a2d4f6h' }),
    workflowId: z.string().openapi({ example: 'onboarding' }),
    label: z.string().nullable(),
    signed: z.boolean().openapi({
      description: `Whether requests must carry \`${SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of the body>\`.`,
    }),
    enabled: z.boolean(),
    path: z.string().openapi({
      description: 'Where to send requests, relative to the server: `/hooks/{id}`.',
      example: '/hooks/hook_01jh8k2m3n4p5q6r7s8t9v0w1x8m2c4k7q9r1t3v5w7y9a2d4f6h',
    }),
    createdAt: z.iso.datetime(),
  })
  .openapi('Webhook');

const CreatedWebhookSchema = WebhookSchema.extend({
  secret: z.string().nullable().openapi({
    description: 'The signing secret, shown only in this response; null for an unsigned webhook.',
  }),
}).openapi('CreatedWebhook');

const WebhookListSchema = z.object({ data: z.array(WebhookSchema) }).openapi('WebhookList');

const CreateWebhookBodySchema = z
  .strictObject({
    workflowId: dbText().min(1).max(100).openapi({ example: 'onboarding' }),
    label: dbText().max(200).optional().openapi({ description: 'A note for people.' }),
    signed: z.boolean().optional().openapi({
      description:
        'Require signed requests with a secret generated for you (returned once). Default false.',
    }),
    secret: dbText().min(16).max(256).optional().openapi({
      description:
        'Require signed requests with this secret (16–256 characters), e.g. one a provider gave you. Implies `signed`.',
    }),
  })
  .openapi('CreateWebhookRequest');

const UpdateWebhookBodySchema = z
  .strictObject({
    enabled: z.boolean().optional().openapi({
      description: 'False: requests to its path answer 404 until it is enabled again.',
    }),
    label: dbText().max(200).nullable().optional(),
  })
  .openapi('UpdateWebhookRequest');

const WebhookParamsSchema = z.object({
  webhookId: dbText().openapi({ param: { name: 'webhookId', in: 'path' } }),
});

const WebhookAcceptedSchema = z
  .object({
    runId: z.string().openapi({ example: 'run_a001jh8k2m3n4p5q6r7s8t9v0w1x' }),
    status: z.string().openapi({ description: 'The run status at the time of the answer.' }),
    deduplicated: z.boolean().openapi({
      description: 'True when the `idempotency-key` header matched an earlier delivery.',
    }),
  })
  .openapi('WebhookAccepted');

// ---------------------------------------------------------------------------------------------
// Routes

const receiveWebhook = createRoute({
  method: 'post',
  path: '/hooks/{webhookId}',
  operationId: 'receiveWebhook',
  tags: ['Webhooks'],
  summary: 'Start a run from a webhook',
  description:
    'No API key: the webhook id is the capability. The request (method, headers without hop-by-hop ones, `authorization` and `cookie`, query, and the body — parsed when its content type is JSON, else text) becomes the run input (a `webhook_request` dataclip). ' +
    `A signed webhook requires \`${SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of the raw body, keyed with the secret>\`. ` +
    'An `idempotency-key` header returns the run of an earlier delivery with the same key (200). Answers at once; the run executes on a worker.',
  request: { params: WebhookParamsSchema },
  responses: {
    202: jsonContent(WebhookAcceptedSchema, 'The run was created.'),
    200: jsonContent(WebhookAcceptedSchema, 'The idempotency key matched an earlier delivery.'),
    ...errorResponses(400, 401, 404, 413, 415, 422),
  },
});

const listWebhooks = createRoute({
  method: 'get',
  path: '/api/v1/webhooks',
  operationId: 'listWebhooks',
  tags: ['Webhooks'],
  summary: 'List webhooks',
  description: 'The webhooks of the environment, oldest first. Secrets are never listed.',
  security: requiresKey,
  responses: {
    200: jsonContent(WebhookListSchema, 'The webhooks.'),
    ...errorResponses(401),
  },
});

export function createWebhookRoute(maxBodyBytes: number) {
  return createRoute({
    method: 'post',
    path: '/api/v1/webhooks',
    operationId: 'createWebhook',
    tags: ['Webhooks'],
    summary: 'Create a webhook',
    description:
      'A webhook of a registered workflow. Send requests to the returned `path`. With `signed` or `secret`, requests must be signed; the secret is shown only in this response.',
    security: requiresKey,
    middleware: [jsonBody(maxBodyBytes)] as const,
    request: {
      body: {
        content: { 'application/json': { schema: CreateWebhookBodySchema } },
        required: true,
      },
    },
    responses: {
      201: jsonContent(CreatedWebhookSchema, 'The webhook was created.'),
      ...errorResponses(400, 401, 404, 413, 415),
    },
  });
}

const deleteWebhook = createRoute({
  method: 'delete',
  path: '/api/v1/webhooks/{webhookId}',
  operationId: 'deleteWebhook',
  tags: ['Webhooks'],
  summary: 'Delete a webhook',
  description: 'Requests to its path answer 404 from now on. Runs it started are kept.',
  security: requiresKey,
  request: { params: WebhookParamsSchema },
  responses: {
    204: { description: 'Deleted.' },
    ...errorResponses(401, 404),
  },
});

export function updateWebhookRoute(maxBodyBytes: number) {
  return createRoute({
    method: 'patch',
    path: '/api/v1/webhooks/{webhookId}',
    operationId: 'updateWebhook',
    tags: ['Webhooks'],
    summary: 'Enable, disable or relabel a webhook',
    description:
      'A disabled webhook answers 404, like an unknown one, and keeps its id and secret for when it is enabled again.',
    security: requiresKey,
    middleware: [jsonBody(maxBodyBytes)] as const,
    request: {
      params: WebhookParamsSchema,
      body: {
        content: { 'application/json': { schema: UpdateWebhookBodySchema } },
        required: true,
      },
    },
    responses: {
      200: jsonContent(WebhookSchema, 'The webhook after the change.'),
      ...errorResponses(400, 401, 404, 413, 415),
    },
  });
}

export function presentWebhook(hook: WebhookRecord): z.infer<typeof WebhookSchema> {
  return {
    id: hook.id,
    workflowId: hook.workflowId,
    label: hook.label,
    signed: hook.signed,
    enabled: hook.enabled,
    path: `/hooks/${hook.id}`,
    createdAt: hook.createdAt,
  };
}

export function registerWebhookRoutes(app: ServerApp, deps: ServerDeps): void {
  const { stores } = deps;

  app.openapi(receiveWebhook, async (c) => {
    const { webhookId } = c.req.valid('param');
    const declared = c.req.header('content-length');
    if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) > deps.maxBodyBytes) {
      c.header('Connection', 'close');
      throw tooLarge(Number(declared), deps.maxBodyBytes, 'declares');
    }
    const hook = await stores.webhooks.findWebhook(webhookId);
    if (!hook || !hook.enabled) throw webhookNotFound(webhookId);
    const stream = c.req.raw.body;
    const bytes =
      stream === null
        ? new Uint8Array(0)
        : await readLimited(stream, deps.maxBodyBytes).catch((error: unknown) => {
            c.header('Connection', 'close');
            throw error;
          });
    if (hook.signed) {
      if (hook.secret === null) throw secretsUnavailable(hook.secretError);
      verifySignature(hook, c.req.header(SIGNATURE_HEADER), bytes);
    }
    const input = {
      method: c.req.method,
      headers: keptHeaders(c.req.raw.headers),
      query: queryOf(c.req.url),
      body: parseBody(c.req.header('content-type'), bytes),
    };
    const key = c.req.header('idempotency-key');
    if (key !== undefined) assertDatabaseText(key, 'idempotency-key');
    if (key !== undefined && (key.length === 0 || key.length > MAX_WEBHOOK_IDEMPOTENCY_KEY)) {
      throw new ApiError(
        'invalid_input',
        `The idempotency-key header must be 1–${MAX_WEBHOOK_IDEMPOTENCY_KEY} characters; found ${key.length}. Send a shorter delivery id.`,
        { header: 'idempotency-key', length: key.length },
      );
    }
    const idempotencyKey = key === undefined ? undefined : `webhook:${hook.id}:${key}`;
    let run: RunRecord;
    let deduplicated: boolean;
    try {
      ({ run, deduplicated } = await triggerRun(stores, {
        environmentId: hook.environmentId,
        workflowId: hook.workflowId,
        input,
        idempotencyKey,
        trigger: { kind: 'webhook', ref: hook.id },
        inputKind: 'webhook_request',
      }));
    } catch (error) {
      const existing = await earlierDelivery(deps, hook, error);
      if (!existing) throw hideWorkflowList(deps, hook, error);
      run = existing;
      deduplicated = true;
    }
    const body = { runId: run.id, status: run.status, deduplicated };
    return deduplicated ? c.json(body, 200) : c.json(body, 202);
  });

  app.openapi(listWebhooks, async (c) => {
    const hooks = await stores.webhooks.listWebhooks(c.get('identity').environmentId);
    return c.json({ data: hooks.map(presentWebhook) }, 200);
  });

  app.openapi(createWebhookRoute(deps.maxBodyBytes), async (c) => {
    const { environmentId } = c.get('identity');
    const body = c.req.valid('json');
    const workflow = ID_PATTERN.test(body.workflowId)
      ? await stores.control.getWorkflow(environmentId, body.workflowId)
      : null;
    if (!workflow) {
      const known = (await stores.control.listWorkflows(environmentId)).map((w) => w.id);
      throw unknownWorkflow(
        body.workflowId,
        `Workflow ${quoteId(body.workflowId)} is not registered in the environment of this API key, so a webhook cannot start it. Registered: ${listWorkflowIds(known)}. Start a worker that registers it first.`,
        known,
      );
    }
    const secret = body.secret ?? (body.signed ? mintWebhookSecret() : null);
    const hook = await audited(
      c,
      deps,
      'webhook.create',
      (b) =>
        b.webhooks
          .createWebhook({
            environmentId,
            workflowId: body.workflowId,
            label: body.label ?? null,
            secret,
          })
          .catch((error: unknown) => {
            throw secretsUnavailable(error);
          }),
      // never the secret: whether there is one
      (h) => ({
        target: { type: 'webhook', id: h.id },
        details: {
          workflowId: body.workflowId,
          label: body.label ?? null,
          signed: secret !== null,
        },
      }),
    );
    return c.json({ ...presentWebhook(hook), secret }, 201);
  });

  app.openapi(updateWebhookRoute(deps.maxBodyBytes), async (c) => {
    const { webhookId } = c.req.valid('param');
    const body = c.req.valid('json');
    const changes: { enabled?: boolean; label?: string | null } = {};
    if (body.enabled !== undefined) changes.enabled = body.enabled;
    if (body.label !== undefined) changes.label = body.label;
    const hook = await audited(
      c,
      deps,
      'webhook.update',
      async (b) => {
        const h = await b.webhooks.updateWebhook(
          c.get('identity').environmentId,
          webhookId,
          changes,
        );
        if (!h) throw webhookNotInEnvironment(webhookId);
        return h;
      },
      () => ({ target: { type: 'webhook', id: webhookId }, details: { changes } }),
    );
    return c.json(presentWebhook(hook), 200);
  });

  app.openapi(deleteWebhook, async (c) => {
    const { webhookId } = c.req.valid('param');
    await audited(
      c,
      deps,
      'webhook.delete',
      async (b) => {
        if (!(await b.webhooks.deleteWebhook(c.get('identity').environmentId, webhookId)))
          throw webhookNotInEnvironment(webhookId);
      },
      () => ({ target: { type: 'webhook', id: webhookId } }),
    );
    return c.body(null, 204);
  });
}

function webhookNotInEnvironment(webhookId: string): WeftError {
  return new WeftError(
    'not_found',
    `Webhook ${quoteId(webhookId)} does not exist in the environment of this API key. List them with GET /api/v1/webhooks.`,
    { details: { webhookId } },
  );
}

/** Unknown, malformed, deleted and disabled ids all answer the same: ids cannot be probed. */
function webhookNotFound(webhookId: string): WeftError {
  return new WeftError(
    'not_found',
    `No enabled webhook ${quoteId(webhookId.slice(0, 12) + (webhookId.length > 12 ? '…' : ''))} exists. Check the URL you were given; its owner lists webhooks with GET /api/v1/webhooks.`,
  );
}

/**
 * A webhook secret this process cannot seal or open (no WEFT_SECRET_KEY, or the key that sealed it
 * is not configured): the operator's to fix, so a 503 whose message names the variable.
 */
function secretsUnavailable(error: unknown): unknown {
  if (error instanceof WeftError && error.code === 'invalid_config')
    return new ApiError('not_ready', error.message, { reason: 'secret_key' });
  return error;
}

/**
 * A repeated delivery: the key is taken by a run whose input differs (other headers, a new
 * signature timestamp). For webhooks the key alone names the delivery, so that run is the answer.
 */
async function earlierDelivery(
  deps: ServerDeps,
  hook: WebhookRecord,
  error: unknown,
): Promise<RunRecord | undefined> {
  if (!(error instanceof WeftError) || error.code !== 'idempotency_conflict') return undefined;
  const runId = error.details?.runId;
  if (typeof runId !== 'string') return undefined;
  return getRun(deps.stores.runs, hook.environmentId, runId);
}

/**
 * The caller has no API key: an unregistered workflow must not answer with the list of the
 * environment's workflows (what the API-key route says). The owner finds the details in the log.
 */
function hideWorkflowList(deps: ServerDeps, hook: WebhookRecord, error: unknown): unknown {
  if (!(error instanceof WeftError) || error.code !== 'unknown_workflow') return error;
  deps.logger.warn(
    { webhookId: hook.id, environmentId: hook.environmentId, workflowId: hook.workflowId },
    'webhook request refused: its workflow is not registered',
  );
  // no `known`: the sender of a webhook request may not see the environment's workflows
  return unknownWorkflow(
    hook.workflowId,
    `This webhook starts workflow ${quoteId(hook.workflowId)}, which is not registered in its environment now. Its owner must start a worker that registers it (or delete the webhook).`,
  );
}
