/**
 * Bulk reruns: recovery after an outage (docs/rerun.md, issue 10). Select runs by a filter (every failed
 * run of a workflow since a time), show what rerunning them would do (a dry-run summary: how many
 * runs, which steps rerun, what is reused), then rerun each from its failed step (or a given one)
 * as one tracked action.
 *
 * Failure semantics: the action and its selected runs are stored before anything runs, so the
 * work survives any process dying. Any process with the stores may work on it (the engine's
 * BulkRerunProcessor, or the API process that created it): it takes the action's lease, reruns a
 * bounded batch of pending runs, each in one transaction with its progress row (exactly once per
 * source run, see ops migration 0002), records the progress and releases the lease. A process
 * that dies mid-batch loses at most its uncommitted item; its lease expires and another process
 * goes on from the items still pending.
 */
import { listWorkflowIds, unknownWorkflow, WeftError } from '../core/errors.js';
import { ENDED_RUN_STATUSES } from '../core/statuses.js';
import {
  BulkRerunStore,
  bulkWorkerId,
  type BulkRerunFilter,
  type BulkRerunRecord,
} from '../store/bulk-rerun-store.js';
import type { RunRecord, RunStatus } from '../store/rows.js';
import { firstFailedBodyKey } from '../store/runs/run-reads.js';
import type { Stores } from '../store/stores.js';
import type { Logger } from './logger.js';
import { prepareRerun, type RerunRequest } from './rerun.js';
import { CHANNELS } from '../store/channels.js';

/** Most runs one action may select: a bigger recovery is several actions over time ranges. */
export const MAX_BULK_RUNS = 10_000;
/** Runs planned for a dry-run summary (each plan reads its source run); the rest are counted. */
export const BULK_DRY_RUN_SAMPLE = 100;
/** Runs rerun per batch before progress is recorded and the lease released. */
export const BULK_BATCH_SIZE = 25;
const LEASE_MS = 30_000;

export interface BulkRerunRequest {
  filter: {
    workflowId: string;
    status?: RunStatus[] | undefined;
    createdFrom?: string | undefined;
    createdTo?: string | undefined;
  };
  /** Every run from this step; default: each run's failed step. */
  fromStep?: string | undefined;
  version?: 'original' | 'current' | undefined;
}

export interface BulkRerunSummary {
  runs: number;
  /** How many of them were planned for this summary (at most BULK_DRY_RUN_SAMPLE). */
  planned: number;
  /** Per step, over the planned runs: in how many it reruns, is reused, is skipped. */
  steps: Array<{ stepId: string; rerun: number; reuse: number; skip: number }>;
  /** The step each planned run reruns from, and how many runs. */
  fromSteps: Array<{ fromStep: string; runs: number }>;
  /** Planned runs that cannot be rerun, and why (at most 20 listed). */
  problems: Array<{ runId: string; code: string; message: string }>;
}

/** Only a run that ended can be rerun (the set lives in src/core/statuses.ts). */
const RERUNNABLE = new Set<RunStatus>(ENDED_RUN_STATUSES);

export function bulkStoreOf(stores: Stores): BulkRerunStore {
  return new BulkRerunStore(stores.runOpsDb, stores.schemas.ops);
}

/**
 * The runs a filter selects, newest first (keyset pages of GET /runs' query). Throws a 4xx that
 * names the workflow and the filter when the workflow is unknown, nothing matches, or more than
 * MAX_BULK_RUNS match.
 */
export async function selectBulkRuns(
  stores: Stores,
  environmentId: string,
  filter: BulkRerunRequest['filter'],
): Promise<RunRecord[]> {
  const workflow = await stores.control.getWorkflow(environmentId, filter.workflowId);
  if (!workflow) {
    const known = (await stores.control.listWorkflows(environmentId)).map((w) => w.id);
    throw unknownWorkflow(
      filter.workflowId,
      `filter.workflowId \`${filter.workflowId}\` is not a workflow of this environment. Registered: ${listWorkflowIds(known)}. Fix the id.`,
      known,
    );
  }
  const statuses = filter.status ?? ['failed'];
  const selected: RunRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await stores.runs.listRuns({
      environmentId,
      workflowId: filter.workflowId,
      statuses,
      createdFrom: filter.createdFrom,
      createdTo: filter.createdTo,
      limit: 100,
      ...(cursor ? { cursor } : {}),
    });
    selected.push(...page.data);
    cursor = page.nextCursor ?? undefined;
    if (selected.length > MAX_BULK_RUNS) {
      throw new WeftError(
        'invalid_input',
        `The filter selects more than ${MAX_BULK_RUNS} runs of workflow \`${filter.workflowId}\`; one bulk rerun takes at most ${MAX_BULK_RUNS}. Narrow it with createdFrom/createdTo and start several.`,
        { details: { workflowId: filter.workflowId, max: MAX_BULK_RUNS } },
      );
    }
  } while (cursor);
  if (selected.length === 0) {
    const range = [
      filter.createdFrom ? `created from ${filter.createdFrom}` : '',
      filter.createdTo ? `created before ${filter.createdTo}` : '',
    ]
      .filter(Boolean)
      .join(', ');
    throw new WeftError(
      'invalid_input',
      `No run of workflow \`${filter.workflowId}\` has status ${statuses.join(' or ')}${range ? `, ${range}` : ''}: nothing to rerun. Widen the filter (an earlier createdFrom, another status), or list runs with GET /api/v1/runs?workflowId=${filter.workflowId}&status=failed.`,
      { details: { filter: { ...filter, status: statuses } } },
    );
  }
  return selected;
}

/**
 * The step a run reruns from: the request's, or the step that failed it — for a loop or parallel
 * that failed because a body step did, that iteration (`charge[3]`), so the iterations before it
 * are kept.
 */
async function fromStepOf(
  stores: Stores,
  run: RunRecord,
  fromStep: string | undefined,
): Promise<string> {
  if (fromStep !== undefined) return fromStep;
  const failed = run.error?.stepKey;
  if (failed) {
    const loc = stores.runs.locationOf(run.id);
    const inner = loc && (await firstFailedBodyKey(loc.db, loc.schema, run.id, failed));
    return inner ?? failed;
  }
  throw new WeftError(
    'unknown_step',
    `run ${run.id} (${run.status}) has no failed step to rerun from; pass fromStep for the whole action, or rerun it alone with POST /api/v1/runs/${run.id}/rerun.`,
    { details: { runId: run.id, status: run.status } },
  );
}

async function requestFor(
  stores: Stores,
  run: RunRecord,
  request: BulkRerunRequest,
  dryRun: boolean,
): Promise<RerunRequest> {
  const r: RerunRequest = { fromStep: await fromStepOf(stores, run, request.fromStep), dryRun };
  if (request.version !== undefined) r.version = request.version;
  return r;
}

function describe(error: unknown): { code: string; message: string } {
  if (error instanceof WeftError) return { code: error.code, message: error.message };
  throw error;
}

/** What a bulk rerun would do: plans (reads only) the first BULK_DRY_RUN_SAMPLE runs. */
export async function summarizeBulkRerun(
  stores: Stores,
  environmentId: string,
  request: BulkRerunRequest,
  runs: readonly RunRecord[],
): Promise<BulkRerunSummary> {
  const steps = new Map<string, { stepId: string; rerun: number; reuse: number; skip: number }>();
  const fromSteps = new Map<string, number>();
  const problems: BulkRerunSummary['problems'] = [];
  const sample = runs.slice(0, BULK_DRY_RUN_SAMPLE);
  for (const run of sample) {
    try {
      const req = await requestFor(stores, run, request, true);
      const { plan } = await prepareRerun(stores, environmentId, run.id, req);
      fromSteps.set(req.fromStep, (fromSteps.get(req.fromStep) ?? 0) + 1);
      for (const n of plan.nodes) {
        const entry = steps.get(n.stepId) ?? { stepId: n.stepId, rerun: 0, reuse: 0, skip: 0 };
        entry[n.fate]++;
        steps.set(n.stepId, entry);
      }
    } catch (error) {
      if (problems.length < 20) problems.push({ runId: run.id, ...describe(error) });
    }
  }
  return {
    runs: runs.length,
    planned: sample.length,
    steps: [...steps.values()],
    fromSteps: [...fromSteps].map(([fromStep, n]) => ({ fromStep, runs: n })),
    problems,
  };
}

/** Store a bulk rerun of the selected runs; processing starts when a process takes its lease. */
export async function createBulkRerun(
  stores: Stores,
  environmentId: string,
  request: BulkRerunRequest,
  runs: readonly RunRecord[],
): Promise<BulkRerunRecord> {
  const filter: BulkRerunFilter = {
    workflowId: request.filter.workflowId,
    status: request.filter.status ?? ['failed'],
  };
  if (request.filter.createdFrom) filter.createdFrom = request.filter.createdFrom;
  if (request.filter.createdTo) filter.createdTo = request.filter.createdTo;
  return bulkStoreOf(stores).create({
    environmentId,
    workflowId: request.filter.workflowId,
    filter,
    fromStep: request.fromStep ?? null,
    version: request.version ?? 'original',
    runIds: runs.map((r) => r.id),
  });
}

/**
 * Work on one bulk action, if one is waiting: take its lease, rerun up to `batchSize` pending
 * runs, record the progress, release the lease. Returns the action as recorded (undefined when
 * none was waiting). A run that cannot be rerun (a WeftError: no failed step, outputs wiped, …)
 * is recorded as failed with the reason; any other error (the database) leaves it pending for
 * the next try and ends this batch.
 */
export async function processBulkRerunBatch(
  stores: Stores,
  options: { workerId?: string; batchSize?: number; logger?: Logger } = {},
): Promise<BulkRerunRecord | undefined> {
  const bulkStore = bulkStoreOf(stores);
  const workerId = options.workerId ?? bulkWorkerId();
  const bulk = await bulkStore.claim(workerId, LEASE_MS);
  if (!bulk) return undefined;
  const request: BulkRerunRequest = {
    filter: { ...bulk.filter, status: bulk.filter.status as RunStatus[] },
    fromStep: bulk.fromStep ?? undefined,
    version: bulk.version,
  };
  try {
    const pending = await bulkStore.pendingItems(bulk.id, options.batchSize ?? BULK_BATCH_SIZE);
    for (const runId of pending) {
      const source = await stores.runs.getRun(bulk.environmentId, runId);
      let fromStep: string | null = null;
      try {
        if (!source) {
          throw new WeftError('not_found', `run ${runId} no longer exists in this environment`);
        }
        if (!RERUNNABLE.has(source.status)) {
          throw new WeftError(
            'run_not_ended',
            `run ${runId} is ${source.status} again; only a run that ended can be rerun.`,
          );
        }
        const req = await requestFor(stores, source, request, false);
        fromStep = req.fromStep;
        const prepared = await prepareRerun(stores, bulk.environmentId, runId, req);
        const create = prepared.create!;
        const loc = stores.runs.locationOf(runId)!;
        if (loc.db !== bulkStore.db) {
          // One transaction needs one database; locations live in the run-ops database.
          throw new WeftError('internal', `run ${runId} is not in the run-ops database`);
        }
        await bulkStore.processItem(bulk.id, runId, req.fromStep, async (tx) => {
          const run = await stores.runs.createRerunReplayingState(create, prepared.replay, tx);
          return run.id;
        });
      } catch (error) {
        if (!(error instanceof WeftError)) throw error;
        await bulkStore.failItem(bulk.id, runId, fromStep, describe(error));
      }
    }
  } catch (error) {
    options.logger?.warn({ err: error, bulkId: bulk.id }, 'bulk rerun batch stopped; will retry');
  }
  // Ready work: the reruns were created inside a transaction this store did not signal for.
  stores.runs.signals.send(stores.runOpsDb, CHANNELS.ready, bulk.environmentId);
  return bulkStore.settle(bulk.id, workerId);
}

/**
 * Works through bulk actions in the background: every `intervalMs`, batches until none is
 * waiting. Any number of processes may run one; leases keep them off each other's batches.
 */
export class BulkRerunProcessor {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly workerId = bulkWorkerId();

  constructor(
    private readonly stores: Stores,
    private readonly logger: Logger,
    private readonly intervalMs = 1000,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.kick(), this.intervalMs);
  }

  /** Work now (e.g. right after an action was created); a no-op while already working. */
  kick(): void {
    if (this.running || this.stopped) return;
    this.running = this.drain()
      .catch((error: unknown) =>
        this.logger.error({ err: error }, 'bulk reruns failed; will retry'),
      )
      .finally(() => {
        this.running = undefined;
      });
  }

  private async drain(): Promise<void> {
    for (let batches = 0; batches < 100 && !this.stopped; batches++) {
      const bulk = await processBulkRerunBatch(this.stores, {
        workerId: this.workerId,
        logger: this.logger,
      });
      if (!bulk) return;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }
}
