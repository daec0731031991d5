/**
 * The workflow definition DSL. A workflow is built step by step; each step names the steps it
 * runs `after`, and its input type follows from them:
 * - no `after`: the run's input;
 * - one parent: that parent's output (or `{ error }` through a `failure` edge);
 * - several parents (a join): `{ [parentId]: output }`.
 *
 * Definitions are plain data plus functions; `compileWorkflow` (graph.ts) validates them and
 * computes the per-step hashes that identify a workflow version.
 *
 * Kept whole (about 500 lines): the Workflow class's overloads and the types they infer step inputs
 * from (After, StepInput) belong together, and much of the file is each primitive's JSDoc with its
 * failure semantics.
 */
import { WeftError, type StepErrorInfo } from './errors.js';
import type { Duration, RetryPolicy } from './retry.js';
import type { z } from 'zod';

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

/**
 * When an edge is taken: `success` (default), `failure` (the step failed for good), `always`, or
 * `timeout` (an approval or wait that timed out; without a timeout edge, failure edges apply).
 */
export type EdgeOn = 'success' | 'failure' | 'always' | 'timeout';

/** A parent reference: a step id, or a step id with a condition. */
export type AfterRef<TSteps> =
  | (keyof TSteps & string)
  | {
      [K in keyof TSteps & string]:
        | { step: K; on?: EdgeOn; when?: never; branch?: never }
        | { step: K; when: (output: TSteps[K]) => boolean; on?: 'success'; branch?: never }
        | { step: K; branch: string; on?: 'success'; when?: never };
    }[keyof TSteps & string];

export type After<TSteps> = AfterRef<TSteps> | readonly AfterRef<TSteps>[];

type RefStep<R> = R extends string ? R : R extends { step: infer K } ? K : never;
type RefValue<TSteps, R> = R extends { on: 'failure' | 'timeout' }
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
  /** Most attempts of this step running at once across all runs (e.g. an API's rate limit). */
  concurrency?: number;
}

/** Options shared by control nodes (no retry policy: their transitions are engine-run). */
export interface ControlOptions<A> {
  after?: A;
  description?: string;
}

export type StepFunction<I, O, TState extends RunState> = (
  input: I,
  ctx: StepContext<TState>,
) => O | Promise<O>;

/** A step as stored in a definition (types erased). */
/** Node kinds: user code (`step`, `router`) or engine-run control nodes. */
export type StepKind =
  | 'step'
  | 'router'
  | 'forEach'
  | 'times'
  | 'while'
  | 'parallel'
  | 'sleep'
  | 'approval'
  | 'subWorkflow';

type AnyBody =
  Workflow<never, Record<string, unknown>, never> | Workflow<unknown, Record<string, unknown>>;

/** What a control node does, as given in the definition (functions included). */
export type ControlSpec =
  | { kind: 'forEach'; items: (input: unknown) => unknown; body: AnyBody }
  | { kind: 'times'; count: number | ((input: unknown) => unknown); body: AnyBody }
  | {
      kind: 'while';
      condition: (last: unknown, iteration: number, input: unknown) => unknown;
      maxIterations: number;
      body: AnyBody;
    }
  | {
      kind: 'parallel';
      items: (input: unknown) => unknown;
      concurrency?: number;
      onBranchFailure?: 'fail_fast' | 'collect';
      body: AnyBody;
    }
  | { kind: 'sleep'; duration?: Duration; until?: (input: unknown) => unknown }
  | { kind: 'approval'; schema?: unknown; timeout?: Duration }
  | { kind: 'subWorkflow'; workflow: string; input?: (input: unknown) => unknown };

export interface StepDefinition {
  id: string;
  kind: StepKind;
  after: EdgeDefinition[];
  run: StepFunction<unknown, unknown, RunState>;
  control?: ControlSpec;
  description?: string;
  retry?: RetryPolicy;
  timeout?: Duration;
  onExhausted?: 'fail' | 'pause';
  /** Most attempts of this step running at once, across all runs. */
  concurrency?: number;
}

export interface EdgeDefinition {
  from: string;
  on: EdgeOn;
  /** Router edges: taken when the router's output is this branch name (or an array holding it). */
  branch?: string;
  when?: (output: unknown) => boolean;
}

export interface WorkflowOptions {
  description?: string;
  /** Largest accepted input or output, in bytes. Default 10 MiB. */
  maxPayloadBytes?: number;
  /** Most steps of one run executing at once (branches, parallel items). Default: no limit. */
  maxConcurrency?: number;
  /**
   * A zod schema of the run input. Every trigger (API, webhook, cron, CLI, dashboard, a parent's
   * `subWorkflow`) is checked against it before anything is written: a mismatch is a 422
   * `invalid_input` naming each field, and no run. It is stored with the version as JSON Schema
   * (`z.toJSONSchema`), so a server without the workflow's code checks it too; a schema that
   * JSON Schema cannot express (a transform) is rejected at registration. The input is checked,
   * not rewritten: root steps receive what was sent (defaults are not filled in), so the input
   * type is the schema's input type. See README.md, "Input schema".
   */
  input?: z.ZodType;
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
   * Failure semantics: the attempt is recorded before the code runs, so if the worker dies here
   * the lease expires and the reaper records the attempt `lost` (`lease_lost`, charged) and
   * requeues it; the output commits exactly once. A throw is retried up to `retry.maxAttempts`
   * with backoff, except `TerminalError` (`terminal`) and bad output (`invalid_output`,
   * `payload_too_large`); `step_timeout` retries; `worker_shutdown` is requeued at once. Exhausted:
   * `failure` edges, else the run fails (or pauses). See {@link docs/semantics.md#primitive-step}.
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
    return this.add(id, 'step', options, run as StepDefinition['run']);
  }

  /**
   * A router: its function names the branch (or branches) to take; its successors use
   * `after: { step: 'route', branch: 'name' }`, and edges to other branches are pruned. The data
   * passes through: the router's output, and so its successors' input, is the router's own input.
   * Failure semantics: those of `step`; a return that names no branch of its own is
   * `edge_condition_failed`, never retried. See {@link docs/semantics.md#primitive-router}.
   *
   * @example
   * .router('route', { after: 'load' }, (user) => (user.vip ? 'vip' : 'standard'))
   * .step('welcomeVip', { after: { step: 'route', branch: 'vip' } }, () => sendVipWelcome())
   */
  router<K extends string, B extends string, const A extends After<TSteps> | undefined = undefined>(
    id: K,
    options: StepOptions<A>,
    choose: StepFunction<StepInput<TInput, TSteps, A>, B | readonly B[], TState>,
  ): Workflow<TInput, TSteps & { [P in K]: StepInput<TInput, TSteps, A> }, TState> {
    return this.add(id, 'router', options, choose as StepDefinition['run']) as never;
  }

  /**
   * Run `body` once per item of an array, one iteration after another. Iteration `i` of body step
   * `s` is the step run `s[i]`; the loop's output is the array of iteration results (an
   * iteration's result is its body's final state: one leaf's output, or a map of several).
   * Failure semantics: body steps are ordinary steps (their own retries; if the worker dies, as
   * `step`); one that fails for good fails the loop with `body_step_failed`; `items` throwing or
   * not returning an array is `invalid_output`. The loop itself is never retried. See
   * {@link docs/semantics.md#primitive-loops}.
   */
  forEach<K extends string, Item, const A extends After<TSteps> | undefined = undefined>(
    id: K,
    options: ControlOptions<A> & {
      items: (input: StepInput<TInput, TSteps, A>) => readonly Item[];
      body: (
        body: Workflow<Item, NoSteps, TState>,
      ) => Workflow<Item, Record<string, unknown>, TState>;
    },
  ): Workflow<TInput, TSteps & { [P in K]: unknown[] }, TState> {
    return this.addControl(id, options, {
      kind: 'forEach',
      items: options.items as (input: unknown) => unknown,
      body: options.body(new Workflow<Item, NoSteps, TState>(id)) as AnyBody,
    });
  }

  /**
   * Run `body` `count` times in sequence; body roots receive the iteration index. Failure
   * semantics: as `forEach` (`body_step_failed`; a bad `count` is `invalid_output`). See
   * {@link docs/semantics.md#primitive-loops}.
   */
  times<K extends string, const A extends After<TSteps> | undefined = undefined>(
    id: K,
    options: ControlOptions<A> & {
      count: number | ((input: StepInput<TInput, TSteps, A>) => number);
      body: (
        body: Workflow<number, NoSteps, TState>,
      ) => Workflow<number, Record<string, unknown>, TState>;
    },
  ): Workflow<TInput, TSteps & { [P in K]: unknown[] }, TState> {
    return this.addControl(id, options, {
      kind: 'times',
      count: options.count as number | ((input: unknown) => unknown),
      body: options.body(new Workflow<number, NoSteps, TState>(id)) as AnyBody,
    });
  }

  /**
   * Run `body` while `condition(lastResult, iteration, input)` holds, at most `maxIterations`
   * times (hitting the bound fails the loop with `loop_limit_exceeded`). The first iteration gets
   * the loop's input; each next one gets the previous iteration's result. Failure semantics: as
   * `forEach`; `loop_limit_exceeded` and a throwing `condition` (`invalid_output`) are never
   * retried. See {@link docs/semantics.md#primitive-loops}.
   */
  while<K extends string, const A extends After<TSteps> | undefined = undefined>(
    id: K,
    options: ControlOptions<A> & {
      condition: (last: unknown, iteration: number, input: StepInput<TInput, TSteps, A>) => boolean;
      maxIterations: number;
      body: (
        body: Workflow<unknown, NoSteps, TState>,
      ) => Workflow<unknown, Record<string, unknown>, TState>;
    },
  ): Workflow<TInput, TSteps & { [P in K]: unknown[] }, TState> {
    return this.addControl(id, options, {
      kind: 'while',
      condition: options.condition as (last: unknown, iteration: number, input: unknown) => unknown,
      maxIterations: options.maxIterations,
      body: options.body(new Workflow<unknown, NoSteps, TState>(id)) as AnyBody,
    });
  }

  /**
   * Fan `body` out over the items concurrently (on any workers), at most `concurrency` branches at
   * once. The output is the array of branch results in item order. A failing branch fails the
   * parallel at once and cancels the others (`onBranchFailure: 'fail_fast'`, the default), or is
   * recorded as `{ error }` in its slot while the others go on (`'collect'`).
   * Failure semantics: branches are ordinary step runs (their own retries; if the worker dies, as
   * `step`); fail-fast fails the parallel with `body_step_failed` (the branch's error in
   * `details.error`); a bad `items` is `invalid_output`. Never retried. See {@link docs/semantics.md#primitive-parallel}.
   */
  parallel<K extends string, Item, const A extends After<TSteps> | undefined = undefined>(
    id: K,
    options: ControlOptions<A> & {
      items: (input: StepInput<TInput, TSteps, A>) => readonly Item[];
      concurrency?: number;
      onBranchFailure?: 'fail_fast' | 'collect';
      body: (
        body: Workflow<Item, NoSteps, TState>,
      ) => Workflow<Item, Record<string, unknown>, TState>;
    },
  ): Workflow<TInput, TSteps & { [P in K]: unknown[] }, TState> {
    const spec: ControlSpec = {
      kind: 'parallel',
      items: options.items as (input: unknown) => unknown,
      body: options.body(new Workflow<Item, NoSteps, TState>(id)) as AnyBody,
    };
    if (options.concurrency !== undefined) spec.concurrency = options.concurrency;
    if (options.onBranchFailure !== undefined) spec.onBranchFailure = options.onBranchFailure;
    return this.addControl(id, options, spec);
  }

  /**
   * Wait for a duration or until a time, holding no worker. Survives restarts of every process.
   * The data passes through: the output is the sleep's own input.
   * Failure semantics: if the worker dies here nothing is lost — the wait is a stored waitpoint
   * fired by the timer of any engine process. Only a bad `until` fails it (`invalid_output`, not
   * retried). See {@link docs/semantics.md#primitive-sleep}.
   */
  sleep<K extends string, const A extends After<TSteps> | undefined = undefined>(
    id: K,
    options: ControlOptions<A> &
      (
        | { duration: Duration }
        | { until: (input: StepInput<TInput, TSteps, A>) => Date | string | number }
      ),
  ): Workflow<TInput, TSteps & { [P in K]: StepInput<TInput, TSteps, A> }, TState> {
    const spec: ControlSpec = { kind: 'sleep' };
    if ('duration' in options) spec.duration = options.duration;
    if ('until' in options) spec.until = options.until as (input: unknown) => unknown;
    return this.addControl(id, options, spec);
  }

  /**
   * Park until a person (or system) completes the step's token:
   * `POST /api/v1/waitpoints/{token}/complete` with `{ payload }`. The payload is validated
   * against `schema` (a zod schema or a JSON Schema) and becomes the step's output. With
   * `timeout`, the step fails with `waitpoint_timed_out` when it expires and follows its
   * `timeout` edges (or `failure` edges when it has none); with neither, the run fails with it.
   * Failure semantics: it holds no worker and its token outlives every restart; it completes once.
   * A payload that fails `schema` is refused to the caller (`invalid_payload`) and the step keeps
   * waiting. Never retried. See {@link docs/semantics.md#primitive-approval}.
   */
  approval<K extends string, const A extends After<TSteps> | undefined = undefined, P = unknown>(
    id: K,
    options: ControlOptions<A> & {
      schema?: { _output?: P } | Record<string, unknown>;
      timeout?: Duration;
    },
  ): Workflow<TInput, TSteps & { [Q in K]: P }, TState> {
    const spec: ControlSpec = { kind: 'approval' };
    if (options.schema !== undefined) spec.schema = options.schema;
    if (options.timeout !== undefined) spec.timeout = options.timeout;
    return this.addControl(id, options, spec);
  }

  /**
   * Start a run of another workflow (a child run, in the same environment) and park until it ends;
   * the child's final state is this step's output. A failed child fails this step.
   * Failure semantics: the child is started with an idempotency key of this step run, so if the
   * worker dies here the transition runs again and finds the same child. A failed or canceled
   * child fails this step with `child_run_failed` (`details.childRunId`), never retried; a child
   * workflow that is not registered is tried again every second (`unknown_workflow` on the
   * attempts) until a worker registers it or the run is canceled. See {@link docs/semantics.md#primitive-subworkflow}.
   */
  subWorkflow<K extends string, const A extends After<TSteps> | undefined = undefined, O = unknown>(
    id: K,
    options: ControlOptions<A> & {
      workflow: string | { id: string; __types?: { steps: unknown } };
      input?: (input: StepInput<TInput, TSteps, A>) => unknown;
    },
  ): Workflow<TInput, TSteps & { [P in K]: O }, TState> {
    const spec: ControlSpec = {
      kind: 'subWorkflow',
      workflow: childWorkflowId(this.id, id, (options as { workflow?: unknown }).workflow),
    };
    if (options.input !== undefined) spec.input = options.input as (input: unknown) => unknown;
    return this.addControl(id, options, spec);
  }

  private add(
    id: string,
    kind: StepKind,
    options: StepOptions<unknown>,
    run: StepDefinition['run'],
    control?: ControlSpec,
  ): Workflow<TInput, never, TState> {
    const definition: StepDefinition = { id, kind, after: normalizeAfter(options.after), run };
    if (control !== undefined) definition.control = control;
    if (options.description !== undefined) definition.description = options.description;
    if (options.retry !== undefined) definition.retry = options.retry;
    if (options.timeout !== undefined) definition.timeout = options.timeout;
    if (options.onExhausted !== undefined) definition.onExhausted = options.onExhausted;
    if (options.concurrency !== undefined) definition.concurrency = options.concurrency;
    return new Workflow(this.id, this.options, [...this.steps, definition]);
  }

  private addControl(
    id: string,
    options: ControlOptions<unknown>,
    control: ControlSpec,
  ): Workflow<TInput, never, TState> {
    const stepOptions: StepOptions<unknown> = { after: options.after };
    if (options.description !== undefined) stepOptions.description = options.description;
    return this.add(id, control.kind, stepOptions, controlPlaceholder, control);
  }
}

/**
 * The child workflow a `subWorkflow` names: an id string, or a definition's id. Anything else
 * (undefined, a number, an object without an id — easy from plain JS or a bad import) is refused
 * here, naming the step, instead of surfacing later as a TypeError from reading `.id`.
 */
function childWorkflowId(workflowId: string, stepId: string, workflow: unknown): string {
  if (typeof workflow === 'string') return workflow;
  if (workflow !== null && typeof workflow === 'object') {
    const childId = (workflow as { id?: unknown }).id;
    if (typeof childId === 'string') return childId;
  }
  const found =
    workflow === undefined
      ? 'undefined'
      : typeof workflow === 'object' && workflow !== null
        ? 'an object without a string `id`'
        : `${typeof workflow} ${JSON.stringify(workflow) ?? String(workflow)}`;
  throw new WeftError(
    'invalid_workflow',
    `Workflow \`${workflowId}\`: sub-workflow \`${stepId}\` expects \`workflow\` to be a workflow id string (or a workflow definition), found ${found}. ` +
      `Fix: pass the child's id, e.g. subWorkflow('${stepId}', { workflow: 'child-id' }), or the child's defineWorkflow(...) value.`,
    { details: { workflowId, stepId, expected: 'workflow id string', found } },
  );
}

/** Control nodes have no user function; the engine runs them. */
const controlPlaceholder: StepDefinition['run'] = () => {
  throw new Error('a control node is run by the engine, not called');
};

function normalizeAfter(after: unknown): EdgeDefinition[] {
  if (after === undefined) return [];
  const refs: unknown[] = Array.isArray(after) ? after : [after];
  return refs.map((ref): EdgeDefinition => {
    if (typeof ref === 'string') return { from: ref, on: 'success' };
    if (ref !== null && typeof ref === 'object' && 'step' in ref) {
      const r = ref as { step: unknown; on?: unknown; when?: unknown; branch?: unknown };
      const edge: EdgeDefinition = { from: String(r.step), on: (r.on ?? 'success') as EdgeOn };
      if (r.branch !== undefined) edge.branch = r.branch as string;
      if (typeof r.when === 'function') edge.when = r.when as (output: unknown) => boolean;
      else if (r.when !== undefined) edge.when = r.when as never; // rejected by validation with a clear message
      return edge;
    }
    return { from: ref as string, on: 'success' }; // rejected by validation with a clear message
  });
}

/**
 * Start a workflow definition. With `options.input` (a zod schema) the input type is inferred
 * from it and every trigger is checked against it.
 *
 * @example
 * defineWorkflow('welcome-email', { input: z.object({ email: z.email() }) })
 *   .step('send', ({ email }) => sendWelcome(email));
 * @example
 * export default defineWorkflow<{ orderId: string }>('fulfil-order')
 *   .step('load', async ({ orderId }) => loadOrder(orderId))
 *   .step('charge', { after: 'load', retry: { maxAttempts: 5, minDelay: '2s' } }, (order) => charge(order))
 *   .step('ship', { after: 'charge' }, (receipt, ctx) => ship(receipt, ctx.idempotencyKey));
 */
export function defineWorkflow<S extends z.ZodType, TState extends RunState = RunState>(
  id: string,
  options: WorkflowOptions & { input: S },
): Workflow<z.input<S>, NoSteps, TState>;
export function defineWorkflow<TInput = unknown, TState extends RunState = RunState>(
  id: string,
  options?: WorkflowOptions,
): Workflow<TInput, NoSteps, TState>;
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
