/**
 * Typed row decoders and the small encodings every run system shares: the run row's columns, the
 * run and claimed-step records decoded from rows, timestamps as ISO text (concurrency keys and
 * successor keys inside a body are re-exported from core/plan.ts). Pure functions, no queries.
 */
import { concurrencyKey } from '../../core/plan.js';
import type { ClaimedStep, RunRecord, RunStatus, TriggerKind } from '../rows.js';

export type Row = Record<string, unknown>;

export const iso = (v: unknown): string => (v instanceof Date ? v.toISOString() : String(v));
export const isoOrNull = (v: unknown): string | null =>
  v === null || v === undefined ? null : iso(v);

// The concurrency key and the step-run key template are part of the execution plan (core/plan.ts).
export { concurrencyKey, keyed } from '../../core/plan.js';

/**
 * The columns of a new step run that come from its node in the execution plan, as the SQL that
 * inserts step runs reads them (`jsonb_to_recordset`): the same for a new run, a rerun, and a
 * loop or parallel body materialized by its owner.
 */
export function planNodeColumns(
  n: {
    kind: string;
    parents: string[];
    successors: string[];
    failureSuccessors: string[];
    maxAttempts: number;
    onExhausted: string;
    concurrency: number | undefined;
  },
  stepId: string,
  environmentId: string,
  workflowId: string,
) {
  return {
    step_id: stepId,
    kind: n.kind,
    parents: n.parents,
    successors: n.successors,
    failure_successors: n.failureSuccessors,
    max_attempts: n.maxAttempts,
    on_exhausted: n.onExhausted,
    concurrency_key:
      n.concurrency === undefined ? null : concurrencyKey(environmentId, workflowId, stepId),
    concurrency_limit: n.concurrency ?? null,
  };
}

export function toRun(r: Row): RunRecord {
  return {
    id: r.id as string,
    environmentId: r.environment_id as string,
    workflowId: r.workflow_id as string,
    versionId: r.version_id as string,
    status: r.status as RunStatus,
    trigger: { kind: r.trigger_kind as TriggerKind, ref: (r.trigger_ref as string | null) ?? null },
    inputDataclipId: (r.input_dataclip_id as string | null) ?? null,
    finalDataclipId: (r.final_dataclip_id as string | null) ?? null,
    saveDataclips: r.save_dataclips as boolean,
    idempotencyKey: (r.idempotency_key as string | null) ?? null,
    rerunOf: (r.rerun_of as string | null) ?? null,
    rerunFromStep: (r.rerun_from_step as string | null) ?? null,
    parentRunId: (r.parent_run_id as string | null) ?? null,
    error: (r.error as RunRecord['error']) ?? null,
    createdAt: iso(r.created_at),
    startedAt: isoOrNull(r.started_at),
    finishedAt: isoOrNull(r.finished_at),
    updatedAt: iso(r.updated_at),
  };
}

export function toClaimed(r: Row): ClaimedStep {
  return {
    stepRunId: r.step_run_id as string,
    runId: r.run_id as string,
    stepId: r.step_id as string,
    stepKey: r.step_key as string,
    workflowId: r.workflow_id as string,
    versionId: r.version_id as string,
    environmentId: r.environment_id as string,
    attempt: Number(r.attempt),
    maxAttempts: Number(r.max_attempts),
    input: r.input ?? null,
    state: (r.state as Record<string, unknown>) ?? {},
    saveDataclips: r.save_dataclips as boolean,
  };
}

export const RUN_COLUMNS = `id, environment_id, workflow_id, version_id, status, trigger_kind, trigger_ref, input_dataclip_id,
  final_dataclip_id, save_dataclips, idempotency_key, rerun_of, rerun_from_step, parent_run_id, error,
  created_at, started_at, finished_at, updated_at`;
