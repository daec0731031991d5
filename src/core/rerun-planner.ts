/**
 * The rerun planner (docs/rerun.md): given what a source run recorded and the graph a rerun will use,
 * decide for every node whether it reruns, is reused by reference, or is skipped — and why.
 * Pure: no IO, no clock. The engine loads the inputs, the store writes the result.
 * Kept whole (about 560 lines): the scope, dirt and reuse passes share one node table and are
 * read together with docs/rerun.md's cases; split, each pass would need the others' invariants.
 *
 * Glossary:
 * - *source run*: the earlier run being rerun; its step runs give outputs, input hashes, outcomes.
 * - *target graph*: the version the rerun uses (the source's, or the workflow's current one).
 * - *dirty*: a node whose recorded result cannot stand in for running it now (changed, new,
 *   failed, missing output, different input). Dirt propagates to every descendant.
 * - *restart scope*: nodes that run again — `fromStep`, its descendants, dirty nodes and theirs —
 *   limited to the ancestors of `untilStep` when one is given. Every other node is reused.
 *
 * Loops and parallels are planned as one unit with their body (a body node shares its owner's
 * fate): if the owner is in scope the whole loop reruns from iteration 0; targeting a body step
 * (`s`) targets its top-level owner. Targeting one iteration or branch (`s[3]`, or `loop[3]` on
 * the owner itself) keeps the source's results for the rest (docs/rerun.md): a loop restarts from
 * iteration 3 and reuses 0–2; a parallel reruns branch 3 (and any branch that did not succeed)
 * and reuses the others. That needs the owner's own input to be unchanged: when the owner is
 * dirty for another reason (changed definition, an upstream step reruns), it restarts from
 * iteration 0 and the plan says why in `notes`.
 *
 * What `fromStep` and `untilStep` may name, and how a name resolves in the graph, is
 * step-target.ts.
 *
 * Kept whole (about 550 lines): one pure decision over one set of maps (dirty nodes, restart scope,
 * per-iteration plans for a targeted body); each phase reads what the previous one built, and the
 * glossary above covers all of it. Its unit tests sit beside it.
 */
import { WeftError } from './errors.js';
import type { SerializedGraph } from './graph.js';
import { planOf } from './plan.js';
import {
  parseStepTarget,
  resolveStepTarget,
  topLevelOwner,
  unknownStep,
  type ResolvedTarget,
} from './step-target.js';

// What importers have always taken from here.
export {
  parseStepTarget,
  resolveStepTarget,
  type ResolvedTarget,
  type StepTarget,
} from './step-target.js';

export type RerunFate = 'rerun' | 'reuse' | 'skip';
export type RerunReason =
  | 'target'
  | 'definition_changed'
  | 'new_step'
  | 'missing_output'
  | 'upstream_changed'
  | 'input_changed'
  | 'previous_failure';

/** What the source run recorded for one top-level step (body step runs are not needed). */
export interface SourceStepRun {
  stepId: string;
  stepRunId: string;
  status:
    'pending' | 'ready' | 'running' | 'waiting' | 'succeeded' | 'failed' | 'pruned' | 'canceled';
  outputDataclipId: string | null;
  /** The output dataclip exists but its body was dropped (the project does not save dataclips). */
  outputWiped: boolean;
  inputHash: string | null;
  /** Parents whose edge arrived live (the decisions of routers and conditions upstream). */
  liveFrom: string[];
}

/** What the source run recorded for the iterations (or branches) of the owner `fromStep` targets. */
export interface SourceIterations {
  /** Iterations the source materialized: 0 … count-1 (0 when the owner never ran its body). */
  count: number;
  /** Iterations whose step runs all succeeded (or were pruned): their results can be reused. */
  reusable: readonly number[];
  /** The source's body step runs of the targeted iteration, by step id (direct body only). */
  targetRows?: ReadonlyArray<{ stepId: string; status: SourceStepRun['status'] }> | undefined;
}

export interface RerunPlanInput {
  sourceGraph: SerializedGraph;
  targetGraph: SerializedGraph;
  sourceSteps: readonly SourceStepRun[];
  fromStep: string;
  untilStep?: string | undefined;
  /** The input hash roots will see in the rerun, and whether its body is available (not wiped). */
  runInput: { hash: string | null; available: boolean };
  /** Required when `fromStep` names an iteration (`s[3]`): the target owner's source iterations. */
  sourceIterations?: SourceIterations | undefined;
}

/** An iteration-level plan for the loop or parallel `fromStep` targets (`s[k]`). */
export interface IterationPlan {
  /** The top-level loop or parallel step. */
  owner: string;
  kind: 'loop' | 'parallel';
  /** The iteration or branch the user targeted. */
  target: number;
  /** Iterations the source ran. */
  sourceCount: number;
  /** Iterations whose source results the rerun keeps (by reference). */
  reuse: number[];
  /**
   * Iterations that run again. A loop: from `reuse.length` on, the source's ones listed (later
   * ones run as the loop continues). A parallel: exactly these branches.
   */
  rerun: number[];
  /**
   * Inside the targeted iteration itself: the body steps that rerun (the target and what runs
   * after it in the body) and those kept from the source. Null when the whole iteration reruns.
   */
  within: { iteration: number; rerun: string[]; reuse: string[] } | null;
}

export interface PlannedNode {
  stepId: string;
  /** The loop or parallel node whose body holds this step, or null at the top level. */
  scope: string | null;
  fate: RerunFate;
  /** Why it reruns (or would have, for a skipped node); null for a reused node. */
  reason: RerunReason | null;
  /** One sentence for people: what was compared and what was found. */
  detail: string;
  /** For a reused node: the source step run whose result is kept. */
  reusedFrom: string | null;
  /** For a reused node that succeeded: the output dataclip the rerun points at (zero copy). */
  outputDataclipId: string | null;
}

export interface RerunPlan {
  fromStep: string;
  untilStep: string | null;
  /** The top-level unit `fromStep` names (its loop or parallel owner for a body step). */
  targetUnit: string;
  /** Every node of the target graph, top level in topological order, body nodes after their owner. */
  nodes: PlannedNode[];
  counts: Record<RerunFate, number>;
  notes: string[];
  /** Set when `fromStep` targets one iteration or branch and its results before/beside it are kept. */
  iterations: IterationPlan | null;
}

/** A top-level node and its edges, in the target graph. */
interface TopNode {
  id: string;
  parents: string[];
  successors: string[];
}

/** Kahn's order over the top level (the graph was validated acyclic when registered). */
function topLevelOrder(graph: SerializedGraph): TopNode[] {
  const nodes = new Map<string, TopNode>();
  for (const n of planOf(graph).level(null)) {
    nodes.set(n.id, { id: n.id, parents: n.parents, successors: n.successors });
  }
  const indegree = new Map<string, number>();
  const queue: string[] = [];
  for (const n of nodes.values()) {
    indegree.set(n.id, n.parents.length);
    if (n.parents.length === 0) queue.push(n.id);
  }
  const order: TopNode[] = [];
  for (let i = 0; i < queue.length; i++) {
    const n = nodes.get(queue[i]!)!;
    order.push(n);
    for (const s of n.successors) {
      const left = indegree.get(s)! - 1;
      indegree.set(s, left);
      if (left === 0) queue.push(s);
    }
  }
  return order;
}

/**
 * Plan a rerun. Linear in nodes + edges: one topological pass for dirt, one reverse pass for
 * "reaches untilStep", one forward pass for the scope.
 *
 * Throws `unknown_step` (422) when `fromStep` or `untilStep` is not in the target graph, and
 * `invalid_input` when `untilStep` does not come at or after `fromStep`.
 *
 * @example
 * const plan = planRerun({ sourceGraph, targetGraph, sourceSteps, fromStep: 'enrich',
 *   runInput: { hash: run.inputHash, available: true } });
 * plan.nodes.filter((n) => n.fate === 'rerun'); // enrich and everything after it
 */
export function planRerun(input: RerunPlanInput): RerunPlan {
  const { sourceGraph, targetGraph, fromStep } = input;
  const untilStep = input.untilStep ?? null;
  const targetById = new Map(targetGraph.nodes.map((n) => [n.id, n]));
  const sourceById = new Map(sourceGraph.nodes.map((n) => [n.id, n]));
  const target = resolveStepTarget(targetGraph, fromStep);
  if (untilStep !== null) {
    if (parseStepTarget('untilStep', untilStep).indices.length > 0) {
      throw new WeftError(
        'unknown_step',
        `untilStep \`${untilStep}\` names an iteration; untilStep takes a step id (the run stops after that step, every iteration included). Use \`${untilStep.slice(0, untilStep.indexOf('['))}\`.`,
        { details: { untilStep } },
      );
    }
    if (!targetById.has(untilStep)) unknownStep('untilStep', untilStep, targetGraph);
  }
  const notes: string[] = [];
  const targetUnit = target.unit;
  if (targetUnit !== target.stepId && target.iteration === null) {
    notes.push(
      `\`${fromStep}\` is inside the body of \`${targetUnit}\`, so \`${targetUnit}\` reruns from its first iteration; target one iteration or branch (\`${fromStep}[i]\`) to keep the others.`,
    );
  }
  const untilUnit = untilStep === null ? null : topLevelOwner(targetGraph, targetById, untilStep);
  const order = topLevelOrder(targetGraph);
  const records = new Map(input.sourceSteps.map((s) => [s.stepId, s]));

  // 1–2. Own dirt, then propagation along edges (parents come first in `order`).
  const ownReason = new Map<string, { reason: RerunReason; detail: string }>();
  const dirty = new Set<string>();
  for (const n of order) {
    const own = ownDirt(
      n,
      targetById.get(n.id)!.hash,
      sourceById.get(n.id)?.hash,
      records.get(n.id),
      input.runInput,
    );
    if (own) {
      ownReason.set(n.id, own);
      dirty.add(n.id);
    } else if (n.parents.some((p) => dirty.has(p))) dirty.add(n.id);
  }

  const iterations =
    target.iteration === null
      ? null
      : planIterations(
          input,
          target,
          targetById.get(targetUnit)!.kind,
          targetUnit,
          order.find((n) => n.id === targetUnit)!,
          dirty,
          ownReason.get(targetUnit),
          notes,
          targetGraph,
        );

  // 3. Which nodes lead to untilStep (everything does without one).
  let leadsToUntil: Set<string> | null = null;
  if (untilUnit !== null) {
    leadsToUntil = new Set([untilUnit]);
    for (let i = order.length - 1; i >= 0; i--) {
      const n = order[i]!;
      if (n.successors.some((s) => leadsToUntil!.has(s))) leadsToUntil.add(n.id);
    }
    if (!leadsToUntil.has(targetUnit)) {
      throw new WeftError(
        'invalid_input',
        `untilStep \`${untilStep}\` does not run after fromStep \`${fromStep}\`; pick a step downstream of \`${fromStep}\` (or \`${fromStep}\` itself).`,
        { details: { fromStep, untilStep } },
      );
    }
  }

  // 4. Forward impact of the target, plus dirt; limited to what leads to untilStep.
  const impacted = new Set<string>([targetUnit]);
  for (const n of order) {
    if (!impacted.has(n.id) && n.parents.some((p) => impacted.has(p))) impacted.add(n.id);
  }
  const fates = new Map<string, PlannedNode>();
  const counts: Record<RerunFate, number> = { rerun: 0, reuse: 0, skip: 0 };
  for (const n of order) {
    const inScope = impacted.has(n.id) || dirty.has(n.id);
    let planned: PlannedNode;
    if (!inScope) {
      const rec = records.get(n.id)!;
      planned = {
        stepId: n.id,
        scope: null,
        fate: 'reuse',
        reason: null,
        detail:
          rec.status === 'pruned'
            ? 'pruned in the source run; the decisions upstream are kept, so it stays pruned'
            : 'unchanged since the source run; its output is reused by reference',
        reusedFrom: rec.stepRunId,
        outputDataclipId: rec.status === 'succeeded' ? rec.outputDataclipId : null,
      };
    } else {
      let why: { reason: RerunReason; detail: string };
      if (n.id === targetUnit) why = { reason: 'target', detail: `the step the rerun starts from` };
      else
        why = ownReason.get(n.id) ?? {
          reason: 'upstream_changed',
          detail: 'runs after a step that reruns',
        };
      const skipped = leadsToUntil !== null && !leadsToUntil.has(n.id);
      planned = {
        stepId: n.id,
        scope: null,
        fate: skipped ? 'skip' : 'rerun',
        reason: why.reason,
        detail: skipped
          ? `does not lead to untilStep \`${untilStep}\`; not run (${why.detail})`
          : why.detail,
        reusedFrom: null,
        outputDataclipId: null,
      };
    }
    fates.set(n.id, planned);
  }

  // Body nodes share their top-level owner's fate.
  const bodies = new Map<string, PlannedNode[]>();
  let sharedBodies = false;
  for (const node of targetGraph.nodes) {
    if (node.scope === undefined) continue;
    const owner = fates.get(topLevelOwner(targetGraph, targetById, node.id))!;
    const list = bodies.get(owner.stepId) ?? [];
    const partial = iterations !== null && iterations.owner === owner.stepId;
    list.push({
      stepId: node.id,
      scope: node.scope,
      fate: owner.fate,
      reason: owner.reason === null ? null : node.id === target.stepId ? 'target' : owner.reason,
      detail: partial
        ? describeIterations(iterations)
        : `in the body of \`${owner.stepId}\`, which is planned as one unit`,
      reusedFrom: null,
      outputDataclipId: null,
    });
    bodies.set(owner.stepId, list);
    sharedBodies = true;
  }
  if (sharedBodies && !notes.some((n) => n.includes('one unit'))) {
    notes.push(
      'Loop and parallel bodies are planned with their owner as one unit: an owner in scope reruns every iteration (unless `fromStep` targets one, `s[i]`); a reused owner keeps its output and its body results from the source run.',
    );
  }
  if (untilStep !== null)
    notes.push(`Stops after \`${untilStep}\`: steps that do not lead to it are skipped.`);

  const nodes: PlannedNode[] = [];
  for (const n of order) {
    const planned = fates.get(n.id)!;
    nodes.push(planned, ...(bodies.get(n.id) ?? []));
  }
  for (const p of nodes) counts[p.fate]++;
  return { fromStep, untilStep, targetUnit, nodes, counts, notes, iterations };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

function describeIterations(it: IterationPlan): string {
  const list = (xs: number[]) =>
    xs.length === 0 ? 'none' : xs.length > 8 ? `${xs.slice(0, 8).join(', ')}, …` : xs.join(', ');
  const base =
    it.kind === 'parallel'
      ? `in the body of parallel \`${it.owner}\`: branches ${list(it.rerun)} rerun, branches ${list(it.reuse)} reused`
      : `in the body of loop \`${it.owner}\`: iterations ${list(it.reuse)} reused, from iteration ${it.reuse.length} on rerun`;
  return it.within
    ? `${base}; in ${it.kind === 'parallel' ? 'branch' : 'iteration'} ${it.within.iteration}, ${it.within.reuse.map((id) => `\`${id}\``).join(', ')} kept`
    : base;
}

/**
 * Which iterations of the targeted owner rerun. Reusing some needs the owner's own input to be
 * what the source saw: no parent of it reruns, and its definition is unchanged (a failed or
 * unfinished owner is fine: its failure was in the body). Otherwise it restarts from iteration 0.
 */
function planIterations(
  input: RerunPlanInput,
  target: ResolvedTarget,
  kind: string,
  owner: string,
  ownerNode: TopNode,
  dirty: ReadonlySet<string>,
  own: { reason: RerunReason; detail: string } | undefined,
  notes: string[],
  graph: SerializedGraph,
): IterationPlan | null {
  const k = target.iteration!;
  const key = input.fromStep;
  if (own && own.reason !== 'previous_failure' && own.reason !== 'missing_output') {
    notes.push(
      `\`${owner}\` restarts from iteration 0, not ${k}: ${own.detail}, so no earlier iteration can be kept.`,
    );
    return null;
  }
  const dirtyParent = ownerNode.parents.find((p) => dirty.has(p));
  if (dirtyParent !== undefined) {
    notes.push(
      `\`${owner}\` restarts from iteration 0, not ${k}: \`${dirtyParent}\` upstream reruns, so its input may differ.`,
    );
    return null;
  }
  const src = input.sourceIterations ?? { count: 0, reusable: [] };
  if (src.count === 0) {
    throw new WeftError(
      'unknown_step',
      `fromStep \`${key}\`: \`${owner}\` ran no iterations in the source run, so there is no iteration ${k} to start from. Rerun from \`${owner}\` instead.`,
      { details: { fromStep: key, owner, iterations: 0 } },
    );
  }
  if (k >= src.count) {
    const last = src.count - 1;
    throw new WeftError(
      'unknown_step',
      `fromStep \`${key}\`: \`${owner}\` ran ${src.count} iteration${src.count === 1 ? '' : 's'} in the source run (\`${target.stepId}[0]\`${last > 0 ? `…\`${target.stepId}[${last}]\`` : ''}); pick an index from 0 to ${last}, or \`${target.stepId}\` to rerun every iteration.`,
      { details: { fromStep: key, owner, iterations: src.count } },
    );
  }
  if (target.inner.length > 0) {
    notes.push(
      `\`${key}\`: iteration ${k} of \`${owner}\` reruns in full, nested iterations included.`,
    );
  }
  const reusable = new Set(src.reusable);
  if (kind === 'parallel') {
    const rerun = range(0, src.count).filter((i) => i === k || !reusable.has(i));
    const reuse = range(0, src.count).filter((i) => !rerun.includes(i));
    if (rerun.length > 1) {
      notes.push(
        `Branches ${rerun.filter((i) => i !== k).join(', ')} of \`${owner}\` did not succeed in the source run; they rerun with branch ${k}.`,
      );
    }
    return {
      owner,
      kind: 'parallel',
      target: k,
      sourceCount: src.count,
      reuse,
      rerun,
      within: planWithin(graph, target, owner, k, src, notes),
    };
  }
  let from = k;
  for (let i = 0; i < k; i++) {
    if (!reusable.has(i)) {
      from = i;
      notes.push(
        `Iteration ${i} of \`${owner}\` did not succeed in the source run; the loop restarts from it, not from ${k}.`,
      );
      break;
    }
  }
  return {
    owner,
    kind: 'loop',
    target: k,
    sourceCount: src.count,
    reuse: range(0, from),
    rerun: range(from, src.count),
    within: from === k ? planWithin(graph, target, owner, k, src, notes) : null,
  };
}

/**
 * Within the targeted iteration: the target body step and what runs after it in the body rerun;
 * the body steps before it keep their source results — when each of them succeeded (or was
 * pruned) there. Only for a step of the owner's own body (a nested target reruns its iteration in
 * full), and null when nothing would be kept.
 */
function planWithin(
  graph: SerializedGraph,
  target: ResolvedTarget,
  owner: string,
  k: number,
  src: SourceIterations,
  notes: string[],
): IterationPlan['within'] {
  if (target.stepId === owner || target.inner.length > 0) return null;
  const level = planOf(graph).level(owner);
  const body = level.map((n) => n.id);
  if (!body.includes(target.stepId)) return null;
  const after = new Set([target.stepId]);
  // the plan keeps a level in topological order (parents first)
  for (const n of level) if (n.parents.some((p) => after.has(p))) after.add(n.id);
  const reuse = body.filter((id) => !after.has(id));
  if (reuse.length === 0) return null;
  const rows = new Map((src.targetRows ?? []).map((r) => [r.stepId, r.status]));
  const missing = reuse.find((id) => rows.get(id) !== 'succeeded' && rows.get(id) !== 'pruned');
  if (missing !== undefined) {
    notes.push(
      `Iteration ${k} of \`${owner}\` reruns in full: \`${missing}[${k}]\`, before \`${target.stepId}\`, did not succeed in the source run.`,
    );
    return null;
  }
  return { iteration: k, rerun: body.filter((id) => after.has(id)), reuse };
}

function ownDirt(
  n: TopNode,
  targetHash: string,
  sourceHash: string | undefined,
  rec: SourceStepRun | undefined,
  runInput: RerunPlanInput['runInput'],
): { reason: RerunReason; detail: string } | undefined {
  if (sourceHash === undefined || rec === undefined)
    return { reason: 'new_step', detail: 'not in the source run’s version' };
  if (sourceHash !== targetHash)
    return {
      reason: 'definition_changed',
      detail: `its code or config changed (hash ${sourceHash.slice(0, 8)} → ${targetHash.slice(0, 8)})`,
    };
  if (rec.status === 'failed')
    return { reason: 'previous_failure', detail: 'failed in the source run' };
  if (rec.status === 'pruned') return undefined;
  if (rec.status !== 'succeeded' || rec.outputDataclipId === null)
    return { reason: 'missing_output', detail: `did not finish in the source run (${rec.status})` };
  if (n.parents.length === 0 && runInput.hash !== null && rec.inputHash !== runInput.hash)
    return { reason: 'input_changed', detail: 'the run input differs from the one it saw' };
  return undefined;
}

/**
 * The reused nodes a rerun cannot do without: those whose output feeds a rerun node, and those
 * that end the run (their output is part of the final state). If one of them has a wiped output,
 * the rerun is impossible; so is a rerun root when the run input itself was wiped.
 *
 * Throws `dataclips_wiped` (409) naming the first such step.
 */
export function assertOutputsAvailable(
  plan: RerunPlan,
  targetGraph: SerializedGraph,
  sourceSteps: readonly SourceStepRun[],
  runInput: RerunPlanInput['runInput'],
): void {
  const records = new Map(sourceSteps.map((s) => [s.stepId, s]));
  const fate = new Map(plan.nodes.map((n) => [n.stepId, n.fate]));
  const top = topLevelOrder(targetGraph);
  for (const n of top) {
    if (fate.get(n.id) !== 'rerun') continue;
    if (n.parents.length === 0 && !runInput.available) {
      throw new WeftError(
        'dataclips_wiped',
        `Cannot rerun from \`${plan.fromStep}\`: step \`${n.id}\` needs the source run’s input, which was not kept (the project does not save dataclips). Pass \`input\` to rerun with a new one.`,
        { details: { stepId: n.id, missing: 'run_input' } },
      );
    }
    for (const p of n.parents) {
      const rec = records.get(p);
      if (fate.get(p) === 'reuse' && rec?.status === 'succeeded' && rec.outputWiped) {
        throw new WeftError(
          'dataclips_wiped',
          `Cannot rerun from \`${plan.fromStep}\`: the output of step \`${p}\` in the source run was not kept (the project does not save dataclips), and \`${n.id}\` needs it. Enable saveDataclips for the project, or rerun from \`${p}\` or earlier.`,
          { details: { stepId: p, neededBy: n.id, missing: 'output' } },
        );
      }
    }
  }
}
