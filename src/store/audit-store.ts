/**
 * The audit trail: who canceled, resumed, reran, completed a waitpoint, created or revoked a key,
 * paused or changed an environment, a project or the organization, created, changed or deleted a
 * schedule or a webhook (control migration 0005, table
 * `audit_log`). Rows are appended, never updated; GET /api/v1/audit reads them with a keyset cursor.
 */
import { WeftError } from '../core/errors.js';
import type { Queryable } from './executor.js';
import { quoteIdent } from './migrator.js';

export type AuditAction =
  | 'run.cancel'
  | 'run.resume'
  | 'run.rerun'
  | 'bulk_rerun.create'
  | 'waitpoint.complete'
  | 'key.create'
  | 'key.revoke'
  | 'environment.create'
  | 'environment.update'
  | 'environment.delete'
  | 'project.create'
  | 'project.update'
  | 'project.delete'
  | 'organization.update'
  | 'schedule.create'
  | 'schedule.update'
  | 'schedule.delete'
  | 'webhook.create'
  | 'webhook.update'
  | 'webhook.delete';

export const AUDIT_ACTIONS: readonly AuditAction[] = [
  'run.cancel',
  'run.resume',
  'run.rerun',
  'bulk_rerun.create',
  'waitpoint.complete',
  'key.create',
  'key.revoke',
  'environment.create',
  'environment.update',
  'environment.delete',
  'project.create',
  'project.update',
  'project.delete',
  'organization.update',
  'schedule.create',
  'schedule.update',
  'schedule.delete',
  'webhook.create',
  'webhook.update',
  'webhook.delete',
];

/** The acting key; its prefix and label are copied from `api_keys` when the entry is written. */
export interface AuditActor {
  environmentId: string;
  keyId: string;
}

export interface AuditEntryInput {
  actor: AuditActor;
  action: AuditAction;
  targetType: string;
  targetId: string;
  details?: Record<string, unknown> | null;
  requestId?: string | null;
}

export interface AuditEntry {
  id: string;
  at: string;
  environmentId: string;
  actor: { keyId: string; keyPrefix: string; label: string | null };
  action: AuditAction;
  targetType: string;
  targetId: string;
  details: Record<string, unknown> | null;
  requestId: string | null;
}

export interface AuditQuery {
  action?: AuditAction;
  targetId?: string;
  actorKeyId?: string;
  from?: string;
  to?: string;
  /** The `nextCursor` of the previous page (the last row's `id`). */
  cursor?: string;
  limit: number;
}

type Row = Record<string, unknown>;
const iso = (v: unknown): string => (v instanceof Date ? v.toISOString() : String(v));

export class AuditStore {
  private readonly s: string;

  constructor(
    readonly db: Queryable,
    schema: string,
  ) {
    this.s = quoteIdent(schema);
  }

  /**
   * Append one entry. Pass `tx` to write it in the transaction of a control-plane action (it
   * commits or rolls back with it). Without `tx` it is its own statement: callers whose action
   * commits in another database (runs live in the run-ops database) write it right after that
   * commit — a crash in between loses the entry, never duplicates it.
   */
  async record(entry: AuditEntryInput, tx: Queryable = this.db): Promise<void> {
    await tx.query(
      `insert into ${this.s}.audit_log
         (environment_id, actor_key_id, actor_key_prefix, actor_label, action, target_type,
          target_id, details, request_id)
       select $1, $2, coalesce(k.token_prefix, ''), k.label, $3, $4, $5, $6::jsonb, $7
         from (select 1) as one left join ${this.s}.api_keys k on k.id = $2`,
      [
        entry.actor.environmentId,
        entry.actor.keyId,
        entry.action,
        entry.targetType,
        entry.targetId,
        entry.details == null ? null : JSON.stringify(entry.details),
        entry.requestId ?? null,
      ],
    );
  }

  /**
   * An environment's entries, newest first, one page. The cursor is the last row's id (its
   * sequence number): the next page is `seq < cursor`, an index range scan of audit_log_environment
   * (audit_log_target with `targetId`). Throws `invalid_cursor` for a cursor it did not write.
   */
  async listEntries(
    environmentId: string,
    q: AuditQuery,
  ): Promise<{ entries: AuditEntry[]; nextCursor: string | null }> {
    if (q.cursor !== undefined && !/^[1-9][0-9]{0,18}$/.test(q.cursor)) {
      throw new WeftError(
        'invalid_cursor',
        `The cursor ${JSON.stringify(q.cursor.slice(0, 40))} is not one this API wrote: pass the \`nextCursor\` of the previous page unchanged, or omit it for the first page.`,
        { details: { cursor: q.cursor.slice(0, 40) } },
      );
    }
    const rows = await this.db.query<Row>(
      `select seq::text as entry_id, at, environment_id, actor_key_id, actor_key_prefix, actor_label,
              action, target_type, target_id, details, request_id
         from ${this.s}.audit_log
        where environment_id = $1
          and ($2::text is null or action = $2)
          and ($3::text is null or target_id = $3)
          and ($4::text is null or actor_key_id = $4)
          and ($5::timestamptz is null or at >= $5)
          and ($6::timestamptz is null or at < $6)
          and ($7::bigint is null or seq < $7)
        -- by the column, not the text alias (which would sort 10 before 9)
        order by audit_log.seq desc
        limit $8`,
      [
        environmentId,
        q.action ?? null,
        q.targetId ?? null,
        q.actorKeyId ?? null,
        q.from ?? null,
        q.to ?? null,
        q.cursor ?? null,
        q.limit + 1,
      ],
    );
    const page = rows.rows.slice(0, q.limit);
    const entries = page.map((r): AuditEntry => ({
      id: r.entry_id as string,
      at: iso(r.at),
      environmentId: r.environment_id as string,
      actor: {
        keyId: r.actor_key_id as string,
        keyPrefix: r.actor_key_prefix as string,
        label: (r.actor_label as string | null) ?? null,
      },
      action: r.action as AuditAction,
      targetType: r.target_type as string,
      targetId: r.target_id as string,
      details: (r.details as Record<string, unknown> | null) ?? null,
      requestId: (r.request_id as string | null) ?? null,
    }));
    const last = entries[entries.length - 1];
    return { entries, nextCursor: rows.rows.length > q.limit && last ? last.id : null };
  }
}
