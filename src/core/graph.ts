/**
 * Compiling a workflow definition: validation (with errors that name the step or edge), the
 * parent/successor maps the engine materializes per run, per-step content hashes (code + config)
 * that identify a workflow version and drive rerun change detection, and edge resolution — which
 * successors an outcome makes live and which it prunes.
 */
import { createHash } from 'node:crypto';
import { WeftError } from './errors.js';
import { DEFAULT_MAX_PAYLOAD_BYTES } from './json.js';
import { parseDuration, resolveRetryPolicy, type ResolvedRetryPolicy } from './retry.js';
import type { EdgeDefinition, EdgeOn, StepDefinition, Workflow } from './workflow.js';

export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

export interface CompiledEdge {
  from: string;
  to: string;
  on: EdgeOn;
  when?: (output: unknown) => boolean;
}

export interface CompiledStep {
  id: string;
  kind: 'step';
  run: StepDefinition['run'];
  parents: string[];
  successors: string[];
  incoming: CompiledEdge[];
  outgoing: CompiledEdge[];
  retry: ResolvedRetryPolicy;
  timeoutMs: number | undefined;
  onExhausted: 'fail' | 'pause';
  description: string | undefined;
  /** sha256 of the code text and the config (retry, timeout, incoming edges). */
  hash: string;
}

/** The graph as stored with a workflow version (functions replaced by their source text). */
export interface SerializedGraph {
  maxPayloadBytes: number;
  nodes: Array<{
    id: string;
    kind: 'step';
    hash: string;
    description?: string;
    maxAttempts: number;
    timeoutMs?: number;
    onExhausted: 'fail' | 'pause';
  }>;
  edges: Array<{ from: string; to: string; on: EdgeOn; when?: string }>;
}

export interface CompiledWorkflow {
  id: string;
  description: string | undefined;
  /** sha256 over the step hashes and edges: equal definitions share a version. */
  versionHash: string;
  steps: ReadonlyMap<string, CompiledStep>;
  /** Steps in a topological order (parents first). */
  order: readonly CompiledStep[];
  maxPayloadBytes: number;
  graph: SerializedGraph;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function invalid(
  workflowId: string,
  message: string,
  details: Record<string, unknown> = {},
): never {
  throw new WeftError('invalid_workflow', `Workflow \`${workflowId}\`: ${message}`, {
    details: { workflowId, ...details },
  });
}

const EDGE_ON: readonly EdgeOn[] = ['success', 'failure', 'always'];

/** Validate a definition and compile it. Throws `WeftError('invalid_workflow')` naming the problem. */
export function compileWorkflow(
  workflow: Workflow<unknown, Record<string, unknown>>,
): CompiledWorkflow {
  const wid = String(workflow.id);
  if (!ID_PATTERN.test(wid)) {
    throw new WeftError(
      'invalid_workflow',
      `Workflow id ${JSON.stringify(workflow.id)} is invalid: use 1–100 characters of letters, digits, "_", "-" and ".", starting with a letter or digit.`,
    );
  }
  if (workflow.steps.length === 0) invalid(wid, 'has no steps; add one with `.step(id, fn)`.');
  const maxPayloadBytes = workflow.options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  if (!Number.isInteger(maxPayloadBytes) || maxPayloadBytes < 1) {
    invalid(
      wid,
      `maxPayloadBytes is ${JSON.stringify(maxPayloadBytes)}: expected a whole number of bytes ≥ 1.`,
    );
  }

  const defs = new Map<string, StepDefinition>();
  for (const def of workflow.steps) {
    if (!ID_PATTERN.test(def.id)) {
      invalid(
        wid,
        `step id ${JSON.stringify(def.id)} is invalid: use letters, digits, "_", "-" and "." (no brackets: \`step[i]\` names loop iterations).`,
        { stepId: def.id },
      );
    }
    if (defs.has(def.id))
      invalid(wid, `step \`${def.id}\` is defined twice; step ids must be unique.`, {
        stepId: def.id,
      });
    if (typeof def.run !== 'function')
      invalid(wid, `step \`${def.id}\` has no function; pass \`(input, ctx) => output\`.`, {
        stepId: def.id,
      });
    defs.set(def.id, def);
  }

  const steps = new Map<string, CompiledStep>();
  for (const def of workflow.steps) {
    const where = `Workflow \`${wid}\` step \`${def.id}\``;
    const incoming: CompiledEdge[] = [];
    const seenParents = new Set<string>();
    for (const edge of def.after) {
      validateEdge(wid, def.id, edge, defs);
      if (seenParents.has(edge.from)) {
        invalid(
          wid,
          `step \`${def.id}\` lists \`${edge.from}\` in \`after\` twice; one edge per pair of steps (use \`on: 'always'\` for both outcomes).`,
          { stepId: def.id, edge: `${edge.from}->${def.id}` },
        );
      }
      seenParents.add(edge.from);
      const compiled: CompiledEdge = { from: edge.from, to: def.id, on: edge.on };
      if (edge.when) compiled.when = edge.when;
      incoming.push(compiled);
    }
    const onExhausted = def.onExhausted ?? 'fail';
    if (onExhausted !== 'fail' && onExhausted !== 'pause') {
      invalid(
        wid,
        `step \`${def.id}\` has onExhausted = ${JSON.stringify(def.onExhausted)}: expected "fail" or "pause".`,
        { stepId: def.id },
      );
    }
    const retry = resolveRetryPolicy(def.retry, where);
    const timeoutMs =
      def.timeout === undefined ? undefined : parseDuration(def.timeout, `${where} timeout`);
    if (timeoutMs !== undefined && timeoutMs < 1)
      invalid(wid, `step \`${def.id}\` has a timeout of 0; omit it for no timeout.`, {
        stepId: def.id,
      });
    const config = JSON.stringify({
      retry,
      timeoutMs: timeoutMs ?? null,
      onExhausted,
      after: incoming.map((e) => [e.from, e.on, e.when ? e.when.toString() : null]),
    });
    steps.set(def.id, {
      id: def.id,
      kind: 'step',
      run: def.run,
      parents: incoming.map((e) => e.from),
      successors: [],
      incoming,
      outgoing: [],
      retry,
      timeoutMs,
      onExhausted,
      description: def.description,
      hash: sha256(`${def.run.toString()}\u0001${config}`),
    });
  }
  for (const step of steps.values()) {
    for (const edge of step.incoming) {
      const parent = steps.get(edge.from)!;
      parent.successors.push(step.id);
      parent.outgoing.push(edge);
    }
  }

  const order = topologicalOrder(wid, steps);
  const graph: SerializedGraph = {
    maxPayloadBytes,
    nodes: order.map((s) => {
      const node: SerializedGraph['nodes'][number] = {
        id: s.id,
        kind: s.kind,
        hash: s.hash,
        maxAttempts: s.retry.maxAttempts,
        onExhausted: s.onExhausted,
      };
      if (s.description !== undefined) node.description = s.description;
      if (s.timeoutMs !== undefined) node.timeoutMs = s.timeoutMs;
      return node;
    }),
    edges: order.flatMap((s) =>
      s.incoming.map((e) => {
        const edge: SerializedGraph['edges'][number] = { from: e.from, to: e.to, on: e.on };
        if (e.when) edge.when = e.when.toString();
        return edge;
      }),
    ),
  };
  const versionHash = sha256(
    JSON.stringify({ id: wid, maxPayloadBytes, nodes: graph.nodes.map((n) => [n.id, n.hash]) }),
  );
  return {
    id: wid,
    description: workflow.options.description,
    versionHash,
    steps,
    order,
    maxPayloadBytes,
    graph,
  };
}

function validateEdge(
  wid: string,
  stepId: string,
  edge: EdgeDefinition,
  defs: Map<string, StepDefinition>,
): void {
  const name = `${String(edge.from)} -> ${stepId}`;
  if (typeof edge.from !== 'string' || !defs.has(edge.from)) {
    const known = [...defs.keys()].filter((k) => k !== stepId);
    invalid(
      wid,
      `step \`${stepId}\` runs after \`${String(edge.from)}\`, which is not a step of this workflow (a dangling edge). Known steps: ${known.map((k) => `\`${k}\``).join(', ') || 'none'}.`,
      { stepId, edge: name },
    );
  }
  if (edge.from === stepId)
    invalid(
      wid,
      `step \`${stepId}\` runs after itself (edge \`${name}\`); use a loop for repetition.`,
      { stepId, edge: name },
    );
  if (!EDGE_ON.includes(edge.on)) {
    invalid(
      wid,
      `edge \`${name}\` has on = ${JSON.stringify(edge.on)}: expected "success", "failure" or "always".`,
      { stepId, edge: name },
    );
  }
  if (edge.when !== undefined && typeof edge.when !== 'function') {
    invalid(
      wid,
      `edge \`${name}\` has a \`when\` that is not a function; pass \`(output) => boolean\`.`,
      { stepId, edge: name },
    );
  }
  if (edge.when !== undefined && edge.on !== 'success') {
    invalid(
      wid,
      `edge \`${name}\` has both \`when\` and on = "${edge.on}"; a predicate applies to a successful output only.`,
      { stepId, edge: name },
    );
  }
}

/** Kahn's algorithm; a leftover node lies on a cycle, which is reported as a path. */
function topologicalOrder(wid: string, steps: Map<string, CompiledStep>): CompiledStep[] {
  const indegree = new Map<string, number>();
  for (const s of steps.values()) indegree.set(s.id, s.parents.length);
  const queue = [...steps.values()].filter((s) => s.parents.length === 0).map((s) => s.id);
  if (queue.length === 0) {
    invalid(
      wid,
      `has no root step (every step runs after another), so the graph is a cycle: ${describeCycle(steps)}.`,
      { cycle: cyclePath(steps) },
    );
  }
  const order: CompiledStep[] = [];
  while (queue.length > 0) {
    const id = queue.shift()!;
    const step = steps.get(id)!;
    order.push(step);
    for (const succ of step.successors) {
      const left = indegree.get(succ)! - 1;
      indegree.set(succ, left);
      if (left === 0) queue.push(succ);
    }
  }
  if (order.length !== steps.size) {
    invalid(
      wid,
      `has a cycle: ${describeCycle(steps)}. Steps may not run after their own successors; use a loop step for repetition.`,
      { cycle: cyclePath(steps) },
    );
  }
  return order;
}

function cyclePath(steps: Map<string, CompiledStep>): string[] {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (id: string): string[] | undefined => {
    state.set(id, 'open');
    stack.push(id);
    for (const succ of steps.get(id)!.successors) {
      if (state.get(succ) === 'open') return [...stack.slice(stack.indexOf(succ)), succ];
      if (!state.has(succ)) {
        const found = visit(succ);
        if (found) return found;
      }
    }
    stack.pop();
    state.set(id, 'done');
    return undefined;
  };
  for (const id of steps.keys()) {
    if (!state.has(id)) {
      const found = visit(id);
      if (found) return found;
    }
  }
  return [];
}

function describeCycle(steps: Map<string, CompiledStep>): string {
  return cyclePath(steps)
    .map((s) => `\`${s}\``)
    .join(' → ');
}

export type StepOutcome = { ok: true; output: unknown } | { ok: false };

/**
 * Which successors an outcome reaches. A predicate that throws is a definition bug, not a
 * transient fault: it surfaces as a non-retryable `edge_condition_failed` error.
 */
export function resolveOutgoingEdges(
  workflowId: string,
  step: CompiledStep,
  outcome: StepOutcome,
): { live: string[]; dead: string[] } {
  const live: string[] = [];
  const dead: string[] = [];
  for (const edge of step.outgoing) {
    let taken: boolean;
    if (edge.on === 'always') taken = true;
    else if (edge.on === 'failure') taken = !outcome.ok;
    else if (!outcome.ok) taken = false;
    else if (edge.when) {
      try {
        taken = edge.when(outcome.output) === true;
      } catch (error) {
        throw new WeftError(
          'edge_condition_failed',
          `Workflow \`${workflowId}\`: the \`when\` condition of edge \`${edge.from} -> ${edge.to}\` threw: ${error instanceof Error ? error.message : String(error)}. Make the predicate total over the step's output.`,
          { cause: error, details: { edge: `${edge.from}->${edge.to}` } },
        );
      }
    } else taken = true;
    (taken ? live : dead).push(edge.to);
  }
  return { live, dead };
}
