/**
 * Steering runs from outside: cancel, resume a paused run, complete an approval. Used by the HTTP
 * API, the CLI and embedding code; each is one short transaction in the run's location.
 */
import { listWorkflowIds, unknownWorkflow, WeftError } from '../core/errors.js';
import { DEFAULT_MAX_PAYLOAD_BYTES, encodeJson } from '../core/json.js';
import { describeIssues, schemaIssues } from '../core/json-schema.js';
import type { ControlStore } from '../store/control-store.js';
import type { RunRecord } from '../store/rows.js';
import type { RunStore, WaitpointRecord } from '../store/run-store.js';

type Stores = { control: ControlStore; runs: RunStore };

/**
 * Cancel a run: no new attempts, running attempts see `ctx.signal` abort, waits and child runs
 * are canceled too, and the run ends `canceled` with a consistent record.
 */
export async function cancelRun(
  stores: Stores,
  environmentId: string,
  runId: string,
  reason = 'canceled by request',
): Promise<RunRecord> {
  const result = await stores.runs.cancelRun(environmentId, runId, reason);
  if (result.status === 'not_found')
    throw new WeftError('not_found', `run ${runId} does not exist in this environment`);
  if (result.status === 'not_active') {
    throw new WeftError(
      'run_not_active',
      `run ${runId} already ended (${result.runStatus}); only queued, running, waiting or paused runs can be canceled.`,
      {
        details: { runId, status: result.runStatus },
      },
    );
  }
  return (await stores.runs.getRun(environmentId, runId))!;
}

/**
 * Resume a run paused after a step exhausted its retries (`onExhausted: 'pause'`): the paused
 * steps get a fresh attempt budget. `version: 'current'` moves the run to the workflow's current
 * version (after a fix was deployed); its graph must have the same steps.
 */
export async function resumeRun(
  stores: Stores,
  environmentId: string,
  runId: string,
  options: { version?: 'original' | 'current' } = {},
): Promise<RunRecord> {
  const run = await stores.runs.getRun(environmentId, runId);
  if (!run) throw new WeftError('not_found', `run ${runId} does not exist in this environment`);
  if (run.status !== 'paused') {
    throw new WeftError(
      'run_not_paused',
      `run ${runId} is ${run.status}, not paused; only a run paused after exhausted retries can be resumed.`,
      {
        details: { runId, status: run.status },
      },
    );
  }
  let version = await stores.control.getVersion(run.versionId);
  let versionId: string | undefined;
  if (options.version === 'current') {
    const current = await stores.control.currentVersion(environmentId, run.workflowId);
    if (!current) {
      const known = (await stores.control.listWorkflows(environmentId)).map((w) => w.id);
      throw unknownWorkflow(
        run.workflowId,
        `Workflow \`${run.workflowId}\` of run ${runId} has no current version in this environment, so the run cannot be resumed on it. Registered: ${listWorkflowIds(known)}. Resume on the run's own version (version "original"), or start a worker that registers the workflow.`,
        known,
      );
    }
    const before = new Set(version?.graph.nodes.map((n) => n.id));
    const after = new Set(current.graph.nodes.map((n) => n.id));
    const missing = [...before].filter((id) => !after.has(id));
    const added = [...after].filter((id) => !before.has(id));
    if (missing.length > 0 || added.length > 0) {
      throw new WeftError(
        'version_mismatch',
        `run ${runId} cannot move to version ${current.version} of \`${run.workflowId}\`: its steps differ (missing: ${missing.join(', ') || 'none'}; new: ${added.join(', ') || 'none'}). Resume on the original version, or rerun from a step.`,
        { details: { missing, added } },
      );
    }
    version = current;
    versionId = current.id;
  }
  const budgets = Object.fromEntries(
    (version?.graph.nodes ?? []).map((n) => [n.id, n.maxAttempts]),
  );
  const opts: { versionId?: string; budgets: Record<string, number> } = { budgets };
  if (versionId) opts.versionId = versionId;
  const result = await stores.runs.resumeRun(environmentId, runId, opts);
  if (result.status !== 'resumed') {
    throw new WeftError(
      'run_not_paused',
      `run ${runId} is ${result.runStatus ?? 'not paused'}; it can no longer be resumed.`,
    );
  }
  return (await stores.runs.getRun(environmentId, runId))!;
}

/**
 * Complete an approval token with a payload. The payload is checked against the approval's
 * schema before anything is written; a token completes once.
 */
export async function completeWaitpoint(
  stores: Stores,
  environmentId: string,
  token: string,
  payload: unknown,
): Promise<WaitpointRecord> {
  const waitpoint = await stores.runs.getWaitpoint(environmentId, token);
  if (!waitpoint)
    throw new WeftError('not_found', `waitpoint token ${token} does not exist in this environment`);
  if (waitpoint.kind !== 'approval') {
    throw new WeftError(
      'waitpoint_not_waiting',
      `waitpoint ${token} is a ${waitpoint.kind} wait, which completes by itself; only approval tokens are completed by API.`,
    );
  }
  if (waitpoint.status !== 'waiting') {
    throw new WeftError(
      'waitpoint_not_waiting',
      `waitpoint ${token} (step \`${waitpoint.stepKey}\` of run ${waitpoint.runId}) is already ${waitpoint.status}${waitpoint.completedAt ? ` since ${waitpoint.completedAt}` : ''}; a token completes once.`,
      { details: { status: waitpoint.status, runId: waitpoint.runId } },
    );
  }
  if (waitpoint.payloadSchema) {
    const issues = schemaIssues(waitpoint.payloadSchema, payload, 'payload');
    if (issues.length > 0) {
      throw new WeftError(
        'invalid_payload',
        `the payload for approval \`${waitpoint.stepKey}\` does not match its schema: ${describeIssues(issues)}. Nothing was recorded; send a payload that matches.`,
        { details: { issues, schema: waitpoint.payloadSchema } },
      );
    }
  }
  // The payload becomes the approval step's output: the workflow's limit on outputs applies.
  const run = await stores.runs.getRun(environmentId, waitpoint.runId);
  const version = run ? await stores.control.getVersion(run.versionId) : null;
  const encoded = encodeJson(payload ?? null, {
    what: `The payload for waitpoint ${token}`,
    root: 'payload',
    maxBytes: version?.graph.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES,
    code: 'invalid_input',
  });
  const result = await stores.runs.completeWaitpoint(environmentId, token, encoded.text);
  if (result.status === 'not_found')
    throw new WeftError('not_found', `waitpoint token ${token} does not exist in this environment`);
  if (result.status === 'not_waiting' || result.status === 'wrong_kind') {
    throw new WeftError(
      'waitpoint_not_waiting',
      `waitpoint ${token} was completed by someone else just now; a token completes once.`,
    );
  }
  return (await stores.runs.getWaitpoint(environmentId, token))!;
}
