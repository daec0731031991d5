/**
 * The workflow definition DSL. A workflow is built step by step; each step names the steps it
 * runs `after`, and its input type follows from them:
 * - no `after`: the run's input;
 * - one parent: that parent's output (or `{ error }` through a `failure` edge);
 * - several parents (a join): `{ [parentId]: output }`.
 *
 * Definitions are plain data plus functions; `compileWorkflow` (graph.ts) validates them and
 * computes the per-step hashes that identify a workflow version.
 */
import type { StepErrorInfo } from './errors.js';
import type { Duration, RetryPolicy } from './retry.js';

/** Logger handed to step code; lines are attached to the attempt in the worker's log. */
export interface StepLogger {
  debug(message: string, data?: Record<string, unknown>): void;
  info(message: string, data?: Record<string, unknown>): void;
  warn(message: string, data?: Record<string, unknown>): void;
  error(message: string, data?: Record<string, unknown>): void;
}

export type RunState = Record<string, unknown>;

/** The step map of a workflow with no steps yet. */
export type NoSteps = Record<never, never>;

/** What step code receives besides its input. */
export interface StepContext<TState extends RunState = RunState> {
  readonly runId: string;
  readonly workflowId: string;
  readonly stepId: string;
  /** The step run key: the step id, or `step[i]` inside loops and parallels. */
  readonly stepKey: string;
  /** 1 for the first try. Counted durably: a crash uses up an attempt. */
  readonly attempt: number;
  readonly maxAttempts: number;
  /**
   * Stable for the step run across attempts (not per attempt): pass it to external APIs so a
   * retried attempt does not repeat a side effect.
   */
  readonly idempotencyKey: string;
  /** Aborted on timeout, cancel, lost lease and worker shutdown. */
  readonly signal: AbortSignal;
  readonly log: StepLogger;
  /**
   * A draft of the run state. Top-level keys changed here commit together with the output when
   * the attempt succeeds; if the attempt fails nothing of it is kept.
   */
  state: TState;
}

/** Input of a step reached through a `failure` edge. */
export interface FailureInput {
  error: StepErrorInfo;
}

export type EdgeOn = 'success' | 'failure' | 'always';

/** A parent reference: a step id, or a step id with a condition. */
export type AfterRef<TSteps> =
  | (keyof TSteps & string)
  | {
      [K in keyof TSteps & string]:
        | { step: K; on?: EdgeOn; when?: never }
        | { step: K; when: (output: TSteps[K]) => boolean; on?: 'success' };
    }[keyof TSteps & string];

export type After<TSteps> = AfterRef<TSteps> | readonly AfterRef<TSteps>[];

type RefStep<R> = R extends string ? R : R extends { step: infer K } ? K : never;
type RefValue<TSteps, R> = R extends { on: 'failure' }
  ? FailureInput
  : R extends { on: 'always' }
    ? TSteps[RefStep<R> & keyof TSteps] | FailureInput
    : TSteps[RefStep<R> & keyof TSteps];

/** The input type of a step, from its `after` option. */
export type StepInput<TInput, TSteps, A> = [A] extends [undefined]
  ? TInput
  : A extends readonly (infer R)[]
    ? { [K in RefStep<R> & string]: RefValue<TSteps, Extract<R, K | { step: K }>> }
    : RefValue<TSteps, A>;

export interface StepOptions<A> {
  after?: A;
  description?: string;
  retry?: RetryPolicy;
  /** Per attempt. On timeout `ctx.signal` aborts and the attempt fails (and may retry). */
  timeout?: Duration;
  /** When the last attempt fails and no `failure` edge is taken: fail the run (default) or pause it. */
  onExhausted?: 'fail' | 'pause';
}

export type StepFunction<I, O, TState extends RunState> = (
  input: I,
  ctx: StepContext<TState>,
) => O | Promise<O>;

/** A step as stored in a definition (types erased). */
export interface StepDefinition {
  id: string;
  after: EdgeDefinition[];
  run: StepFunction<unknown, unknown, RunState>;
  description?: string;
  retry?: RetryPolicy;
  timeout?: Duration;
  onExhausted?: 'fail' | 'pause';
}

export interface EdgeDefinition {
  from: string;
  on: EdgeOn;
  when?: (output: unknown) => boolean;
}

export interface WorkflowOptions {
  description?: string;
  /** Largest accepted input or output, in bytes. Default 10 MiB. */
  maxPayloadBytes?: number;
}

/**
 * A workflow definition. Immutable: every `.step()` returns a new definition, so a partially built
 * chain can be shared without surprises.
 */
export class Workflow<
  TInput = unknown,
  TSteps extends Record<string, unknown> = NoSteps,
  TState extends RunState = RunState,
> {
  readonly id: string;
  readonly options: WorkflowOptions;
  readonly steps: readonly StepDefinition[];
  /** Carries the types for inference only; never read at runtime. */
  declare readonly __types?: { input: TInput; steps: TSteps; state: TState };

  constructor(id: string, options: WorkflowOptions = {}, steps: readonly StepDefinition[] = []) {
    this.id = id;
    this.options = options;
    this.steps = steps;
  }

  /**
   * Add a step. With no `after`, the step is a root and receives the run's input.
   *
   * @example
   * defineWorkflow<{ userId: string }>('onboarding')
   *   .step('fetchUser', async ({ userId }) => db.users.get(userId))
   *   .step('sendWelcome', { after: 'fetchUser', retry: { maxAttempts: 5 } }, async (user, ctx) =>
   *     mailer.send(user.email, { idempotencyKey: ctx.idempotencyKey }))
   */
  step<K extends string, O>(
    id: K,
    run: StepFunction<TInput, O, TState>,
  ): Workflow<TInput, TSteps & { [P in K]: Awaited<O> }, TState>;
  /** A root step with options: no `after`, so it receives the run's input. */
  step<K extends string, O>(
    id: K,
    options: StepOptions<undefined> & { after?: undefined },
    run: StepFunction<TInput, O, TState>,
  ): Workflow<TInput, TSteps & { [P in K]: Awaited<O> }, TState>;
  step<K extends string, const A extends After<TSteps> | undefined, O>(
    id: K,
    options: StepOptions<A>,
    run: StepFunction<StepInput<TInput, TSteps, A>, O, TState>,
  ): Workflow<TInput, TSteps & { [P in K]: Awaited<O> }, TState>;
  step(
    id: string,
    optionsOrRun: StepOptions<unknown> | StepFunction<never, unknown, TState>,
    maybeRun?: StepFunction<never, unknown, TState>,
  ): Workflow<TInput, Record<string, unknown>, TState> {
    const options: StepOptions<unknown> = typeof optionsOrRun === 'function' ? {} : optionsOrRun;
    const run = (typeof optionsOrRun === 'function' ? optionsOrRun : maybeRun) as
      StepDefinition['run'] | undefined;
    const definition: StepDefinition = {
      id,
      after: normalizeAfter(options.after),
      run: run as StepDefinition['run'],
    };
    if (options.description !== undefined) definition.description = options.description;
    if (options.retry !== undefined) definition.retry = options.retry;
    if (options.timeout !== undefined) definition.timeout = options.timeout;
    if (options.onExhausted !== undefined) definition.onExhausted = options.onExhausted;
    return new Workflow(this.id, this.options, [...this.steps, definition]);
  }
}

function normalizeAfter(after: unknown): EdgeDefinition[] {
  if (after === undefined) return [];
  const refs: unknown[] = Array.isArray(after) ? after : [after];
  return refs.map((ref): EdgeDefinition => {
    if (typeof ref === 'string') return { from: ref, on: 'success' };
    if (ref !== null && typeof ref === 'object' && 'step' in ref) {
      const r = ref as { step: unknown; on?: unknown; when?: unknown };
      const edge: EdgeDefinition = { from: String(r.step), on: (r.on ?? 'success') as EdgeOn };
      if (typeof r.when === 'function') edge.when = r.when as (output: unknown) => boolean;
      else if (r.when !== undefined) edge.when = r.when as never; // rejected by validation with a clear message
      return edge;
    }
    return { from: ref as string, on: 'success' }; // rejected by validation with a clear message
  });
}

/**
 * Start a workflow definition.
 *
 * @example
 * export default defineWorkflow<{ orderId: string }>('fulfil-order')
 *   .step('load', async ({ orderId }) => loadOrder(orderId))
 *   .step('charge', { after: 'load', retry: { maxAttempts: 5, minDelay: '2s' } }, (order) => charge(order))
 *   .step('ship', { after: 'charge' }, (receipt, ctx) => ship(receipt, ctx.idempotencyKey));
 */
export function defineWorkflow<TInput = unknown, TState extends RunState = RunState>(
  id: string,
  options: WorkflowOptions = {},
): Workflow<TInput, NoSteps, TState> {
  return new Workflow<TInput, NoSteps, TState>(id, options);
}

export function isWorkflow(value: unknown): value is Workflow<unknown, Record<string, unknown>> {
  return (
    value instanceof Workflow ||
    (typeof value === 'object' &&
      value !== null &&
      (value as { constructor?: { name?: string } }).constructor?.name === 'Workflow' &&
      Array.isArray((value as { steps?: unknown }).steps))
  );
}
