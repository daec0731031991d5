/**
 * The audit trail over HTTP: `GET /api/v1/audit` (admin); `audited`, which control-plane routes
 * wrap their change in; and `recordAudit`, which run routes call once their change has taken
 * effect.
 *
 * When the entry is written.
 * - **Control-plane actions** (keys, environments, projects, the organization, schedules,
 *   webhooks) live in the control database, as the audit log does: `audited` runs the change and
 *   writes its entry in one transaction (src/store/control-transaction.ts). Both commit or
 *   neither does: an action that fails (a 404, a 409, a database error) writes no entry, and an
 *   entry that cannot be written fails the action (it is rolled back and the caller sees the
 *   error: nothing happened unrecorded).
 * - **Run actions** (cancel, resume, rerun, bulk rerun, waitpoint completion) commit in the
 *   run-ops database, which may be another database than the control plane's, so one transaction
 *   cannot hold both: the entry is written in a statement of its own right after the commit. A
 *   crash in between loses that one entry (the action stands) and never writes one for an action
 *   that did not happen; a failed entry is logged at error level with every field, so the log holds
 *   what the table missed.
 * A request refused or without effect (a second cancel of the same run is a 409) writes no entry:
 * each action is recorded once.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { AUDIT_ACTIONS, type AuditAction, type AuditEntry } from '../../store/audit-store.js';
import { inControlTransaction, type BoundControlStores } from '../../store/control-transaction.js';
import { dbText } from '../db-text.js';
import { errorResponses, jsonContent, requiresKey } from '../openapi.js';
import type { AppEnv, ServerApp, ServerDeps } from '../types.js';

/**
 * Run a control-plane change and write its audit entry in the same transaction (see the module
 * comment). `change` gets the control-database stores bound to that transaction and must make
 * every read and write through them; throw inside it to refuse (nothing commits, no entry).
 * `describe` names the target (and details) from the change's result.
 */
export async function audited<T>(
  c: Context<AppEnv>,
  deps: ServerDeps,
  action: AuditAction,
  change: (bound: BoundControlStores) => Promise<T>,
  describe: (result: T) => {
    target: { type: string; id: string };
    details?: Record<string, unknown>;
  },
): Promise<T> {
  const identity = c.get('identity');
  return inControlTransaction(deps.stores, async (bound) => {
    const result = await change(bound);
    const { target, details } = describe(result);
    await bound.audit.record(
      {
        actor: { environmentId: identity.environmentId, keyId: identity.keyId },
        action,
        targetType: target.type,
        targetId: target.id,
        details: details ?? null,
        requestId: c.get('requestId') ?? null,
      },
      bound.tx,
    );
    return result;
  });
}

/**
 * Append the audit entry of a run action that has taken effect (see the module comment for why it
 * follows the commit). Never throws: the action already happened, so a failed entry must not
 * turn its success into an error the caller would retry.
 */
export async function recordAudit(
  c: Context<AppEnv>,
  deps: ServerDeps,
  action: AuditAction,
  target: { type: string; id: string },
  details?: Record<string, unknown>,
): Promise<void> {
  const identity = c.get('identity');
  const entry = {
    actor: { environmentId: identity.environmentId, keyId: identity.keyId },
    action,
    targetType: target.type,
    targetId: target.id,
    details: details ?? null,
    requestId: c.get('requestId') ?? null,
  };
  try {
    await deps.stores.audit.record(entry);
  } catch (error) {
    deps.logger.error({ err: error, audit: entry }, 'audit entry not written; the action stands');
  }
}

const AuditEntrySchema = z
  .object({
    id: z.string().openapi({ description: 'Increasing; also the cursor of the next page.' }),
    at: z.iso.datetime(),
    environmentId: z.string(),
    actor: z.object({
      keyId: z.string(),
      keyPrefix: z.string().openapi({ description: 'The non-secret start of the key.' }),
      label: z.string().nullable(),
    }),
    action: z.enum(AUDIT_ACTIONS as [AuditAction, ...AuditAction[]]),
    targetType: z.string().openapi({ example: 'run' }),
    targetId: z.string(),
    details: z.record(z.string(), z.unknown()).nullable(),
    requestId: z.string().nullable(),
  })
  .openapi('AuditEntry');

const AuditListSchema = z
  .object({
    data: z.array(AuditEntrySchema),
    nextCursor: z.string().nullable().openapi({
      description: 'Pass as `cursor` for the next (older) page; null on the last page.',
    }),
  })
  .openapi('AuditList');

const TimestampFilter = z.iso.datetime({
  offset: true,
  error: 'expected an ISO 8601 date-time such as 2025-01-31T09:30:00Z',
});

const AuditQuerySchema = z.strictObject({
  action: z
    .enum(AUDIT_ACTIONS as [AuditAction, ...AuditAction[]])
    .optional()
    .openapi({ param: { name: 'action', in: 'query' }, example: 'run.cancel' }),
  targetId: dbText()
    .max(200)
    .optional()
    .openapi({ param: { name: 'targetId', in: 'query' }, description: 'A run id, key id, …' }),
  actorKeyId: dbText()
    .max(200)
    .optional()
    .openapi({ param: { name: 'actorKeyId', in: 'query' } }),
  from: TimestampFilter.optional().openapi({
    param: { name: 'from', in: 'query' },
    description: 'Entries at or after this instant.',
  }),
  to: TimestampFilter.optional().openapi({
    param: { name: 'to', in: 'query' },
    description: 'Entries before this instant (exclusive).',
  }),
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(200)
    .default(50)
    .openapi({ param: { name: 'limit', in: 'query' }, example: 50 }),
  cursor: dbText()
    .max(40)
    .optional()
    .openapi({
      param: { name: 'cursor', in: 'query' },
      description: 'The `nextCursor` of the previous page.',
    }),
});

const listAudit = createRoute({
  method: 'get',
  path: '/api/v1/audit',
  operationId: 'listAudit',
  tags: ['Admin'],
  summary: 'Read the audit trail',
  description:
    "Who canceled, resumed or reran runs, completed waitpoints, created or revoked keys, and changed environments, projects or the organization's flags — the entries written by keys of this key's environment, newest first.",
  security: requiresKey,
  request: { query: AuditQuerySchema },
  responses: {
    200: jsonContent(AuditListSchema, 'One page of entries.'),
    ...errorResponses(400, 401, 403, 422),
  },
});

export function registerAuditRoutes(app: ServerApp, deps: ServerDeps): void {
  app.openapi(listAudit, async (c) => {
    const q = c.req.valid('query');
    const query: Parameters<typeof deps.stores.audit.listEntries>[1] = { limit: q.limit };
    if (q.action !== undefined) query.action = q.action;
    if (q.targetId !== undefined) query.targetId = q.targetId;
    if (q.actorKeyId !== undefined) query.actorKeyId = q.actorKeyId;
    if (q.from !== undefined) query.from = q.from;
    if (q.to !== undefined) query.to = q.to;
    if (q.cursor !== undefined) query.cursor = q.cursor;
    const page = await deps.stores.audit.listEntries(c.get('identity').environmentId, query);
    return c.json({ data: page.entries.map(present), nextCursor: page.nextCursor }, 200);
  });
}

const present = (e: AuditEntry): z.infer<typeof AuditEntrySchema> => e;
