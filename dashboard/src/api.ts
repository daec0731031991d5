/**
 * The public HTTP API, typed as the dashboard reads it. Every call sends the stored key; a 401
 * switches the page to the sign-in form. Shapes follow src/server/schemas.ts; fields that newer
 * servers add (statePatch, stepHashes, …) are optional here so an older server degrades to a note.
 */
import { getApiKey, keyRefused } from './auth';

export type RunStatus =
  'queued' | 'running' | 'waiting' | 'paused' | 'succeeded' | 'failed' | 'canceled';
export type StepStatus =
  'pending' | 'ready' | 'running' | 'waiting' | 'succeeded' | 'failed' | 'pruned' | 'canceled';

export const RUN_STATUSES: RunStatus[] = [
  'queued',
  'running',
  'waiting',
  'paused',
  'succeeded',
  'failed',
  'canceled',
];
export const ACTIVE_RUN_STATUSES = new Set<RunStatus>(['queued', 'running', 'waiting', 'paused']);
export const TRIGGER_KINDS = [
  'api',
  'cli',
  'dashboard',
  'webhook',
  'cron',
  'rerun',
  'child',
  'manual',
];

export interface StepError {
  name: string;
  message: string;
  code?: string;
  terminal: boolean;
  stack?: string;
}

export interface Run {
  id: string;
  workflowId: string;
  versionId: string;
  status: RunStatus;
  trigger: { kind: string; ref: string | null };
  idempotencyKey: string | null;
  inputDataclipId: string | null;
  finalDataclipId: string | null;
  rerunOf: string | null;
  rerunFromStep: string | null;
  parentRunId: string | null;
  error: { stepKey?: string; error?: StepError } | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  updatedAt: string;
}

export interface RunDetail extends Run {
  steps: { total: number; byStatus: Record<StepStatus, number> };
}

export interface Attempt {
  number: number;
  workerId: string;
  status: string;
  error: StepError | null;
  startedAt: string;
  finishedAt: string | null;
  durationMs?: number;
}

export interface StepRun {
  id: string;
  stepId: string;
  stepKey: string;
  status: StepStatus;
  attemptCount: number;
  maxAttempts: number;
  inputDataclipId: string | null;
  inputHash: string | null;
  outputDataclipId: string | null;
  /** A string (older servers) or `{ runId, stepRunId }`. */
  reusedFrom: string | { runId: string; stepRunId: string } | null;
  error: StepError | null;
  attempts: Attempt[];
  /** The top-level keys this step set (and removed) in the run state (absent on older servers). */
  statePatch?: StatePatchView | null;
  /** The loop or parallel step run whose body holds it, and its iteration / branch index. */
  scopeKey?: string | null;
  iteration?: number | null;
  durationMs?: number | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/** Either `{ set, delete }` or a plain object of set keys; both are folded the same way. */
export type StatePatchView =
  { set?: Record<string, unknown> | null; delete?: string[] | null } | Record<string, unknown>;

export interface GraphNode {
  id: string;
  kind: string;
  hash: string;
  scope?: string;
  /** Drawing hints: the group (loop / parallel body) it sits in, nesting depth, router branches. */
  group?: string | null;
  depth?: number;
  branches?: string[];
  description?: string;
  maxAttempts: number;
  timeoutMs?: number;
  control?: Record<string, unknown>;
}

export interface GraphEdge {
  from: string;
  to: string;
  on: string;
  when?: string;
  branch?: string;
  /** Drawing hint: `branch` for a router's labelled edge, else `on`. */
  kind?: 'success' | 'failure' | 'always' | 'timeout' | 'branch';
}

export interface Graph {
  nodes: GraphNode[];
  edges: GraphEdge[];
  maxPayloadBytes?: number;
  /** JSON Schema every trigger's input is checked against (the workflow's zod `input`). */
  inputSchema?: JsonSchema;
}

/** The parts of a JSON Schema (draft 2020-12) the trigger form reads. */
export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  anyOf?: JsonSchema[];
}

export interface WorkflowVersion {
  id: string;
  version: number;
  hash: string;
  createdAt: string;
  stepHashes?: Record<string, string>;
}

export interface Workflow {
  id: string;
  description: string | null;
  currentVersion: WorkflowVersion | null;
  createdAt: string;
  updatedAt: string;
}

export interface WorkflowDetail extends Workflow {
  graph: Graph | null;
  versions: WorkflowVersion[];
}

export type Fate = 'rerun' | 'reuse' | 'skip';

export interface PlanNode {
  stepId: string;
  scope: string | null;
  fate: Fate;
  reason: string | null;
  detail: string;
  reusedFrom: string | null;
  outputDataclipId: string | null;
}

export interface RerunPlan {
  fromStep: string;
  untilStep: string | null;
  targetUnit: string;
  versionId: string;
  nodes: PlanNode[];
  counts: { rerun: number; reuse: number; skip: number };
  notes: string[];
  /** Set when `fromStep` names one iteration or branch (`s[k]`) and the others are kept. */
  iterations?: {
    owner: string;
    kind: 'loop' | 'parallel';
    target: number;
    sourceCount: number;
    reuse: number[];
    rerun: number[];
  } | null;
}

export interface BulkRerunSummary {
  runs: number;
  planned: number;
  steps: Array<{ stepId: string; rerun: number; reuse: number; skip: number }>;
  fromSteps: Array<{ fromStep: string; runs: number }>;
  problems: Array<{ runId: string; code: string; message: string }>;
}

export interface BulkRerun {
  id: string;
  status: 'running' | 'succeeded' | 'failed';
  total: number;
  done: number;
  failed: number;
  runIds: string[];
  items: Array<{
    sourceRunId: string;
    status: 'pending' | 'done' | 'failed';
    rerunId: string | null;
    fromStep: string | null;
    error: { code: string; message: string } | null;
  }>;
  createdAt: string;
  finishedAt: string | null;
}

export interface Dataclip {
  id: string;
  runId: string | null;
  kind: string;
  body: unknown;
  sizeBytes: number;
  wipedAt: string | null;
  createdAt: string;
}

export interface Waitpoint {
  token: string;
  runId: string;
  stepKey: string;
  kind: 'sleep' | 'approval' | 'child_run';
  status: 'waiting' | 'completed' | 'timed_out' | 'canceled';
  resumeAt: string | null;
  payloadSchema: Record<string, unknown> | null;
  payloadDataclipId: string | null;
  childRunId: string | null;
  createdAt: string;
  completedAt: string | null;
}

export interface Schedule {
  id: string;
  workflowId: string;
  name: string | null;
  source: 'api' | 'code';
  cron: string;
  timezone: string;
  input: { mode: string; value?: unknown; step?: string };
  overlap: string;
  catchUp: string;
  enabled: boolean;
  nextSlotAt: string | null;
  lastSlotAt: string | null;
  createdAt: string;
}

export interface Webhook {
  id: string;
  workflowId: string;
  label: string | null;
  signed: boolean;
  enabled: boolean;
  path: string;
  createdAt: string;
  secret?: string | null;
}

export interface RunEvent {
  id: string;
  runId: string;
  kind: string;
  stepKey: string | null;
  attempt: number | null;
  data: unknown;
  createdAt: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export function authHeaders(): Record<string, string> {
  const key = getApiKey();
  return key ? { authorization: `Bearer ${key}` } : {};
}

/** JSON in and out; errors become ApiError with the server's code and message. */
export async function api<T>(
  path: string,
  init: { method?: string; body?: unknown } = {},
): Promise<T> {
  const headers: Record<string, string> = { ...authHeaders(), accept: 'application/json' };
  const request: RequestInit = { method: init.method ?? 'GET', headers };
  if (init.body !== undefined) {
    headers['content-type'] = 'application/json';
    request.body = JSON.stringify(init.body);
  }
  let res: Response;
  try {
    res = await fetch(path, request);
  } catch (error) {
    throw new ApiError(
      0,
      'network',
      `The server did not answer (${(error as Error).message}). Is \`weft dev\` (or \`weft server\`) still running?`,
    );
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let body: unknown = null;
  try {
    body = text === '' ? null : JSON.parse(text);
  } catch {
    body = null;
  }
  if (!res.ok) {
    const err = (
      body as {
        error?: { code?: string; message?: string; details?: Record<string, unknown> };
      } | null
    )?.error;
    const error = new ApiError(
      res.status,
      err?.code ?? `http_${res.status}`,
      err?.message ?? `${init.method ?? 'GET'} ${path} answered ${res.status}.`,
      err?.details,
    );
    if (res.status === 401) keyRefused(error.message);
    throw error;
  }
  return body as T;
}

/** A 404 from a server that does not have this route yet (an older Weft). */
export function isMissingRoute(error: unknown): boolean {
  return error instanceof ApiError && error.status === 404 && error.message.startsWith('No route');
}

export const qs = (params: Record<string, string | string[] | undefined | null>): string => {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => search.append(k, x));
    else search.set(k, v);
  }
  const s = search.toString();
  return s ? `?${s}` : '';
};

/** `reusedFrom` in either shape → the source run id and step run id. */
export function reusedSource(step: StepRun): { runId: string | null; stepRunId: string } | null {
  const r = step.reusedFrom;
  if (!r) return null;
  if (typeof r === 'string') return { runId: null, stepRunId: r };
  return r;
}
