/**
 * Edge resolution at run time: which successors of a compiled step an outcome makes live and
 * which it prunes (success, failure, always and timeout edges, `when` predicates, router branches).
 * Called by the worker for every finished attempt; compiling the edges is graph.ts.
 */
import { WeftError } from './errors.js';
import type { CompiledStep } from './graph.js';
import { followsFailure } from './plan.js';

export type StepOutcome = { ok: true; output: unknown } | { ok: false; timedOut?: boolean };

/**
 * Which successors an outcome reaches. A predicate that throws, or a router that names no
 * branch, is a definition bug, not a transient fault: it surfaces as a non-retryable
 * `edge_condition_failed` error.
 */
export function resolveOutgoingEdges(
  workflowId: string,
  step: CompiledStep,
  outcome: StepOutcome,
): { live: string[]; dead: string[] } {
  const live: string[] = [];
  const dead: string[] = [];
  const hasTimeoutEdge = step.outgoing.some((e) => e.on === 'timeout');
  if (step.kind === 'router' && outcome.ok) {
    const out = outcome.output;
    if (!(
      typeof out === 'string' ||
      (Array.isArray(out) && out.every((b) => typeof b === 'string'))
    )) {
      throw new WeftError(
        'edge_condition_failed',
        `Workflow \`${workflowId}\`: router \`${step.id}\` returned ${JSON.stringify(out)?.slice(0, 80)}; a router returns a branch name or an array of branch names (${step.outgoing.map((e) => JSON.stringify(e.branch)).join(', ')}).`,
        { details: { stepId: step.id } },
      );
    }
  }
  for (const edge of step.outgoing) {
    let taken: boolean;
    if (edge.on === 'timeout') taken = !outcome.ok && outcome.timedOut === true;
    else if (!outcome.ok) {
      // The edges a failure follows are the plan's (followsFailure), the same ones fail_step
      // follows from a step run's failure_successors; only an approval that timed out and has a
      // timeout edge takes that edge in place of its failure edges.
      taken =
        followsFailure(edge.on) &&
        !(edge.on === 'failure' && outcome.timedOut === true && hasTimeoutEdge);
    } else if (edge.on === 'always') taken = true;
    else if (edge.on === 'failure') taken = false;
    else if (edge.branch !== undefined) {
      const out = outcome.output;
      taken = out === edge.branch || (Array.isArray(out) && out.includes(edge.branch));
    } else if (edge.when) {
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
