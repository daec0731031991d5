/**
 * The execution plan of a workflow version: per node, its level (scope), parents, successors,
 * failure successors, attempts, exhaustion policy and concurrency limit — everything a run
 * materializes as step-run rows — with the key template (`keyed`) and the concurrency key
 * (`concurrencyKey`) those rows are written with. It is the one place edges become parent/successor lists and the
 * one place that decides which edges a failure follows (`followsFailure`): run creation (the
 * store), loop and parallel bodies re-run by a rerun, and the rerun planner read the plan and never
 * walk the edge list themselves.
 *
 * The plan is a pure function of the stored graph (`SerializedGraph`), so it is compiled on read
 * and memoized per graph object rather than stored in a column of its own: versions registered by
 * an earlier release (which stored only the graph) get the same plan as new ones, with no
 * migration and no second copy that could disagree with the graph it came from.
 */
import type { EdgeOn } from './workflow.js';
import type { SerializedGraph, SerializedNode } from './graph.js';

/** Whether a step that fails for good follows an edge of this kind (failure and always edges). */
export function followsFailure(on: EdgeOn): boolean {
  return on === 'failure' || on === 'always';
}

export interface PlanNode {
  id: string;
  kind: SerializedNode['kind'];
  /** The control node whose body holds this step, or null at the top level. */
  scope: string | null;
  parents: string[];
  successors: string[];
  /** Successors reached when this step fails for good (see followsFailure). */
  failureSuccessors: string[];
  maxAttempts: number;
  onExhausted: 'fail' | 'pause';
  /** Most step runs of this step executing at once (per environment and workflow); none: no limit. */
  concurrency: number | undefined;
}

export interface ExecutionPlan {
  /** Every node of every level, by id. */
  nodes: ReadonlyMap<string, PlanNode>;
  /**
   * The nodes of one level (null: the top level; otherwise the owning loop or parallel node), in
   * the graph's stored order, which is topological within a level.
   */
  level(scope: string | null): readonly PlanNode[];
}

/**
 * The one derivation of parent, successor and failure-successor lists from edges. Edges whose
 * ends are not both among `ids` are skipped (edges never cross levels, so restricting `ids` to one
 * level keeps exactly that level's edges).
 */
export function linkEdges(
  ids: Iterable<string>,
  edges: Iterable<{ from: string; to: string; on: EdgeOn }>,
): Map<string, { parents: string[]; successors: string[]; failureSuccessors: string[] }> {
  const links = new Map<
    string,
    { parents: string[]; successors: string[]; failureSuccessors: string[] }
  >();
  for (const id of ids) links.set(id, { parents: [], successors: [], failureSuccessors: [] });
  for (const e of edges) {
    const from = links.get(e.from);
    const to = links.get(e.to);
    if (!from || !to) continue;
    to.parents.push(e.from);
    from.successors.push(e.to);
    if (followsFailure(e.on)) from.failureSuccessors.push(e.to);
  }
  return links;
}

/** The concurrency-limit key of a step: limits hold per environment, workflow and step. */
export function concurrencyKey(environmentId: string, workflowId: string, stepId: string): string {
  return `${environmentId}:${workflowId}:${stepId}`;
}

/**
 * The step-run key template: a step of a loop or parallel body runs once per iteration, keyed by
 * its id with the owner's index path appended (`send[2]`, `send[2][0]` when nested). Maps ids of
 * the same level as `stepKey` (its successors, say) to their keys in the same iteration.
 */
export function keyed(stepKey: string, ids: readonly string[]): string[] {
  const at = stepKey.indexOf('[');
  const path = at === -1 ? '' : stepKey.slice(at);
  return ids.map((id) => id + path);
}

const plans = new WeakMap<SerializedGraph, ExecutionPlan>();

/** The plan of a stored graph; compiled once per graph object. */
export function planOf(graph: SerializedGraph): ExecutionPlan {
  let plan = plans.get(graph);
  if (!plan) {
    plan = compilePlan(graph);
    plans.set(graph, plan);
  }
  return plan;
}

/** Compile the plan of a stored graph (see planOf for the memoized form). */
export function compilePlan(graph: SerializedGraph): ExecutionPlan {
  const links = linkEdges(
    graph.nodes.map((n) => n.id),
    graph.edges,
  );
  const nodes = new Map<string, PlanNode>();
  const levels = new Map<string | null, PlanNode[]>();
  for (const n of graph.nodes) {
    const link = links.get(n.id)!;
    const node: PlanNode = {
      id: n.id,
      kind: n.kind,
      scope: n.scope ?? null,
      parents: link.parents,
      successors: link.successors,
      failureSuccessors: link.failureSuccessors,
      maxAttempts: n.maxAttempts,
      onExhausted: n.onExhausted,
      concurrency: n.concurrency,
    };
    nodes.set(n.id, node);
    const level = levels.get(node.scope);
    if (level) level.push(node);
    else levels.set(node.scope, [node]);
  }
  return { nodes, level: (scope) => levels.get(scope) ?? [] };
}
