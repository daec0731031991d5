/**
 * Domain records the stores return. They mirror the tables (camelCase) and are what the engine,
 * the server and the CLI work with; no driver type leaves src/store.
 *
 * Glossary: a *run* executes one workflow version; a *step run* is one step inside one run (loop
 * iterations and parallel branches are their own step runs, keyed `step[i]`); an *attempt* is one
 * try of a step run, written before its code starts; a *dataclip* is a persisted JSON value.
 */
import type { StepErrorInfo } from '../core/errors.js';
import { ENDED_RUN_STATUSES } from '../core/statuses.js';

export type RunStatus =
  'queued' | 'running' | 'waiting' | 'paused' | 'succeeded' | 'failed' | 'canceled';
/**
 * Step run statuses, attempt statuses and dataclip kinds. The database has no CHECK constraint on
 * these columns (location 0013: PostgreSQL parses a table's CHECK expressions anew for every
 * statement that writes a row, ~20 µs of a chained step's ~150): the store's SQL is the only
 * writer, and every test database is checked against these lists when it closes
 * (test/support/databases.ts).
 */
export const STEP_RUN_STATUSES = [
  'pending',
  'ready',
  'running',
  'waiting',
  'succeeded',
  'failed',
  'pruned',
  'canceled',
] as const;
export type StepRunStatus = (typeof STEP_RUN_STATUSES)[number];
export const ATTEMPT_STATUSES = ['running', 'succeeded', 'failed', 'lost', 'canceled'] as const;
export type AttemptStatus = (typeof ATTEMPT_STATUSES)[number];
export type TriggerKind =
  'manual' | 'api' | 'webhook' | 'cron' | 'rerun' | 'cli' | 'dashboard' | 'child';
export const DATACLIP_KINDS = [
  'input',
  'output',
  'step_input',
  'final',
  'webhook_request',
  'waitpoint_payload',
] as const;
export type DataclipKind = (typeof DATACLIP_KINDS)[number];

export const RUN_STATUSES: readonly RunStatus[] = [
  'queued',
  'running',
  'waiting',
  'paused',
  'succeeded',
  'failed',
  'canceled',
];
/** The ended statuses: defined once in src/core/statuses.ts (and rendered into SQL's run_ended). */
export const TERMINAL_RUN_STATUSES: readonly RunStatus[] = ENDED_RUN_STATUSES;

export interface RunRecord {
  id: string;
  environmentId: string;
  workflowId: string;
  versionId: string;
  status: RunStatus;
  trigger: { kind: TriggerKind; ref: string | null };
  inputDataclipId: string | null;
  finalDataclipId: string | null;
  saveDataclips: boolean;
  idempotencyKey: string | null;
  rerunOf: string | null;
  rerunFromStep: string | null;
  parentRunId: string | null;
  /** A failed run: the step and its error. A canceled run: `{ reason }` (null when none was given). */
  error: { stepKey?: string; error?: StepErrorInfo; reason?: string | null } | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  updatedAt: string;
}

export interface AttemptRecord {
  number: number;
  workerId: string;
  status: AttemptStatus;
  error: StepErrorInfo | null;
  startedAt: string;
  finishedAt: string | null;
}

export interface StepRunRecord {
  id: string;
  runId: string;
  stepId: string;
  stepKey: string;
  status: StepRunStatus;
  attemptCount: number;
  maxAttempts: number;
  inputDataclipId: string | null;
  inputHash: string | null;
  outputDataclipId: string | null;
  reusedFrom: string | null;
  error: StepErrorInfo | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  attempts: AttemptRecord[];
}

export interface DataclipRecord {
  id: string;
  runId: string | null;
  kind: DataclipKind;
  body: unknown;
  sizeBytes: number;
  wipedAt: string | null;
  createdAt: string;
}

export interface RunEventRecord {
  id: string;
  runId: string;
  kind: string;
  stepKey: string | null;
  attempt: number | null;
  data: unknown;
  createdAt: string;
}

/** A step run a worker holds: everything needed to execute it without another read. */
export interface ClaimedStep {
  stepRunId: string;
  runId: string;
  stepId: string;
  stepKey: string;
  workflowId: string;
  versionId: string;
  environmentId: string;
  attempt: number;
  maxAttempts: number;
  input: unknown;
  state: Record<string, unknown>;
  saveDataclips: boolean;
}
