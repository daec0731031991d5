/**
 * Rerun a run from a step (docs/rerun.md): plan with the pure planner, check that every reused result
 * the rerun needs is still there, then create the new run in one statement. The new run reuses
 * unchanged results by reference and runs only its restart scope; workers pick it up like any run.
 *
 * Failure semantics: planning reads and writes nothing; the run is created by one statement, so a
 * crash before it commits leaves no trace, and after it the rerun is an ordinary queued run.
 * Reruns are not idempotent: repeating the request creates another rerun.
 */
import { listWorkflowIds, unknownWorkflow, WeftError } from '../core/errors.js';
import type { SerializedGraph } from '../core/graph.js';
import { encodeJson } from '../core/json.js';
import { planOf } from '../core/plan.js';
import {
  assertOutputsAvailable,
  planRerun,
  resolveStepTarget,
  type RerunPlan,
  type SourceIterations,
  type SourceStepRun,
} from '../core/rerun-planner.js';
import type { ControlStore } from '../store/control-store.js';
import {
  loadSourceIterations,
  type SourceIterationsRecord,
  type StateReplay,
} from '../store/runs/rerun-iterations.js';
import type { RunRecord } from '../store/rows.js';
import type { CreateRerunParams, RerunStepRow, RunStore } from '../store/run-store.js';

type Stores = { control: ControlStore; runs: RunStore };

export interface RerunRequest {
  /**
   * The step to run again (a loop or parallel body step targets its owner as one unit), or one
   * iteration or branch of it (`send[3]`): a loop restarts there, a parallel reruns that branch.
   */
  fromStep: string;
  /** Stop after this step: what does not lead to it is skipped. */
  untilStep?: string | undefined;
  /** `original` (default): the source run's version. `current`: the workflow's current version. */
  version?: 'original' | 'current' | undefined;
  /** A new run input; default: the source run's input, by reference. */
  input?: unknown;
  /** Plan only: nothing is written. */
  dryRun?: boolean | undefined;
}

export interface RerunResult {
  /** The new run; null for a dry run. */
  run: RunRecord | null;
  plan: RerunPlan;
  /** The version the rerun uses. */
  versionId: string;
}

const ENDED = new Set(['succeeded', 'failed', 'canceled']);

/**
 * Plan a rerun of `runId` and, unless `dryRun`, start it.
 *
 * @example
 * const { run, plan } = await rerunRun(stores, envId, runId, { fromStep: 'enrich', version: 'current' });
 * plan.nodes.filter((n) => n.fate === 'rerun').map((n) => `${n.stepId}: ${n.reason}`);
 */
export async function rerunRun(
  stores: Stores,
  environmentId: string,
  runId: string,
  request: RerunRequest,
): Promise<RerunResult> {
  const prepared = await prepareRerun(stores, environmentId, runId, request);
  if (request.dryRun || !prepared.create) {
    return { run: null, plan: prepared.plan, versionId: prepared.versionId };
  }
  const run = await stores.runs.createRerunReplayingState(prepared.create, prepared.replay);
  return { run, plan: prepared.plan, versionId: prepared.versionId };
}

export interface PreparedRerun {
  plan: RerunPlan;
  versionId: string;
  /** What RunStore.createRerun writes; null for a dry run. */
  create: CreateRerunParams | null;
  /** Where the reused steps' state patches are (store/runs/lineage.ts createRerunReplayingState). */
  replay: StateReplay[];
}

/**
 * Everything of a rerun but the write: read the source, plan, check what the plan needs is still
 * there. Reads only. A caller that must write the rerun together with its own row (a bulk rerun's
 * progress, in one transaction) passes `create` to RunStore.createRerun with its transaction.
 */
export async function prepareRerun(
  stores: Stores,
  environmentId: string,
  runId: string,
  request: RerunRequest,
): Promise<PreparedRerun> {
  const source = await stores.runs.getRun(environmentId, runId);
  if (!source) throw new WeftError('not_found', `run ${runId} does not exist in this environment`);
  if (!ENDED.has(source.status)) {
    throw new WeftError(
      'run_not_ended',
      `run ${runId} is ${source.status}; only a run that ended (succeeded, failed or canceled) can be rerun. Wait for it, or cancel it first.`,
      { details: { runId, status: source.status } },
    );
  }
  const env = await stores.control.getEnvironment(environmentId);
  if (!env) throw new WeftError('not_found', `environment ${environmentId} does not exist`);
  const sourceVersion = await stores.control.getVersion(source.versionId);
  if (!sourceVersion) {
    throw new WeftError(
      'internal',
      `run ${runId} names workflow version ${source.versionId}, which does not exist`,
    );
  }
  const target =
    request.version === 'current'
      ? await stores.control.currentVersion(environmentId, source.workflowId)
      : sourceVersion;
  if (!target) {
    const known = (await stores.control.listWorkflows(environmentId)).map((w) => w.id);
    throw unknownWorkflow(
      source.workflowId,
      `Workflow \`${source.workflowId}\` of run ${runId} has no current version in this environment, so the run cannot be rerun on it. Registered: ${listWorkflowIds(known)}. Rerun on the run's own version (version "original"), or start a worker that registers the workflow.`,
      known,
    );
  }
  const input =
    request.input === undefined
      ? undefined
      : encodeJson(request.input, {
          what: `The rerun input of workflow \`${source.workflowId}\``,
          root: 'input',
          maxBytes: target.graph.maxPayloadBytes,
          code: 'invalid_input',
        });
  const loaded = await stores.runs.loadRerunSource(source, input?.text);
  const runInput = input
    ? { hash: loaded.newInputHash, available: true }
    : { hash: loaded.input.hash, available: loaded.input.available };
  // `s[k]`: what the source ran of the targeted loop or parallel (malformed keys 422 here).
  const aimed = resolveStepTarget(target.graph, request.fromStep);
  let iterationsRecord: SourceIterationsRecord | undefined;
  let sourceIterations: SourceIterations | undefined;
  if (aimed.iteration !== null) {
    const owner = loaded.steps.find((st) => st.stepId === aimed.unit);
    const ownerLoc =
      owner && owner.stepRunId !== '' ? stores.runs.locationOf(owner.stepRunId) : undefined;
    if (owner && ownerLoc) {
      iterationsRecord = await loadSourceIterations(
        ownerLoc.db,
        ownerLoc.schema,
        owner.stepRunId,
        aimed.iteration,
      );
    }
    sourceIterations = iterationsRecord
      ? {
          count: iterationsRecord.count,
          reusable: iterationsRecord.reusable,
          targetRows: iterationsRecord.targetRows,
        }
      : { count: 0, reusable: [] };
  }
  const plan = planRerun({
    sourceGraph: sourceVersion.graph,
    targetGraph: target.graph,
    sourceSteps: loaded.steps,
    fromStep: request.fromStep,
    untilStep: request.untilStep,
    runInput,
    sourceIterations,
  });
  assertOutputsAvailable(plan, target.graph, loaded.steps, runInput);
  const rows = materialize(plan, sourceVersion.graph, target.graph, loaded.steps);
  const iterationBody = iterationsRecord && bodyOf(plan, target.graph, iterationsRecord);
  const replay = replayOf(plan, target.graph, loaded.steps);
  if (request.dryRun) return { plan, versionId: target.id, create: null, replay };

  const params: Parameters<RunStore['createRerun']>[0] = {
    environmentId,
    workflowId: source.workflowId,
    versionId: target.id,
    maxConcurrency: target.graph.maxConcurrency,
    saveDataclips: env.saveDataclips,
    source,
    fromStep: request.fromStep,
    reusedStepIds: plan.nodes.filter((n) => n.fate === 'reuse').map((n) => n.stepId),
    steps: rows.steps,
    resolve: rows.resolve,
    skipped: plan.nodes.filter((n) => n.fate === 'skip').map((n) => n.stepId),
  };
  if (input) params.input = input;
  if (iterationBody) params.iterationBody = iterationBody;
  return { plan, versionId: target.id, create: params, replay };
}

/** Each reused top-level step's lineage row, with its body's step ids (their patches count too). */
function replayOf(
  plan: RerunPlan,
  graph: SerializedGraph,
  sourceSteps: readonly SourceStepRun[],
): StateReplay[] {
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const topOf = (id: string): string => {
    let node = byId.get(id);
    for (let hops = 0; node?.scope !== undefined && hops <= byId.size; hops++)
      node = byId.get(node.scope);
    return node?.id ?? id;
  };
  const ids = new Map<string, string[]>();
  for (const n of graph.nodes) {
    const top = topOf(n.id);
    ids.set(top, [...(ids.get(top) ?? []), n.id]);
  }
  const records = new Map(sourceSteps.map((s) => [s.stepId, s]));
  return plan.nodes
    .filter((n) => n.fate === 'reuse' && n.scope === null)
    .flatMap((n) => {
      const rec = records.get(n.stepId);
      return rec && rec.stepRunId !== '' && rec.status === 'succeeded'
        ? [{ stepRunId: rec.stepRunId, stepIds: ids.get(n.stepId) ?? [n.stepId] }]
        : [];
    });
}

/**
 * The body rows a rerun from `s[k]` writes (create_rerun_iterations): the kept iterations, and for
 * a parallel the branches that rerun, parked as the owner's first transition would park them.
 * Nothing when nothing is kept (the owner then simply reruns from iteration 0). Throws
 * `dataclips_wiped` (409) when a branch that reruns needs an item the project did not keep.
 */
function bodyOf(
  plan: RerunPlan,
  graph: SerializedGraph,
  src: SourceIterationsRecord,
): CreateRerunParams['iterationBody'] {
  const it = plan.iterations;
  if (!it || (it.reuse.length === 0 && it.within === null)) return undefined;
  const body = { owner: it.owner, sourceRunId: src.runId, sourceOwnerKey: src.ownerKey };
  if (it.kind === 'loop' && it.within === null) return { ...body, reuse: it.reuse, park: null };
  const ownerNode = graph.nodes.find((n) => n.id === it.owner)!;
  const control = ownerNode.control ?? {};
  const concurrency = typeof control.concurrency === 'number' ? control.concurrency : Infinity;
  // Branches parked in full: a parallel's rerun branches but the one rerun in part (`within`).
  const full = it.kind === 'parallel' ? it.rerun.filter((i) => i !== it.within?.iteration) : [];
  if (it.within) assertWithinAvailable(it.owner, it.within, graph, src);
  for (const i of full) {
    const root = src.rootInputs.get(i);
    if (!root || root.wiped) {
      throw new WeftError(
        'dataclips_wiped',
        `Cannot rerun branch ${i} of parallel \`${it.owner}\`: its item (the branch input) was not kept in the source run (the project does not save dataclips). Rerun from \`${it.owner}\` to recompute every branch.`,
        { details: { stepId: it.owner, iteration: i, missing: 'branch_input' } },
      );
    }
  }
  const nodes = planOf(graph)
    .level(it.owner)
    .map((n) => ({
      stepId: n.id,
      kind: n.kind,
      parents: n.parents,
      successors: n.successors,
      failureSuccessors: n.failureSuccessors,
      maxAttempts: n.maxAttempts,
      onExhausted: n.onExhausted,
      concurrency: n.concurrency,
    }));
  const result: NonNullable<CreateRerunParams['iterationBody']> = {
    ...body,
    reuse: it.reuse,
    park: {
      onScopeFailure: control.onBranchFailure === 'collect' ? 'collect' : 'fail',
      nodes,
      // the partly rerun iteration takes one slot of the parallel's concurrency
      iterations: full.map((iteration, j) => ({
        iteration,
        gated: j + (it.within ? 1 : 0) >= concurrency,
      })),
    },
  };
  if (it.within) result.partial = it.within;
  return result;
}

/**
 * Inside a partly rerun iteration, the kept steps that feed a rerun step need their outputs, and
 * a rerun root needs the iteration's input. Throws `dataclips_wiped` (409) naming the step.
 */
function assertWithinAvailable(
  owner: string,
  within: NonNullable<NonNullable<RerunPlan['iterations']>['within']>,
  graph: SerializedGraph,
  src: SourceIterationsRecord,
): void {
  const k = within.iteration;
  const wiped = new Set(src.targetRows.filter((r) => r.outputWiped).map((r) => r.stepId));
  const rerun = new Set(within.rerun);
  const plan = planOf(graph);
  for (const to of within.rerun) {
    for (const from of plan.nodes.get(to)?.parents ?? []) {
      if (!rerun.has(from) && wiped.has(from)) {
        throw new WeftError(
          'dataclips_wiped',
          `Cannot rerun \`${to}[${k}]\` alone: the output of \`${from}[${k}]\` in the source run was not kept (the project does not save dataclips). Rerun iteration ${k} in full with \`${owner}[${k}]\`.`,
          { details: { stepId: `${from}[${k}]`, neededBy: `${to}[${k}]`, missing: 'output' } },
        );
      }
    }
  }
  // Edges never leave a level, so a body step without parents is a root of the owner's body.
  const roots = within.rerun.filter((id) => plan.nodes.get(id)?.parents.length === 0);
  const input = src.rootInputs.get(k);
  if (roots.length > 0 && (!input || input.wiped)) {
    throw new WeftError(
      'dataclips_wiped',
      `Cannot rerun \`${roots[0]}[${k}]\`: the input of iteration ${k} of \`${owner}\` was not kept in the source run (the project does not save dataclips). Rerun from \`${owner}\`.`,
      { details: { stepId: owner, iteration: k, missing: 'iteration_input' } },
    );
  }
}

type Edge = SerializedGraph['edges'][number];

function sameEdge(a: Edge | undefined, b: Edge | undefined): boolean {
  return (
    a !== undefined &&
    b !== undefined &&
    a.on === b.on &&
    (a.when ?? null) === (b.when ?? null) &&
    (a.branch ?? null) === (b.branch ?? null)
  );
}

/**
 * The step runs a rerun materializes (see create_rerun in migration 0003 for why only these):
 * every top-level rerun step, plus the reused steps that succeeded in the source and either feed
 * a rerun step or end the run (no successor ran in the source: part of the final state).
 */
export function materialize(
  plan: RerunPlan,
  sourceGraph: SerializedGraph,
  targetGraph: SerializedGraph,
  sourceSteps: readonly SourceStepRun[],
): { steps: RerunStepRow[]; resolve: string[] } {
  const top = planOf(targetGraph).level(null);
  const fate = new Map(plan.nodes.map((n) => [n.stepId, n.fate]));
  const records = new Map(sourceSteps.map((s) => [s.stepId, s]));
  const targetEdges = new Map<string, Edge>();
  for (const e of targetGraph.edges) targetEdges.set(`${e.from}\u0000${e.to}`, e);
  const sourceEdges = new Map(sourceGraph.edges.map((e) => [`${e.from}\u0000${e.to}`, e]));
  const succeeded = (id: string) => records.get(id)?.status === 'succeeded';
  const ran = (id: string) => {
    const status = records.get(id)?.status;
    return status === 'succeeded' || status === 'failed';
  };

  const rerun = top.filter((n) => fate.get(n.id) === 'rerun');
  const keep = new Set<string>();
  for (const n of rerun) {
    for (const p of n.parents) if (fate.get(p) === 'reuse' && succeeded(p)) keep.add(p);
  }
  for (const n of top) {
    if (fate.get(n.id) === 'reuse' && succeeded(n.id) && !n.successors.some(ran)) keep.add(n.id);
  }
  const materialized = (id: string) => keep.has(id) || fate.get(id) === 'rerun';

  const steps: RerunStepRow[] = [];
  const resolve: string[] = [];
  for (const n of top) {
    const base = {
      stepId: n.id,
      kind: n.kind,
      parents: n.parents,
      maxAttempts: n.maxAttempts,
      onExhausted: n.onExhausted,
      concurrency: n.concurrency,
    };
    if (keep.has(n.id)) {
      // finish_run counts a succeeded step as a leaf when none of its successors ran. A reused
      // successor that ran but is not materialized here would be invisible to that rule, so the
      // row says so (successor_ran): it can never be mistaken for a leaf.
      const succ = n.successors.filter(materialized);
      const covered = n.successors.some(
        (s) => !materialized(s) && fate.get(s) === 'reuse' && ran(s),
      );
      steps.push({
        ...base,
        reusedFrom: records.get(n.id)!.stepRunId,
        pending: 0,
        successors: succ,
        successorRan: covered,
        failureSuccessors: [],
        liveFrom: [],
      });
    } else if (fate.get(n.id) === 'rerun') {
      const ps = n.parents;
      const inScope = ps.filter((p) => fate.get(p) === 'rerun').length;
      const liveFrom = ps.filter(
        (p) => fate.get(p) === 'reuse' && edgeLive(p, n.id, records, sourceEdges, targetEdges),
      );
      if (ps.length > 0 && inScope === 0) resolve.push(n.id);
      steps.push({
        ...base,
        pending: ps.length > 0 && inScope === 0 ? 1 : inScope,
        successors: n.successors,
        failureSuccessors: n.failureSuccessors,
        liveFrom,
      });
    }
  }
  return { steps, resolve };
}

/**
 * Whether the edge from a reused parent to a rerun step arrives live. Decisions outside the
 * restart scope are kept (docs/rerun.md), so an edge unchanged since the source keeps its source
 * outcome. A new or changed unconditional edge follows the parent's outcome (it succeeded); a
 * new or changed conditional edge would need the parent's output evaluated by code this process
 * may not hold, so it is refused with the fix.
 */
function edgeLive(
  from: string,
  to: string,
  records: Map<string, SourceStepRun>,
  sourceEdges: Map<string, Edge>,
  targetEdges: Map<string, Edge>,
): boolean {
  const parent = records.get(from);
  if (parent?.status !== 'succeeded') return false;
  const key = `${from}\u0000${to}`;
  const edge = targetEdges.get(key)!;
  if (sameEdge(sourceEdges.get(key), edge) && records.has(to)) {
    return records.get(to)!.liveFrom.includes(from);
  }
  if (edge.on === 'failure' || edge.on === 'timeout') return false;
  if (edge.on === 'always') return true;
  if (edge.when === undefined && edge.branch === undefined) return true;
  throw new WeftError(
    'version_mismatch',
    `the condition of edge \`${from} -> ${to}\` changed since the source run, and \`${from}\` would be reused, so nothing would evaluate it. Rerun from \`${from}\` (or earlier) instead.`,
    { details: { edge: `${from}->${to}`, fromStep: from } },
  );
}
