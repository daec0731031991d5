/**
 * Bulk reruns (ops migration 0002): an action that reruns many runs, its selected runs as items,
 * and the lease any process takes to work on it. See the migration for why each item is
 * processed in one transaction with its rerun.
 */
import { randomBytes } from 'node:crypto';
import { mintIdBody } from '../core/ids.js';
import type { Executor, Queryable } from './executor.js';
import { quoteIdent } from './migrator.js';

export type BulkRerunStatus = 'running' | 'succeeded' | 'failed';

export interface BulkRerunFilter {
  workflowId: string;
  status: string[];
  createdFrom?: string | undefined;
  createdTo?: string | undefined;
}

export interface BulkRerunRecord {
  id: string;
  environmentId: string;
  workflowId: string;
  filter: BulkRerunFilter;
  fromStep: string | null;
  version: 'original' | 'current';
  status: BulkRerunStatus;
  total: number;
  done: number;
  failed: number;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

export interface BulkRerunItem {
  sourceRunId: string;
  status: 'pending' | 'done' | 'failed';
  rerunId: string | null;
  fromStep: string | null;
  error: { code: string; message: string } | null;
}

type Row = Record<string, unknown>;
const iso = (v: unknown): string => (v instanceof Date ? v.toISOString() : String(v));

const COLUMNS = `id, environment_id, workflow_id, filter, from_step, version, status, total, done, failed,
  created_at, updated_at, finished_at`;

function toBulk(r: Row): BulkRerunRecord {
  return {
    id: r.id as string,
    environmentId: r.environment_id as string,
    workflowId: r.workflow_id as string,
    filter: r.filter as BulkRerunFilter,
    fromStep: (r.from_step as string | null) ?? null,
    version: r.version as 'original' | 'current',
    status: r.status as BulkRerunStatus,
    total: Number(r.total),
    done: Number(r.done),
    failed: Number(r.failed),
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
    finishedAt: r.finished_at === null || r.finished_at === undefined ? null : iso(r.finished_at),
  };
}

/** `bulk_<time><random>`: sortable by creation like every other id. */
export function mintBulkId(): string {
  return `bulk_${mintIdBody()}`;
}

export function isBulkId(id: string): boolean {
  return /^bulk_[0-9a-z]{26}$/.test(id);
}

export class BulkRerunStore {
  private readonly s: string;
  constructor(
    /** The run-ops database: the same one the reruns are written to. */
    readonly db: Executor,
    schema: string,
  ) {
    this.s = quoteIdent(schema);
  }

  /** Create an action and its items (the selected runs, in order) in one statement. */
  async create(p: {
    environmentId: string;
    workflowId: string;
    filter: BulkRerunFilter;
    fromStep: string | null;
    version: 'original' | 'current';
    runIds: string[];
  }): Promise<BulkRerunRecord> {
    const rows = await this.db.query<Row>(
      `with bulk as (
         insert into ${this.s}.bulk_reruns (id, environment_id, workflow_id, filter, from_step, version, total)
         values ($1, $2, $3, $4::jsonb, $5, $6, cardinality($7::text[]))
         returning ${COLUMNS}
       ), items as (
         insert into ${this.s}.bulk_rerun_items (bulk_id, position, source_run_id)
         select $1, u.n::integer, u.id from unnest($7::text[]) with ordinality as u(id, n)
       )
       select * from bulk`,
      [
        mintBulkId(),
        p.environmentId,
        p.workflowId,
        JSON.stringify(p.filter),
        p.fromStep,
        p.version,
        p.runIds,
      ],
    );
    return toBulk(rows.rows[0]!);
  }

  /** An action of the environment and its items (up to `itemLimit`, in selection order). */
  async get(
    environmentId: string,
    id: string,
    itemLimit = 10_000,
  ): Promise<{ bulk: BulkRerunRecord; items: BulkRerunItem[] } | undefined> {
    const [bulk, items] = await Promise.all([
      this.db.query<Row>(
        `select ${COLUMNS} from ${this.s}.bulk_reruns where id = $1 and environment_id = $2`,
        [id, environmentId],
      ),
      this.db.query<Row>(
        `select source_run_id, status, rerun_id, from_step, error from ${this.s}.bulk_rerun_items
          where bulk_id = $1 order by position limit $2`,
        [id, itemLimit],
      ),
    ]);
    const b = bulk.rows[0];
    if (!b) return undefined;
    return {
      bulk: toBulk(b),
      items: items.rows.map((r) => ({
        sourceRunId: r.source_run_id as string,
        status: r.status as BulkRerunItem['status'],
        rerunId: (r.rerun_id as string | null) ?? null,
        fromStep: (r.from_step as string | null) ?? null,
        error: (r.error as BulkRerunItem['error']) ?? null,
      })),
    };
  }

  /**
   * Take the oldest running action whose lease is free or expired, for `leaseMs`. Several
   * processes may ask at once: skip locked, so each gets a different one (or none). Index:
   * bulk_reruns_open. If this process dies, the lease expires and another one goes on.
   */
  async claim(workerId: string, leaseMs: number): Promise<BulkRerunRecord | undefined> {
    const rows = await this.db.query<Row>(
      `update ${this.s}.bulk_reruns b
          set lease_owner = $1, lease_expires_at = now() + $2 * interval '1 millisecond', updated_at = now()
        where b.id = (select id from ${this.s}.bulk_reruns
                       where status = 'running' and (lease_expires_at is null or lease_expires_at < now())
                       order by created_at limit 1 for update skip locked)
       returning ${COLUMNS}`,
      [workerId, leaseMs],
    );
    return rows.rows[0] ? toBulk(rows.rows[0]) : undefined;
  }

  /** The next pending items of an action, in selection order (index bulk_rerun_items_pending). */
  async pendingItems(bulkId: string, limit: number): Promise<string[]> {
    const rows = await this.db.query<{ source_run_id: string }>(
      `select source_run_id from ${this.s}.bulk_rerun_items
        where bulk_id = $1 and status = 'pending' order by position limit $2`,
      [bulkId, limit],
    );
    return rows.rows.map((r) => r.source_run_id);
  }

  /**
   * Process one item exactly once: in one transaction, lock the item, and if it is still pending
   * run `create` (which writes the rerun with the same transaction) and mark it done with the
   * rerun's id. `skipped` when another process did it first (or holds it right now). A throw
   * rolls back both, leaving the item pending.
   */
  async processItem(
    bulkId: string,
    sourceRunId: string,
    fromStep: string,
    create: (tx: Queryable) => Promise<string>,
  ): Promise<'done' | 'skipped'> {
    return this.db.transaction(async (tx) => {
      const locked = await tx.query<{ status: string }>(
        `select status from ${this.s}.bulk_rerun_items
          where bulk_id = $1 and source_run_id = $2 for update skip locked`,
        [bulkId, sourceRunId],
      );
      if (locked.rows[0]?.status !== 'pending') return 'skipped' as const;
      const rerunId = await create(tx);
      await tx.query(
        `update ${this.s}.bulk_rerun_items set status = 'done', rerun_id = $3, from_step = $4, updated_at = now()
          where bulk_id = $1 and source_run_id = $2`,
        [bulkId, sourceRunId, rerunId, fromStep],
      );
      return 'done' as const;
    });
  }

  /** Record why a run could not be rerun (a pending item only: a done one stays done). */
  async failItem(
    bulkId: string,
    sourceRunId: string,
    fromStep: string | null,
    error: { code: string; message: string },
  ): Promise<void> {
    await this.db.query(
      `update ${this.s}.bulk_rerun_items set status = 'failed', from_step = $3, error = $4::jsonb, updated_at = now()
        where bulk_id = $1 and source_run_id = $2 and status = 'pending'`,
      [bulkId, sourceRunId, fromStep, JSON.stringify(error)],
    );
  }

  /**
   * Recount progress from the items and, when none is pending, end the action (`failed` when some
   * run could not be rerun); release the lease so any process may take the next batch. One
   * statement.
   */
  async settle(bulkId: string, workerId: string): Promise<BulkRerunRecord | undefined> {
    const rows = await this.db.query<Row>(
      `with c as (
         select count(*) filter (where status = 'done')::int as done,
                count(*) filter (where status = 'failed')::int as failed,
                count(*) filter (where status = 'pending')::int as pending
           from ${this.s}.bulk_rerun_items where bulk_id = $1
       )
       update ${this.s}.bulk_reruns b
          set done = c.done, failed = c.failed, updated_at = now(),
              status = case when c.pending > 0 then b.status when c.failed > 0 then 'failed' else 'succeeded' end,
              finished_at = case when c.pending > 0 then null else coalesce(b.finished_at, now()) end,
              lease_owner = case when b.lease_owner = $2 then null else b.lease_owner end,
              lease_expires_at = case when b.lease_owner = $2 then null else b.lease_expires_at end
         from c where b.id = $1
       returning ${COLUMNS.split(',')
         .map((col) => `b.${col.trim()}`)
         .join(', ')}`,
      [bulkId, workerId],
    );
    return rows.rows[0] ? toBulk(rows.rows[0]) : undefined;
  }
}

/** A worker id for processes that take bulk actions without a worker of their own. */
export function bulkWorkerId(): string {
  return `bulk-${process.pid}-${randomBytes(3).toString('hex')}`;
}
