/**
 * Cron schedules: the `schedules` table of the control plane, and the few reads of the run
 * tables the scheduler needs (the schedule's active runs, the workflow's latest succeeded run).
 * Slot math lives in core/cron.ts; firing lives in engine/scheduler.ts.
 */
import { WeftError } from '../core/errors.js';
import { mintControlId } from '../core/ids.js';
import type { Executor } from './executor.js';
import { quoteIdent } from './migrator.js';
import type { RunLocation } from './run-store.js';

export type ScheduleInputMode = 'none' | 'static' | 'previous_final_state' | 'previous_step_output';
export type OverlapPolicy = 'allow' | 'skip' | 'queue' | 'cancel_previous';
export type CatchUpPolicy = 'none' | 'last' | 'all';

export const SCHEDULE_INPUT_MODES: readonly ScheduleInputMode[] = [
  'none',
  'static',
  'previous_final_state',
  'previous_step_output',
];
export const OVERLAP_POLICIES: readonly OverlapPolicy[] = [
  'allow',
  'skip',
  'queue',
  'cancel_previous',
];
export const CATCH_UP_POLICIES: readonly CatchUpPolicy[] = ['none', 'last', 'all'];

export interface ScheduleInput {
  mode: ScheduleInputMode;
  /** `static`: the input of every run. */
  value?: unknown;
  /** `previous_step_output`: the step whose output becomes the input. */
  step?: string;
}

/** The settings a caller chooses (API, CLI, code). */
export interface ScheduleSettings {
  workflowId: string;
  cron: string;
  timezone: string;
  input: ScheduleInput;
  countManualRuns: boolean;
  overlap: OverlapPolicy;
  catchUp: CatchUpPolicy;
  catchUpLimit: number;
  enabled: boolean;
}

export interface ScheduleRecord extends ScheduleSettings {
  id: string;
  environmentId: string;
  /** Schedules registered in code have a name (unique per environment and workflow). */
  name: string | null;
  source: 'api' | 'code';
  /** The next slot to fire (null: disabled, or the expression never matches again). */
  nextSlotAt: string | null;
  /** The next slot is held back by the overlap policy or a previous-run input (see scheduler). */
  nextSlotHeld: boolean;
  lastSlotAt: string | null;
  createdAt: string;
  updatedAt: string;
}

/** The latest succeeded run that a `previous_*` input reads. */
export interface PreviousRun {
  runId: string;
  finalDataclipId: string | null;
  finishedAt: string;
}

type Row = Record<string, unknown>;
const iso = (v: unknown): string => (v instanceof Date ? v.toISOString() : String(v));
const isoOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : iso(v));

const COLUMNS = `id, environment_id, workflow_id, name, source, cron, timezone, input_mode, input_value,
  input_step, count_manual_runs, overlap, catch_up, catch_up_limit, enabled, next_slot_at, next_slot_held,
  last_slot_at, created_at, updated_at`;

function toSchedule(r: Row): ScheduleRecord {
  const input: ScheduleInput = { mode: r.input_mode as ScheduleInputMode };
  if (input.mode === 'static') input.value = r.input_value ?? null;
  if (input.mode === 'previous_step_output') input.step = r.input_step as string;
  return {
    id: r.id as string,
    environmentId: r.environment_id as string,
    workflowId: r.workflow_id as string,
    name: (r.name as string | null) ?? null,
    source: r.source as 'api' | 'code',
    cron: r.cron as string,
    timezone: r.timezone as string,
    input,
    countManualRuns: r.count_manual_runs as boolean,
    overlap: r.overlap as OverlapPolicy,
    catchUp: r.catch_up as CatchUpPolicy,
    catchUpLimit: Number(r.catch_up_limit),
    enabled: r.enabled as boolean,
    nextSlotAt: isoOrNull(r.next_slot_at),
    nextSlotHeld: r.next_slot_held as boolean,
    lastSlotAt: isoOrNull(r.last_slot_at),
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
  };
}

function settingsParams(s: ScheduleSettings): unknown[] {
  return [
    s.workflowId,
    s.cron,
    s.timezone,
    s.input.mode,
    s.input.mode === 'static' ? JSON.stringify(s.input.value ?? null) : null,
    s.input.mode === 'previous_step_output' ? (s.input.step ?? null) : null,
    s.countManualRuns,
    s.overlap,
    s.catchUp,
    s.catchUpLimit,
    s.enabled,
  ];
}

const ACTIVE = `('queued', 'running', 'waiting', 'paused')`;

export class ScheduleStore {
  private readonly s: string;

  constructor(
    private readonly db: Executor,
    schema: string,
    private readonly locations: () => Iterable<RunLocation>,
  ) {
    this.s = quoteIdent(schema);
  }

  /** One insert; `nextSlotAt` is computed by the caller from the cron expression. */
  async createSchedule(
    environmentId: string,
    settings: ScheduleSettings,
    nextSlotAt: Date | null,
  ): Promise<ScheduleRecord> {
    const rows = await this.db.query<Row>(
      `insert into ${this.s}.schedules (id, environment_id, workflow_id, cron, timezone, input_mode, input_value,
              input_step, count_manual_runs, overlap, catch_up, catch_up_limit, enabled, next_slot_at, source)
       values ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12, $13, $14::timestamptz, 'api')
       returning ${COLUMNS}`,
      [mintControlId('sch'), environmentId, ...settingsParams(settings), nextSlotAt],
    );
    return toSchedule(rows.rows[0]!);
  }

  /**
   * A schedule declared in code, keyed by (environment, workflow, name): inserted the first time,
   * updated in place afterwards (one statement, `on conflict` on `schedules_name`). The next slot
   * is kept when the cron expression and time zone are unchanged, so restarting a worker neither
   * refires nor skips a slot; otherwise it moves to `nextSlotAt`.
   */
  async upsertCodeSchedule(
    environmentId: string,
    name: string,
    settings: ScheduleSettings,
    nextSlotAt: Date | null,
  ): Promise<ScheduleRecord> {
    const rows = await this.db.query<Row>(
      `insert into ${this.s}.schedules (id, environment_id, workflow_id, cron, timezone, input_mode, input_value,
              input_step, count_manual_runs, overlap, catch_up, catch_up_limit, enabled, next_slot_at, source, name)
       values ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12, $13, $14::timestamptz, 'code', $15)
       on conflict (environment_id, workflow_id, name) where name is not null do update
          set next_slot_at = case
                when schedules.cron = excluded.cron and schedules.timezone = excluded.timezone
                     and schedules.enabled and excluded.enabled then schedules.next_slot_at
                else excluded.next_slot_at end,
              next_slot_held = schedules.next_slot_held and schedules.cron = excluded.cron
                and schedules.timezone = excluded.timezone and schedules.enabled and excluded.enabled,
              cron = excluded.cron, timezone = excluded.timezone, input_mode = excluded.input_mode,
              input_value = excluded.input_value, input_step = excluded.input_step,
              count_manual_runs = excluded.count_manual_runs, overlap = excluded.overlap,
              catch_up = excluded.catch_up, catch_up_limit = excluded.catch_up_limit,
              enabled = excluded.enabled, source = 'code', updated_at = now()
       returning ${COLUMNS}`,
      [mintControlId('sch'), environmentId, ...settingsParams(settings), nextSlotAt, name],
    );
    return toSchedule(rows.rows[0]!);
  }

  async getSchedule(environmentId: string, id: string): Promise<ScheduleRecord | undefined> {
    const rows = await this.db.query<Row>(
      `select ${COLUMNS} from ${this.s}.schedules where id = $1 and environment_id = $2`,
      [id, environmentId],
    );
    return rows.rows[0] ? toSchedule(rows.rows[0]) : undefined;
  }

  /** Every schedule of an environment (a small set), optionally of one workflow. */
  async listSchedules(environmentId: string, workflowId?: string): Promise<ScheduleRecord[]> {
    const rows = await this.db.query<Row>(
      `select ${COLUMNS} from ${this.s}.schedules
        where environment_id = $1 and ($2::text is null or workflow_id = $2)
        order by workflow_id, created_at, id`,
      [environmentId, workflowId ?? null],
    );
    return rows.rows.map(toSchedule);
  }

  /** Replace the settings (the caller merged the patch) and the next slot. */
  async updateSchedule(
    environmentId: string,
    id: string,
    settings: ScheduleSettings,
    next: { at: Date | null; held: boolean },
  ): Promise<ScheduleRecord | undefined> {
    const rows = await this.db.query<Row>(
      `update ${this.s}.schedules
          set workflow_id = $3, cron = $4, timezone = $5, input_mode = $6, input_value = $7::jsonb,
              input_step = $8, count_manual_runs = $9, overlap = $10, catch_up = $11,
              catch_up_limit = $12, enabled = $13, next_slot_at = $14::timestamptz, next_slot_held = $15,
              updated_at = now()
        where id = $1 and environment_id = $2
        returning ${COLUMNS}`,
      [id, environmentId, ...settingsParams(settings), next.at, next.held],
    );
    return rows.rows[0] ? toSchedule(rows.rows[0]) : undefined;
  }

  async deleteSchedule(environmentId: string, id: string): Promise<boolean> {
    const rows = await this.db.query(
      `delete from ${this.s}.schedules where id = $1 and environment_id = $2 returning id`,
      [id, environmentId],
    );
    return rows.rows.length > 0;
  }

  /**
   * Schedules of an environment whose next slot is due at `now` (the scheduler's clock, not the
   * database's: a scheduler with a skewed clock fires early or late, never twice — see
   * advanceSlot). One index range scan of `schedules_due` (environment_id, next_slot_at) where
   * enabled. No row lock: several schedulers may read the same due row, and the per-slot
   * idempotency key plus the compare-and-set advance make that harmless. (Rejected: `for update
   * skip locked` held across the firing — the run is created in the run-ops database, which may
   * be another database, so the lock would be held across a second connection's round trips.)
   */
  async listDueSchedules(environmentId: string, now: Date, limit = 100): Promise<ScheduleRecord[]> {
    const rows = await this.db.query<Row>(
      `select ${COLUMNS} from ${this.s}.schedules
        where environment_id = $1 and enabled and next_slot_at <= $2::timestamptz
        order by next_slot_at limit $3`,
      [environmentId, now, limit],
    );
    return rows.rows.map(toSchedule);
  }

  /** The earliest next slot of the environment's enabled schedules (same index, one row). */
  async nextDueAt(environmentId: string): Promise<Date | null> {
    const rows = await this.db.query<{ at: Date | string | null }>(
      `select min(next_slot_at) as at from ${this.s}.schedules where environment_id = $1 and enabled`,
      [environmentId],
    );
    const at = rows.rows[0]?.at;
    return at ? new Date(at) : null;
  }

  /**
   * Compare-and-set: move `next_slot_at` from `from` to `to` (recording `fired` as the last slot
   * fired, when one was; `held` marks `to` as held back). Returns false when another scheduler (or
   * an API update) moved it first; the caller then drops its view of the schedule. Primary-key
   * update, one round trip.
   */
  async advanceSlot(
    id: string,
    from: Date,
    to: Date | null,
    options: { fired?: Date | null; held?: boolean } = {},
  ): Promise<boolean> {
    const rows = await this.db.query(
      `update ${this.s}.schedules
          set next_slot_at = $3::timestamptz, next_slot_held = $5,
              last_slot_at = coalesce($4::timestamptz, last_slot_at)
        where id = $1 and next_slot_at = $2::timestamptz
        returning id`,
      [id, from, to, options.fired ?? null, options.held ?? false],
    );
    return rows.rows.length > 0;
  }

  // ── reads of the run tables ────────────────────────────────────────────────────────────────

  /**
   * Runs this schedule started that have not ended (overlap policies). One query per location
   * over runs_env_workflow_status (environment, workflow, status in the four active statuses),
   * filtered by trigger ref; active runs of one workflow are few.
   */
  async activeRunsOfSchedule(
    environmentId: string,
    workflowId: string,
    scheduleId: string,
  ): Promise<string[]> {
    const ids = await Promise.all(
      [...this.locations()].map(async (loc) => {
        const rows = await loc.db.query<{ id: string }>(
          `select id from ${loc.schema}.runs
            where environment_id = $1 and workflow_id = $2 and status in ${ACTIVE}
              and trigger_kind = 'cron' and trigger_ref = $3
            order by created_at, id`,
          [environmentId, workflowId, scheduleId],
        );
        return rows.rows.map((r) => r.id);
      }),
    );
    return ids.flat();
  }

  /**
   * Whether a run that could become "previous" is still active: a cron run of the workflow, or
   * any run when manual runs count. Same index as above.
   */
  async hasActivePreviousCandidate(
    environmentId: string,
    workflowId: string,
    countManualRuns: boolean,
  ): Promise<boolean> {
    const found = await Promise.all(
      [...this.locations()].map(async (loc) => {
        const rows = await loc.db.query(
          `select 1 from ${loc.schema}.runs
            where environment_id = $1 and workflow_id = $2 and status in ${ACTIVE}
              and ($3::boolean or trigger_kind = 'cron') and trigger_kind <> 'child'
            limit 1`,
          [environmentId, workflowId, countManualRuns],
        );
        return rows.rows.length > 0;
      }),
    );
    return found.some(Boolean);
  }

  /**
   * The latest succeeded run of a workflow (by finish time), counting cron runs only unless
   * manual runs count. One backward index scan of runs_env_workflow_status per location
   * (status = 'succeeded', finished_at desc), stopping at the first row that matches; the
   * locations' answers are merged here.
   */
  async latestSucceededRun(
    environmentId: string,
    workflowId: string,
    countManualRuns: boolean,
  ): Promise<PreviousRun | undefined> {
    const found = await Promise.all(
      [...this.locations()].map(async (loc) => {
        const rows = await loc.db.query<Row>(
          `select id, final_dataclip_id, finished_at from ${loc.schema}.runs
            where environment_id = $1 and workflow_id = $2 and status = 'succeeded'
              and ($3::boolean or trigger_kind = 'cron') and trigger_kind <> 'child'
            order by finished_at desc, id desc limit 1`,
          [environmentId, workflowId, countManualRuns],
        );
        const r = rows.rows[0];
        return r
          ? {
              runId: r.id as string,
              finalDataclipId: (r.final_dataclip_id as string | null) ?? null,
              finishedAt: iso(r.finished_at),
            }
          : undefined;
      }),
    );
    const runs = found.filter((r): r is PreviousRun => r !== undefined);
    runs.sort((a, b) => (a.finishedAt < b.finishedAt ? 1 : a.finishedAt > b.finishedAt ? -1 : 0));
    return runs[0];
  }

  /**
   * The output of one step of a run (the top-level step run keyed by the step id). Returns
   * `found: false` when the step did not succeed in that run.
   */
  async stepOutput(
    environmentId: string,
    runId: string,
    stepId: string,
  ): Promise<{ found: boolean; body: unknown }> {
    for (const loc of this.locations()) {
      const rows = await loc.db.query<Row>(
        `select d.body from ${loc.schema}.step_runs sr
           left join ${loc.schema}.dataclips d on d.id = sr.output_dataclip_id
          where sr.run_id = $1 and sr.environment_id = $2 and sr.step_key = $3 and sr.status = 'succeeded'`,
        [runId, environmentId, stepId],
      );
      if (rows.rows[0]) return { found: true, body: rows.rows[0].body ?? null };
    }
    return { found: false, body: null };
  }

  /** The body of a final-state dataclip (null when wiped or missing). */
  async dataclipBody(environmentId: string, dataclipId: string): Promise<unknown> {
    for (const loc of this.locations()) {
      const rows = await loc.db.query<Row>(
        `select body from ${loc.schema}.dataclips where id = $1 and environment_id = $2`,
        [dataclipId, environmentId],
      );
      if (rows.rows[0]) return rows.rows[0].body ?? null;
    }
    return null;
  }
}

/** Thrown when a schedule's id is not in the caller's environment. */
export function scheduleNotFound(id: string): WeftError {
  return new WeftError(
    'not_found',
    `schedule ${id} does not exist in this environment; list schedules with GET /api/v1/schedules (or weft schedules list).`,
  );
}
