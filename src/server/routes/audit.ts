/**
 * The audit trail over HTTP: `GET /api/v1/audit` (admin), and `recordAudit`, which the routes
 * that change something call once the change has taken effect.
 *
 * When the entry is written. Every audited action commits before its entry is written, in a
 * statement of its own on the control database: run actions (cancel, resume, rerun, bulk rerun,
 * waitpoint completion) commit in the run-ops database, which may be another database than the
 * control plane's, so one transaction cannot hold both; and the control-plane actions (keys,
 * environments, projects, flags) are ControlStore verbs that own their statements. So a crash
 * between the commit and the entry loses that one entry (the action stands) and never writes one
 * for an action that did not happen; a failed entry is logged at error level with every field,
 * so the log holds what the table missed. A request refused or without effect (a second cancel of
 * the same run is a 409) writes no entry: each action is recorded once.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { AUDIT_ACTIONS, type AuditAction, type AuditEntry } from '../../store/audit-store.js';
import { dbText } from '../db-text.js';
import { errorResponses, jsonContent, requiresKey } from '../openapi.js';
import type { AppEnv, ServerApp, ServerDeps } from '../types.js';

/**
 * Append the audit entry of an action that has taken effect (see the module comment for why it
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
