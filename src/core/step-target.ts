/**
 * Step targets: what `fromStep` and `untilStep` of a rerun may name — a step id (`send`) or a step
 * run key (`send[3]`, `send[3][0]` when nested) — parsed, and resolved against the graph a rerun
 * will use (the step, its top-level unit, the iteration of that unit). Errors are `unknown_step`
 * (422) and say which form is expected. Pure. The planning itself is rerun-planner.ts.
 */
import { WeftError } from './errors.js';
import type { SerializedGraph } from './graph.js';

/** A parsed `fromStep`: a step id, and the iteration indices of a step run key (`s[2]`, `s[2][0]`). */
export interface StepTarget {
  stepId: string;
  indices: number[];
}

const STEP_TARGET = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,99})((?:\[(?:0|[1-9]\d{0,5})\])*)$/;

/**
 * Parse `s`, `s[3]` or `s[3][0]`. Throws `unknown_step` (422) for anything else, saying the form.
 *
 * @example
 * parseStepTarget('send[2]'); // { stepId: 'send', indices: [2] }
 */
export function parseStepTarget(which: 'fromStep' | 'untilStep', value: string): StepTarget {
  const m = STEP_TARGET.exec(value);
  if (!m) {
    throw new WeftError(
      'unknown_step',
      `${which} ${JSON.stringify(value.slice(0, 120))} is not a step id or a step run key: write a step id (\`send\`) or a step and an iteration or branch index from 0 (\`send[3]\`).`,
      { details: { [which]: value, expected: 'step or step[i]' } },
    );
  }
  const indices = [...m[2]!.matchAll(/\[(\d+)\]/g)].map((x) => Number(x[1]));
  return { stepId: m[1]!, indices };
}

/** How many loop/parallel bodies enclose a node (0 at the top level). */
function depthOf(byId: Map<string, SerializedGraph['nodes'][number]>, id: string): number {
  let depth = 0;
  let node = byId.get(id);
  while (node?.scope !== undefined && depth <= byId.size) {
    depth++;
    node = byId.get(node.scope);
  }
  return depth;
}

export interface ResolvedTarget {
  stepId: string;
  /** The top-level node the target belongs to (its loop or parallel owner for a body step). */
  unit: string;
  /** The targeted iteration of `unit` (`s[3]` → 3), or null for a plain step id. */
  iteration: number | null;
  /** Indices after the first (an iteration of a nested loop): that inner loop reruns in full. */
  inner: number[];
}

/**
 * Where a `fromStep` points in the target graph: the step, its top-level unit and the iteration of
 * that unit. `s[k]` needs `s` in a loop or parallel body (or `s` to be one: `loop[k]`) and at most
 * one index per enclosing body. Throws `unknown_step` (422) naming the step and the fix.
 */
export function resolveStepTarget(graph: SerializedGraph, fromStep: string): ResolvedTarget {
  const target = parseStepTarget('fromStep', fromStep);
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const node = byId.get(target.stepId);
  if (!node) unknownStep('fromStep', fromStep, graph);
  const unit = topLevelOwner(graph, byId, target.stepId);
  if (target.indices.length === 0)
    return { stepId: target.stepId, unit, iteration: null, inner: [] };
  const depth = depthOf(byId, target.stepId);
  const ownLoop = depth === 0 && LOOP_KINDS.has(node.kind);
  const allowed = ownLoop ? 1 : depth;
  if (allowed === 0) {
    throw new WeftError(
      'unknown_step',
      `fromStep \`${fromStep}\`: \`${target.stepId}\` is a top-level ${node.kind}, not in a loop or parallel body, so it has no iterations. Use \`${target.stepId}\`.`,
      { details: { fromStep, stepId: target.stepId } },
    );
  }
  if (target.indices.length > allowed) {
    throw new WeftError(
      'unknown_step',
      `fromStep \`${fromStep}\` has ${target.indices.length} indices, but \`${target.stepId}\` is inside ${allowed} loop or parallel bod${allowed === 1 ? 'y' : 'ies'} (of \`${unit}\`), so its keys have at most ${allowed}: e.g. \`${target.stepId}[${target.indices[0]}]\`.`,
      { details: { fromStep, stepId: target.stepId, maxIndices: allowed } },
    );
  }
  return {
    stepId: target.stepId,
    unit,
    iteration: target.indices[0]!,
    inner: target.indices.slice(1),
  };
}

const LOOP_KINDS = new Set<string>(['forEach', 'times', 'while', 'parallel']);

export function unknownStep(
  which: 'fromStep' | 'untilStep',
  step: string,
  graph: SerializedGraph,
): never {
  const known = graph.nodes.map((n) => n.id);
  throw new WeftError(
    'unknown_step',
    `${which} \`${step}\` is not a step of the target version of the workflow. Known steps: ${known
      .slice(0, 50)
      .map((k) => `\`${k}\``)
      .join(', ')}${known.length > 50 ? ', …' : ''}.`,
    { details: { [which]: step, known } },
  );
}

/** The top-level node that holds a step (itself at the top level). */
export function topLevelOwner(
  graph: SerializedGraph,
  byId: Map<string, SerializedGraph['nodes'][number]>,
  id: string,
): string {
  let node = byId.get(id);
  let guard = graph.nodes.length;
  while (node?.scope !== undefined && guard-- > 0) node = byId.get(node.scope);
  return node?.id ?? id;
}
