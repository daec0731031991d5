/**
 * Store records → API shapes. Fields are listed one by one rather than spread, so a column added
 * to a record (an internal flag, an environment id) never reaches clients by accident. The one
 * exception is a version's graph, which core serializes for the API in the first place.
 */
import type { z } from '@hono/zod-openapi';
import type { StepErrorInfo } from '../core/errors.js';
import type { SerializedGraph } from '../core/graph.js';
import type { WorkflowRecord, WorkflowVersionRecord } from '../store/control-store.js';
import {
  STEP_RUN_STATUSES,
  type DataclipRecord,
  type RunRecord,
  type StepRunStatus,
} from '../store/rows.js';
import type { ListedStepRun } from '../store/runs/run-reads.js';
import type {
  DataclipSchema,
  RunDetailSchema,
  RunSchema,
  StepRunSchema,
  WorkflowDetailSchema,
  WorkflowSchema,
} from './schemas.js';

type ApiRun = z.infer<typeof RunSchema>;

/**
 * A step's error as the API shows it. The stack of an error the step's own code threw is the
 * user's data (their files, their lines) and stays; an error Weft itself raised (`WeftError`:
 * invalid output, a timeout, a bad edge condition) keeps its message and code but not its stack,
 * which would only show the server's install paths.
 */
export function presentStepError(error: StepErrorInfo | null): StepErrorInfo | null {
  if (error === null || error.stack === undefined || error.name !== 'WeftError') return error;
  const { stack: _internal, ...rest } = error;
  return rest;
}

/**
 * A run event's data as served (SSE): the errors it carries (`error`, a run's `error.error`, a
 * scope failure's `scopeFailure.error`) lose the stack when Weft raised them, like in the steps
 * listing (`presentStepError`). Everything else is served as stored.
 */
export function presentEventData(data: unknown): unknown {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return data;
  const out: Record<string, unknown> = { ...(data as Record<string, unknown>) };
  for (const key of ['error', 'scopeFailure']) {
    const value = out[key];
    if (value !== null && typeof value === 'object' && !Array.isArray(value))
      out[key] = stripInternalStack(value as Record<string, unknown>);
  }
  return out;
}

function stripInternalStack(error: Record<string, unknown>): Record<string, unknown> {
  const nested = error.error;
  const out: Record<string, unknown> =
    nested !== null && typeof nested === 'object' && !Array.isArray(nested)
      ? { ...error, error: stripInternalStack(nested as Record<string, unknown>) }
      : { ...error };
  if (out.name === 'WeftError' && 'stack' in out) delete out.stack;
  return out;
}

/**
 * Why a run failed, flat: `{ stepKey, name, message, code?, terminal }` — read
 * `run.error.message`, not `run.error.error.message`. The stored shape nests the step's error
 * under `error`; that field stays (deprecated) so clients written against it keep working. No
 * stack here: the step's attempts (`GET /runs/{id}/steps`) carry it.
 */
export function presentRunError(error: RunRecord['error']): ApiRun['error'] {
  if (error === null) return null;
  const step = error.error;
  const at = error.stepKey !== undefined ? { stepKey: error.stepKey } : {};
  if (!step) {
    // a cancel stores `{ reason }` (cancel_run.sql): say that, not that the run failed
    if ('reason' in error)
      return {
        ...at,
        message: error.reason ? `The run was canceled: ${error.reason}` : 'The run was canceled.',
      };
    return { ...at, message: 'The run failed.' };
  }
  const { stack: _stack, ...plain } = step;
  return {
    ...at,
    name: plain.name,
    message: plain.message,
    ...(plain.code !== undefined ? { code: plain.code } : {}),
    terminal: plain.terminal,
    error: plain,
  };
}
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
    error: presentRunError(run.error),
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
  const byStatus = Object.fromEntries(STEP_RUN_STATUSES.map((s) => [s, counts[s] ?? 0])) as Record<
    StepRunStatus,
    number
  >;
  const total = Object.values(byStatus).reduce((a, b) => a + b, 0);
  return { ...presentRun(run), steps: { total, byStatus } };
}

const durationMs = (from: string | null, to: string | null): number | null =>
  from === null || to === null ? null : Math.max(0, Date.parse(to) - Date.parse(from));

/** A step run as listed for its run (store/runs/run-reads.ts: reused steps of a rerun included). */
export function presentStepRun(step: ListedStepRun): z.infer<typeof StepRunSchema> {
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
    reusedFrom:
      step.reusedFrom === null || step.reusedFromRunId === null
        ? null
        : { runId: step.reusedFromRunId, stepRunId: step.reusedFrom },
    scopeKey: step.scopeKey,
    iteration: step.iteration,
    statePatch: step.statePatch,
    error: presentStepError(step.error),
    attempts: step.attempts.map((a) => ({
      number: a.number,
      workerId: a.workerId,
      status: a.status,
      error: presentStepError(a.error),
      startedAt: a.startedAt,
      finishedAt: a.finishedAt,
      durationMs: durationMs(a.startedAt, a.finishedAt),
    })),
    createdAt: step.createdAt,
    startedAt: step.startedAt,
    finishedAt: step.finishedAt,
    durationMs: durationMs(step.startedAt, step.finishedAt),
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
  stepHashes: ReadonlyMap<string, Record<string, string>> = new Map(),
): z.infer<typeof WorkflowDetailSchema> {
  const graph = workflow.currentVersion?.graph;
  return {
    ...presentWorkflow(workflow),
    // The serialized graph is core's public form of a version (see GraphSchema), served as
    // stored plus what drawing it needs and would otherwise recompute.
    graph: graph ? withDrawingHints(graph) : null,
    versions: versions.map((v) => ({
      ...presentVersion(v),
      stepHashes: stepHashes.get(v.id) ?? {},
    })),
  };
}

/**
 * Drawing hints: each node's `group` (the loop or parallel whose body holds it, null at the top
 * level) and `depth` (bodies it is nested in); a router's `branches` (its edge labels, in order);
 * each edge's `kind` — `branch` for a router's labelled edge, else its `on`.
 */
function withDrawingHints(graph: SerializedGraph) {
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const depth = (id: string): number => {
    let d = 0;
    for (let n = byId.get(id); n?.scope !== undefined && d <= byId.size; n = byId.get(n.scope)) d++;
    return d;
  };
  return {
    ...graph,
    nodes: graph.nodes.map((n) => {
      const hinted: SerializedGraph['nodes'][number] & {
        group: string | null;
        depth: number;
        branches?: string[];
      } = { ...n, group: n.scope ?? null, depth: depth(n.id) };
      if (n.kind === 'router') {
        hinted.branches = graph.edges
          .filter((e) => e.from === n.id && e.branch !== undefined)
          .map((e) => e.branch!);
      }
      return hinted;
    }),
    edges: graph.edges.map((e) => ({
      ...e,
      kind: e.branch !== undefined ? ('branch' as const) : e.on,
    })),
  };
}
