/**
 * Starting runs: the single place that turns a trigger (API, CLI, webhook, cron, tests) into a
 * run. Validates the input before anything is written, resolves the workflow's current version
 * and the environment's settings through the cache-first resolver, picks the run location from
 * the organization's flag, and creates the run in one statement.
 */
import { listWorkflowIds, unknownWorkflow, WeftError } from '../core/errors.js';
import { encodeJson } from '../core/json.js';
import type { ControlStore } from '../store/control-store.js';
import type { RunStore } from '../store/run-store.js';
import type { ClaimedStep, RunRecord, TriggerKind } from '../store/rows.js';
import { mintLocation } from './cutover.js';
import { checkInputSchema } from '../core/json-schema.js';

export const DEFAULT_IDEMPOTENCY_TTL_MS = 24 * 3_600_000;
export const MAX_IDEMPOTENCY_TTL_MS = 30 * 24 * 3_600_000;

export interface TriggerRequest {
  environmentId: string;
  workflowId: string;
  input?: unknown;
  idempotencyKey?: string;
  idempotencyTtlMs?: number;
  trigger?: { kind: TriggerKind; ref?: string | null };
  /** For a child run: the parent run and the step run waiting on it. */
  parent?: { runId: string; stepRunId: string };
  /** Kind of the input dataclip; `webhook_request` for a webhook's request. Default `input`. */
  inputKind?: 'input' | 'webhook_request';
}

export interface TriggerResult {
  run: RunRecord;
  deduplicated: boolean;
  /** With `eager`: the first step, claimed for that worker by the trigger's own statement. */
  claims?: ClaimedStep[];
}

/**
 * What every trigger of a workflow needs first: its environment (not paused) and the workflow's
 * current version. Cache-first reads (no query once warm). Throws `not_found` for an unknown
 * environment, `environment_paused`, or `unknown_workflow` listing the registered ones. A batch
 * trigger calls it once to refuse the whole request for what no item can change.
 */
export async function resolveTrigger(
  stores: { control: ControlStore },
  environmentId: string,
  workflowId: string,
) {
  const env = await stores.control.getEnvironment(environmentId);
  if (!env) throw new WeftError('not_found', `environment ${environmentId} does not exist`);
  if (env.paused) {
    throw new WeftError(
      'environment_paused',
      `Environment "${env.name}" of project "${env.projectName}" is paused: no run of \`${workflowId}\` was started. Resume it with \`weft environments resume ${env.name}\` (PATCH /api/v1/environments/${env.name} with {"paused": false}; a paused project: PATCH /api/v1/projects/${env.projectName}), then trigger again.`,
      { details: { environment: env.name, project: env.projectName } },
    );
  }
  const version = await stores.control.currentVersion(environmentId, workflowId);
  if (!version) {
    const known = (await stores.control.listWorkflows(environmentId)).map((w) => w.id);
    throw unknownWorkflow(
      workflowId,
      `Workflow \`${workflowId}\` is not registered in environment "${env.name}". Registered: ${listWorkflowIds(known)}. Check the id, or start a worker (weft dev / weft worker) that loads it.`,
      known,
    );
  }
  return { env, version };
}

/**
 * `eager`: a worker of this process has a free slot for the run's first step (Engine.trigger);
 * the store claims it for that worker in the trigger's own statement where it can.
 */
export async function triggerRun(
  stores: { control: ControlStore; runs: RunStore },
  req: TriggerRequest,
  eager?: { workerId: string; leaseMs: number },
): Promise<TriggerResult> {
  const { env, version } = await resolveTrigger(stores, req.environmentId, req.workflowId);
  checkInputSchema(req.workflowId, version, req.input ?? null);
  const encoded = encodeJson(req.input ?? null, {
    what: `The input of workflow \`${req.workflowId}\``,
    root: 'input',
    maxBytes: version.graph.maxPayloadBytes,
    code: 'invalid_input',
  });
  let idempotency: { key: string; ttlMs: number } | undefined;
  if (req.idempotencyKey !== undefined) {
    if (req.idempotencyKey.length < 1 || req.idempotencyKey.length > 255) {
      throw new WeftError(
        'invalid_input',
        `idempotencyKey must be 1–255 characters; found ${req.idempotencyKey.length}.`,
      );
    }
    const ttlMs = req.idempotencyTtlMs ?? DEFAULT_IDEMPOTENCY_TTL_MS;
    if (!Number.isInteger(ttlMs) || ttlMs < 1000 || ttlMs > MAX_IDEMPOTENCY_TTL_MS) {
      throw new WeftError(
        'invalid_input',
        `idempotencyKeyTTL must be between 1 second and 30 days (in ms); found ${ttlMs}.`,
      );
    }
    idempotency = { key: req.idempotencyKey, ttlMs };
  }
  // The mint site: the organization's `runs.location` flag, read from memory (the cached
  // environment row carries the flags; a cutover's NOTIFY drops it in every process): no query.
  const locationTag = mintLocation(env.flags, stores.runs);
  const params: Parameters<RunStore['createRun']>[0] = {
    environmentId: req.environmentId,
    workflowId: req.workflowId,
    versionId: version.id,
    graph: version.graph,
    inputText: encoded.text,
    inputBytes: encoded.bytes,
    saveDataclips: env.saveDataclips,
    trigger: req.trigger ?? { kind: 'api' },
  };
  if (idempotency) params.idempotency = idempotency;
  if (req.parent) params.parent = req.parent;
  if (req.inputKind) params.inputKind = req.inputKind;
  if (locationTag) params.locationTag = locationTag;
  if (eager) params.eager = eager;
  return stores.runs.createRun(params);
}
