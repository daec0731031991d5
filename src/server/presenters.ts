/**
 * Store records → API shapes. Fields are listed one by one rather than spread, so a column added
 * to a record (an internal flag, an environment id) never reaches clients by accident. The one
 * exception is a version's graph, which core serializes for the API in the first place.
 */
import type { z } from '@hono/zod-openapi';
import type { WorkflowRecord, WorkflowVersionRecord } from '../store/control-store.js';
import type { DataclipRecord, RunRecord, StepRunRecord, StepRunStatus } from '../store/rows.js';
import type {
  DataclipSchema,
  RunDetailSchema,
  RunSchema,
  StepRunSchema,
  WorkflowDetailSchema,
  WorkflowSchema,
} from './schemas.js';
import { STEP_RUN_STATUSES } from './schemas.js';

type ApiRun = z.infer<typeof RunSchema>;
type ApiWorkflow = z.infer<typeof WorkflowSchema>;

export function presentRun(run: RunRecord): ApiRun {
  return {
    id: run.id,
    workflowId: run.workflowId,
    versionId: run.versionId,
    status: run.status,
    trigger: { kind: run.trigger.kind, ref: run.trigger.ref },
    idempotencyKey: run.idempotencyKey,
    inputDataclipId: run.inputDataclipId,
    finalDataclipId: run.finalDataclipId,
    rerunOf: run.rerunOf,
    rerunFromStep: run.rerunFromStep,
    parentRunId: run.parentRunId,
    error: run.error,
    createdAt: run.createdAt,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
    updatedAt: run.updatedAt,
  };
}

/** A run with its step run counts by status (RunStore.countStepRuns). */
export function presentRunDetail(
  run: RunRecord,
  counts: Readonly<Record<StepRunStatus, number>>,
): z.infer<typeof RunDetailSchema> {
  const byStatus = Object.fromEntries(
    Object.keys(STEP_RUN_STATUSES).map((s) => [s, counts[s as StepRunStatus] ?? 0]),
  ) as Record<StepRunStatus, number>;
  const total = Object.values(byStatus).reduce((a, b) => a + b, 0);
  return { ...presentRun(run), steps: { total, byStatus } };
}

export function presentStepRun(step: StepRunRecord): z.infer<typeof StepRunSchema> {
  return {
    id: step.id,
    stepId: step.stepId,
    stepKey: step.stepKey,
    status: step.status,
    attemptCount: step.attemptCount,
    maxAttempts: step.maxAttempts,
    inputDataclipId: step.inputDataclipId,
    inputHash: step.inputHash,
    outputDataclipId: step.outputDataclipId,
    reusedFrom: step.reusedFrom,
    error: step.error,
    attempts: step.attempts.map((a) => ({
      number: a.number,
      workerId: a.workerId,
      status: a.status,
      error: a.error,
      startedAt: a.startedAt,
      finishedAt: a.finishedAt,
    })),
    createdAt: step.createdAt,
    startedAt: step.startedAt,
    finishedAt: step.finishedAt,
  };
}

export function presentDataclip(dataclip: DataclipRecord): z.infer<typeof DataclipSchema> {
  return {
    id: dataclip.id,
    runId: dataclip.runId,
    kind: dataclip.kind,
    body: dataclip.body,
    sizeBytes: dataclip.sizeBytes,
    wipedAt: dataclip.wipedAt,
    createdAt: dataclip.createdAt,
  };
}

function presentVersion(v: Omit<WorkflowVersionRecord, 'graph'>) {
  return { id: v.id, version: v.version, hash: v.hash, createdAt: v.createdAt };
}

export function presentWorkflow(workflow: WorkflowRecord): ApiWorkflow {
  return {
    id: workflow.id,
    description: workflow.description,
    currentVersion: workflow.currentVersion ? presentVersion(workflow.currentVersion) : null,
    createdAt: workflow.createdAt,
    updatedAt: workflow.updatedAt,
  };
}

export function presentWorkflowDetail(
  workflow: WorkflowRecord,
  versions: ReadonlyArray<Omit<WorkflowVersionRecord, 'graph'>>,
): z.infer<typeof WorkflowDetailSchema> {
  return {
    ...presentWorkflow(workflow),
    // Served as stored: the serialized graph is core's public form of a version (see GraphSchema).
    graph: workflow.currentVersion?.graph ?? null,
    versions: versions.map(presentVersion),
  };
}
