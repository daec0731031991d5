/**
 * Control nodes (loops, parallel, sleep, approval, sub-workflow) are step runs whose "code" is
 * this module. Each claim of a control node is one transition: read what happened since the last
 * one (body results, the waitpoint), then either park again (more iterations, a waitpoint), finish
 * with an output, or fail. Every transition goes through the same claim / lease / fenced-commit
 * machinery as user steps, so a crash mid-transition is retried and a late one is rejected.
 *
 * Failure semantics: a throwing user function here (`items`, `condition`, `until`, `input`) or a
 * bad value from it is a definition or data bug — the node fails terminally with a named error
 * and follows its failure edges. A waiting node holds no worker. Codes (src/core/error-codes.ts):
 * `invalid_output` (a user function threw or returned a bad value), `loop_limit_exceeded`,
 * `waitpoint_timed_out`, `body_step_failed` (a step of the body failed the scope: details.stepKey,
 * details.error), `child_run_failed`. See docs/semantics.md#failure-semantics-of-each-primitive.
 */
import { WeftError } from '../core/errors.js';
import {
  type CompiledControl,
  type CompiledScope,
  type CompiledStep,
  type CompiledWorkflow,
} from '../core/graph.js';
import { encodeJson } from '../core/json.js';
import type { ClaimedStep } from '../store/rows.js';
import type { ControlState, ParkRequest } from '../store/run-store.js';

export type ControlOutcome =
  | { kind: 'complete'; output: unknown }
  | { kind: 'park'; park: ParkRequest; childRunId?: string }
  | { kind: 'fail'; error: WeftError; timedOut?: boolean };

export interface ControlDeps {
  readState(claim: ClaimedStep): Promise<ControlState>;
  /** Start (or find, idempotently) the child run of a sub-workflow step. */
  startChild(claim: ClaimedStep, workflowId: string, input: unknown): Promise<string>;
  /** The child run's status and final state. */
  childResult(
    claim: ClaimedStep,
    childRunId: string,
  ): Promise<{ status: string; output: unknown; error: unknown }>;
  now(): Date;
}

function fail(
  code: 'invalid_output' | 'edge_condition_failed' | 'internal',
  message: string,
  details?: Record<string, unknown>,
): ControlOutcome {
  return { kind: 'fail', error: new WeftError(code, message, details ? { details } : {}) };
}

type UserResult<T> = { ok: true; value: T } | { ok: false; outcome: ControlOutcome };

/** Call a user-supplied function of a control node; a throw becomes a terminal, named failure. */
function callUser<T>(what: string, fn: () => T): UserResult<T> {
  try {
    return { ok: true, value: fn() };
  } catch (error) {
    return {
      ok: false,
      outcome: fail(
        'invalid_output',
        `${what} threw: ${error instanceof Error ? error.message : String(error)}.`,
      ),
    };
  }
}

/** The body's graph as park_step materializes it. */
function bodyNodes(body: CompiledScope): NonNullable<ParkRequest['body']>['nodes'] {
  return body.order.map((s) => ({
    stepId: s.id,
    kind: s.kind,
    parents: s.parents,
    successors: s.successors,
    failureSuccessors: s.failureSuccessors,
    maxAttempts: s.retry.maxAttempts,
    onExhausted: s.onExhausted,
    concurrency: s.concurrency,
  }));
}

/** An iteration's result: its body's final state (one leaf's output, a map of several), or `{ error }`. */
function iterationResult(state: ControlState, i: number): unknown {
  const entry = state.iterations.get(i);
  if (!entry) return null;
  if (entry.errors.size > 0) return { error: [...entry.errors.values()][0] };
  if (entry.outputs.size === 1) return [...entry.outputs.values()][0];
  if (entry.outputs.size === 0) return null;
  return Object.fromEntries(entry.outputs);
}

function encodeIterationInput(what: string, value: unknown, maxBytes: number): string {
  return encodeJson(value, { what, root: 'item', maxBytes, code: 'invalid_output' }).text;
}

export async function runControlTransition(
  workflow: CompiledWorkflow,
  step: CompiledStep,
  claim: ClaimedStep,
  deps: ControlDeps,
): Promise<ControlOutcome> {
  const control = step.control as CompiledControl;
  const name = `${control.kind} \`${claim.stepKey}\` of workflow \`${workflow.id}\``;
  const state = await deps.readState(claim);
  const input = claim.input;

  if (state.scopeFailure) {
    const failed = state.scopeFailure;
    const err = failed.error as { message?: string; code?: string } | null;
    return {
      kind: 'fail',
      error: new WeftError(
        'body_step_failed',
        `${name} failed: step \`${failed.stepKey}\` failed: ${err?.message ?? 'unknown error'}`,
        {
          details: { stepKey: failed.stepKey, error: failed.error },
        },
      ),
    };
  }

  switch (control.kind) {
    case 'forEach':
    case 'parallel': {
      const itemsResult = callUser(`the \`items\` function of ${name}`, () => control.items(input));
      if (!itemsResult.ok) return itemsResult.outcome;
      const items = itemsResult.value;
      if (!Array.isArray(items)) {
        return fail(
          'invalid_output',
          `the \`items\` function of ${name} returned ${describeValue(items)}; it must return an array to iterate over.`,
          {
            found: describeValue(items),
          },
        );
      }
      if (control.kind === 'parallel') {
        if (state.started === 0) {
          if (items.length === 0) return { kind: 'complete', output: [] };
          if (items.length > 10_000)
            return fail(
              'invalid_output',
              `${name} has ${items.length} items; a parallel fans out to at most 10000 branches.`,
            );
          const iterations = items.map((item, i) => ({
            iteration: i,
            input: encodeIterationInput(`item ${i} of ${name}`, item, workflow.maxPayloadBytes),
            gated: i >= control.concurrency,
          }));
          return {
            kind: 'park',
            park: {
              body: {
                onScopeFailure: control.onBranchFailure === 'collect' ? 'collect' : 'fail',
                nodes: bodyNodes(control.body),
                iterations,
              },
            },
          };
        }
        return {
          kind: 'complete',
          output: Array.from({ length: state.started }, (_, i) => iterationResult(state, i)),
        };
      }
      // forEach: one iteration at a time
      if (state.started < items.length) {
        const i = state.started;
        return park(
          control.body,
          i,
          encodeIterationInput(`item ${i} of ${name}`, items[i], workflow.maxPayloadBytes),
        );
      }
      return {
        kind: 'complete',
        output: Array.from({ length: items.length }, (_, i) => iterationResult(state, i)),
      };
    }
    case 'times': {
      const countResult: UserResult<unknown> =
        typeof control.count === 'number'
          ? { ok: true, value: control.count }
          : callUser(`the \`count\` function of ${name}`, () =>
              (control.count as (i: unknown) => unknown)(input),
            );
      if (!countResult.ok) return countResult.outcome;
      const count = countResult.value;
      if (!(
        typeof count === 'number' &&
        Number.isInteger(count) &&
        count >= 0 &&
        count <= 100_000
      )) {
        return fail(
          'invalid_output',
          `the \`count\` of ${name} is ${describeValue(count)}; expected a whole number from 0 to 100000.`,
        );
      }
      if (state.started < count)
        return park(control.body, state.started, JSON.stringify(state.started));
      return {
        kind: 'complete',
        output: Array.from({ length: count }, (_, i) => iterationResult(state, i)),
      };
    }
    case 'while': {
      const i = state.started;
      const last = i === 0 ? input : iterationResult(state, i - 1);
      const goResult = callUser(`the \`condition\` of ${name}`, () =>
        control.condition(last, i, input),
      );
      if (!goResult.ok) return goResult.outcome;
      const go = goResult.value;
      if (go === true) {
        if (i >= control.maxIterations) {
          return {
            kind: 'fail',
            error: new WeftError(
              'loop_limit_exceeded',
              `${name} reached its bound of ${control.maxIterations} iterations with its condition still true; raise maxIterations or fix the condition.`,
              { details: { maxIterations: control.maxIterations } },
            ),
          };
        }
        return park(
          control.body,
          i,
          encodeIterationInput(`iteration ${i} input of ${name}`, last, workflow.maxPayloadBytes),
        );
      }
      return {
        kind: 'complete',
        output: Array.from({ length: i }, (_, k) => iterationResult(state, k)),
      };
    }
    case 'sleep': {
      if (!state.waitpoint) {
        let until: Date;
        if (control.durationMs !== undefined)
          until = new Date(deps.now().getTime() + control.durationMs);
        else {
          const valueResult = callUser(`the \`until\` function of ${name}`, () =>
            control.until!(input),
          );
          if (!valueResult.ok) return valueResult.outcome;
          const value = valueResult.value;
          until = new Date(value as string | number | Date);
          if (
            !(value instanceof Date || typeof value === 'string' || typeof value === 'number') ||
            Number.isNaN(until.getTime())
          ) {
            return fail(
              'invalid_output',
              `the \`until\` function of ${name} returned ${describeValue(value)}; return a Date, an ISO time or epoch milliseconds.`,
            );
          }
        }
        return { kind: 'park', park: { waitpoint: { kind: 'sleep', resumeAt: until } } };
      }
      // a wait passes its input through; when it woke is on the waitpoint
      return { kind: 'complete', output: input };
    }
    case 'approval': {
      if (!state.waitpoint) {
        const waitpoint: NonNullable<ParkRequest['waitpoint']> = { kind: 'approval' };
        if (control.timeoutMs !== undefined)
          waitpoint.resumeAt = new Date(deps.now().getTime() + control.timeoutMs);
        if (control.schema) waitpoint.schema = control.schema;
        return { kind: 'park', park: { waitpoint } };
      }
      if (state.waitpoint.status === 'timed_out') {
        return {
          kind: 'fail',
          timedOut: true,
          error: new WeftError(
            'waitpoint_timed_out',
            `approval \`${claim.stepKey}\` (token ${state.waitpoint.id}) timed out after ${control.timeoutMs} ms without being completed; complete it in time, or give it a \`timeout\` edge.`,
            { details: { waitpointId: state.waitpoint.id } },
          ),
        };
      }
      return { kind: 'complete', output: state.waitpoint.payload };
    }
    case 'subWorkflow': {
      if (!state.waitpoint) {
        const childInputResult: UserResult<unknown> = control.input
          ? callUser(`the \`input\` function of ${name}`, () => control.input!(input))
          : { ok: true, value: input };
        if (!childInputResult.ok) return childInputResult.outcome;
        const childInput = childInputResult.value;
        const childRunId = await deps.startChild(claim, control.workflow, childInput);
        return { kind: 'park', park: { waitpoint: { kind: 'child_run', childRunId } }, childRunId };
      }
      const result = await deps.childResult(claim, state.waitpoint.childRunId!);
      if (result.status === 'succeeded') return { kind: 'complete', output: result.output };
      const err = result.error as { error?: { message?: string } } | null;
      return {
        kind: 'fail',
        error: new WeftError(
          'child_run_failed',
          `sub-workflow \`${claim.stepKey}\`: child run ${state.waitpoint.childRunId} of \`${control.workflow}\` ended ${result.status}${err?.error?.message ? `: ${err.error.message}` : ''}.`,
          {
            details: { childRunId: state.waitpoint.childRunId, childStatus: result.status },
          },
        ),
      };
    }
  }
}

function park(body: CompiledScope, iteration: number, input: string): ControlOutcome {
  return {
    kind: 'park',
    park: {
      body: {
        onScopeFailure: 'fail',
        nodes: bodyNodes(body),
        iterations: [{ iteration, input, gated: false }],
      },
    },
  };
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 40))}`;
  return `${typeof value} ${String(value)}`;
}
