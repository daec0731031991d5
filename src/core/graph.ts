/**
 * Compiling a workflow definition: validation (with errors that name the step or edge), the
 * compiled steps (their parent/successor lists come from plan.ts linkEdges, the one derivation the
 * stored version's execution plan uses too), and per-step content hashes (code + config) that
 * identify a workflow version and drive rerun change detection. Which successors an outcome makes
 * live at run time is edge-resolution.ts.
 *
 * A graph has levels (scopes): the workflow's top level, and the body of each loop or parallel
 * node. Edges stay inside one level; step ids are unique across all levels, so a step run key
 * (`send[2]`, `send[2][0]` when nested) names one step unambiguously.
 *
 * Kept whole (about 730 lines): compiling is one recursive pass (compileScope and compileControl
 * call each other for nested loop and parallel bodies) over the compiled types declared here, with
 * one invalid() helper naming the workflow; the cycle check reads the same CompiledStep. Splitting
 * it further means first moving those types to a file of their own (the execution plan,
 * plan.ts, took only the edge derivation).
 */
import { createHash } from 'node:crypto';
import { WeftError } from './errors.js';
import { isZodSchema, toStoredSchema, type JsonSchemaObject } from './json-schema.js';
import { DEFAULT_MAX_PAYLOAD_BYTES } from './json.js';
import { linkEdges } from './plan.js';
import { parseDuration, resolveRetryPolicy, type ResolvedRetryPolicy } from './retry.js';
import type {
  ControlSpec,
  EdgeDefinition,
  EdgeOn,
  StepDefinition,
  StepKind,
  Workflow,
} from './workflow.js';

export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

/** Control nodes are engine-run; each of their transitions is a claim, so attempts are not a budget. */
export const CONTROL_MAX_ATTEMPTS = 2_147_483_647;
export const MAX_PARALLEL_BRANCHES = 10_000;

export interface CompiledEdge {
  from: string;
  to: string;
  on: EdgeOn;
  when?: (output: unknown) => boolean;
  branch?: string;
}

/** One level of the graph: the workflow's top level, or a control node's body. */
export interface CompiledScope {
  /** The control node that owns this body, or null for the top level. */
  owner: string | null;
  steps: ReadonlyMap<string, CompiledStep>;
  /** Steps in a topological order (parents first). */
  order: readonly CompiledStep[];
}

export type CompiledControl =
  | { kind: 'forEach'; items: (input: unknown) => unknown; body: CompiledScope }
  | { kind: 'times'; count: number | ((input: unknown) => unknown); body: CompiledScope }
  | {
      kind: 'while';
      condition: (last: unknown, iteration: number, input: unknown) => unknown;
      maxIterations: number;
      body: CompiledScope;
    }
  | {
      kind: 'parallel';
      items: (input: unknown) => unknown;
      concurrency: number;
      onBranchFailure: 'fail_fast' | 'collect';
      body: CompiledScope;
    }
  | { kind: 'sleep'; durationMs?: number; until?: (input: unknown) => unknown }
  | { kind: 'approval'; schema?: Record<string, unknown>; timeoutMs?: number }
  | { kind: 'subWorkflow'; workflow: string; input?: (input: unknown) => unknown };

export interface CompiledStep {
  id: string;
  kind: StepKind;
  /** The control node whose body holds this step, or null at the top level. */
  scope: string | null;
  run: StepDefinition['run'];
  control: CompiledControl | undefined;
  parents: string[];
  successors: string[];
  /** Successors reached when this step fails for good (failure and always edges). */
  failureSuccessors: string[];
  incoming: CompiledEdge[];
  outgoing: CompiledEdge[];
  retry: ResolvedRetryPolicy;
  timeoutMs: number | undefined;
  onExhausted: 'fail' | 'pause';
  concurrency: number | undefined;
  description: string | undefined;
  /** sha256 of the code text and the config (retry, timeout, incoming edges, control spec). */
  hash: string;
}

export interface SerializedNode {
  id: string;
  kind: StepKind;
  hash: string;
  /** The control node whose body holds this step; absent at the top level. */
  scope?: string;
  description?: string;
  maxAttempts: number;
  timeoutMs?: number;
  onExhausted: 'fail' | 'pause';
  concurrency?: number;
  /** Control node settings that the API and the dashboard show (functions as source text). */
  control?: Record<string, unknown>;
}

/** The graph as stored with a workflow version (functions replaced by their source text). */
export interface SerializedGraph {
  maxPayloadBytes: number;
  /** Most step runs of one run executing at once; absent: no limit. */
  maxConcurrency?: number;
  /** The run input's JSON Schema (draft 2020-12, from the workflow's zod `input`); absent: any JSON. */
  inputSchema?: Record<string, unknown>;
  nodes: SerializedNode[];
  edges: Array<{ from: string; to: string; on: EdgeOn; when?: string; branch?: string }>;
}

export interface CompiledWorkflow {
  id: string;
  description: string | undefined;
  /** sha256 over the step hashes: equal definitions share a version. */
  versionHash: string;
  /** Every step of every level, by id. */
  steps: ReadonlyMap<string, CompiledStep>;
  top: CompiledScope;
  /** Top-level steps in a topological order (parents first). */
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

const EDGE_ON: readonly EdgeOn[] = ['success', 'failure', 'always', 'timeout'];
const LOOPS: readonly StepKind[] = ['forEach', 'times', 'while', 'parallel'];

type AnyWorkflowDef = Workflow<unknown, Record<string, unknown>>;

/** Validate a definition and compile it. Throws `WeftError('invalid_workflow')` naming the problem. */
export function compileWorkflow(workflow: AnyWorkflowDef): CompiledWorkflow {
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
  const all = new Map<string, CompiledStep>();
  const top = compileScope(wid, workflow.steps, null, all);
  const serialized: SerializedGraph = { maxPayloadBytes, nodes: [], edges: [] };
  const maxConcurrency = workflow.options.maxConcurrency;
  if (maxConcurrency !== undefined) {
    if (!(Number.isInteger(maxConcurrency) && maxConcurrency >= 1 && maxConcurrency <= 100_000)) {
      invalid(
        wid,
        `maxConcurrency is ${JSON.stringify(maxConcurrency)}: expected a whole number from 1 to 100000.`,
      );
    }
    serialized.maxConcurrency = maxConcurrency;
  }
  if (workflow.options.input !== undefined) {
    serialized.inputSchema = inputJsonSchema(wid, workflow.options.input);
  }
  const serializeScope = (scope: CompiledScope): void => {
    for (const s of scope.order) {
      serialized.nodes.push(serializeNode(s));
      for (const e of s.incoming) {
        const edge: SerializedGraph['edges'][number] = { from: e.from, to: e.to, on: e.on };
        if (e.when) edge.when = e.when.toString();
        if (e.branch !== undefined) edge.branch = e.branch;
        serialized.edges.push(edge);
      }
      if (s.control && 'body' in s.control) serializeScope(s.control.body);
    }
  };
  serializeScope(top);
  const versionHash = sha256(
    JSON.stringify({
      id: wid,
      maxPayloadBytes,
      maxConcurrency: maxConcurrency ?? null,
      // absent from the text when there is none, so versions hashed before input schemas existed
      // keep their hash
      ...(serialized.inputSchema ? { inputSchema: serialized.inputSchema } : {}),
      nodes: serialized.nodes.map((n) => [n.id, n.hash]),
    }),
  );
  return {
    id: wid,
    description: workflow.options.description,
    versionHash,
    steps: all,
    top,
    order: top.order,
    maxPayloadBytes,
    graph: serialized,
  };
}

/** The input schema as JSON Schema, or `invalid_workflow` saying why it cannot be one. */
function inputJsonSchema(workflowId: string, schema: unknown): JsonSchemaObject {
  if (!isZodSchema(schema)) {
    invalid(
      workflowId,
      `options.input is ${typeof schema === 'object' ? 'an object that is not a zod schema' : JSON.stringify(schema)}: expected a zod schema, e.g. \`z.object({ email: z.email() })\`.`,
    );
  }
  try {
    return toStoredSchema(schema, 'input');
  } catch (error) {
    return invalid(
      workflowId,
      `options.input cannot be stored as JSON Schema (${error instanceof Error ? error.message : String(error)}). Weft checks every trigger against the stored schema, also where the workflow's code is not loaded; use a schema of plain types, formats and bounds, and transform the input in the first step.`,
    );
  }
}

function serializeNode(s: CompiledStep): SerializedNode {
  const node: SerializedNode = {
    id: s.id,
    kind: s.kind,
    hash: s.hash,
    maxAttempts: s.retry.maxAttempts,
    onExhausted: s.onExhausted,
  };
  if (s.scope !== null) node.scope = s.scope;
  if (s.description !== undefined) node.description = s.description;
  if (s.timeoutMs !== undefined) node.timeoutMs = s.timeoutMs;
  if (s.concurrency !== undefined) node.concurrency = s.concurrency;
  if (s.control) node.control = describeControl(s.control);
  return node;
}

function describeControl(c: CompiledControl): Record<string, unknown> {
  switch (c.kind) {
    case 'forEach':
      return { items: c.items.toString() };
    case 'times':
      return { count: typeof c.count === 'number' ? c.count : c.count.toString() };
    case 'while':
      return { condition: c.condition.toString(), maxIterations: c.maxIterations };
    case 'parallel':
      return {
        items: c.items.toString(),
        concurrency: c.concurrency,
        onBranchFailure: c.onBranchFailure,
      };
    case 'sleep':
      return c.durationMs !== undefined
        ? { durationMs: c.durationMs }
        : { until: c.until?.toString() };
    case 'approval': {
      const out: Record<string, unknown> = {};
      if (c.schema) out.schema = c.schema;
      if (c.timeoutMs !== undefined) out.timeoutMs = c.timeoutMs;
      return out;
    }
    case 'subWorkflow':
      return c.input
        ? { workflow: c.workflow, input: c.input.toString() }
        : { workflow: c.workflow };
  }
}

function compileScope(
  wid: string,
  stepDefs: readonly StepDefinition[],
  owner: string | null,
  all: Map<string, CompiledStep>,
): CompiledScope {
  const where = owner === null ? '' : ` (in the body of \`${owner}\`)`;
  if (owner !== null && stepDefs.length === 0)
    invalid(
      wid,
      `the body of \`${owner}\` has no steps; add one with \`body: (b) => b.step(id, fn)\`.`,
      { stepId: owner },
    );
  const defs = new Map<string, StepDefinition>();
  for (const def of stepDefs) {
    if (!ID_PATTERN.test(def.id)) {
      invalid(
        wid,
        `step id ${JSON.stringify(def.id)} is invalid: use letters, digits, "_", "-" and "." (no brackets: \`step[i]\` names loop iterations).`,
        { stepId: def.id },
      );
    }
    if (defs.has(def.id) || all.has(def.id) || def.id === owner) {
      invalid(
        wid,
        `step \`${def.id}\` is defined twice${where}; step ids must be unique across the workflow, loop and parallel bodies included.`,
        { stepId: def.id },
      );
    }
    if (typeof def.run !== 'function')
      invalid(wid, `step \`${def.id}\` has no function; pass \`(input, ctx) => output\`.`, {
        stepId: def.id,
      });
    defs.set(def.id, def);
  }

  const steps = new Map<string, CompiledStep>();
  for (const def of stepDefs) {
    const stepWhere = `Workflow \`${wid}\` step \`${def.id}\``;
    const kind: StepKind = def.kind ?? 'step';
    const incoming: CompiledEdge[] = [];
    const seenParents = new Set<string>();
    for (const edge of def.after) {
      validateEdge(wid, def.id, edge, defs, owner, all);
      if (seenParents.has(edge.from)) {
        invalid(
          wid,
          `step \`${def.id}\` lists \`${edge.from}\` in \`after\` twice; one edge per pair of steps (use \`on: 'always'\` for both outcomes).`,
          {
            stepId: def.id,
            edge: `${edge.from}->${def.id}`,
          },
        );
      }
      seenParents.add(edge.from);
      const compiled: CompiledEdge = { from: edge.from, to: def.id, on: edge.on };
      if (edge.when) compiled.when = edge.when;
      if (edge.branch !== undefined) compiled.branch = edge.branch;
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
    const isControl = def.control !== undefined;
    const retry = isControl
      ? { maxAttempts: CONTROL_MAX_ATTEMPTS, minDelayMs: 0, maxDelayMs: 0, factor: 1, jitter: 0 }
      : resolveRetryPolicy(def.retry, stepWhere);
    const timeoutMs =
      def.timeout === undefined ? undefined : parseDuration(def.timeout, `${stepWhere} timeout`);
    if (timeoutMs !== undefined && timeoutMs < 1)
      invalid(wid, `step \`${def.id}\` has a timeout of 0; omit it for no timeout.`, {
        stepId: def.id,
      });
    if (
      def.concurrency !== undefined &&
      !(Number.isInteger(def.concurrency) && def.concurrency >= 1 && def.concurrency <= 100_000)
    ) {
      invalid(
        wid,
        `step \`${def.id}\` has concurrency = ${JSON.stringify(def.concurrency)}: expected a whole number from 1 to 100000.`,
        { stepId: def.id },
      );
    }
    const control = def.control ? compileControl(wid, def.id, def.control, all) : undefined;
    const config = JSON.stringify({
      kind,
      retry: isControl ? null : retry,
      timeoutMs: timeoutMs ?? null,
      onExhausted,
      concurrency: def.concurrency ?? null,
      after: incoming.map((e) => [
        e.from,
        e.on,
        e.when ? e.when.toString() : null,
        e.branch ?? null,
      ]),
      control: control ? controlFingerprint(control) : null,
    });
    const step: CompiledStep = {
      id: def.id,
      kind,
      scope: owner,
      run: def.run,
      control,
      parents: incoming.map((e) => e.from),
      successors: [],
      failureSuccessors: [],
      incoming,
      outgoing: [],
      retry,
      timeoutMs,
      onExhausted,
      concurrency: def.concurrency,
      description: def.description,
      hash: sha256(`${isControl ? '' : def.run.toString()}\u0001${config}`),
    };
    steps.set(def.id, step);
    all.set(def.id, step);
  }
  // Parent, successor and failure-successor lists: the one derivation the stored plan uses too.
  const links = linkEdges(
    steps.keys(),
    [...steps.values()].flatMap((s) => s.incoming),
  );
  for (const step of steps.values()) {
    const link = links.get(step.id)!;
    step.parents = link.parents;
    step.successors = link.successors;
    step.failureSuccessors = link.failureSuccessors;
    for (const edge of step.incoming) steps.get(edge.from)!.outgoing.push(edge);
  }
  const order = topologicalOrder(wid, steps);
  return { owner, steps, order };
}

function controlFingerprint(c: CompiledControl): unknown {
  const described = describeControl(c);
  return 'body' in c ? { ...described, body: c.body.order.map((s) => [s.id, s.hash]) } : described;
}

function compileControl(
  wid: string,
  id: string,
  spec: ControlSpec,
  all: Map<string, CompiledStep>,
): CompiledControl {
  const body = (b: unknown): CompiledScope => {
    const wf = b as AnyWorkflowDef | undefined;
    if (!wf || !Array.isArray(wf.steps)) {
      invalid(
        wid,
        `\`${id}\` needs a \`body\`: a function that adds the body's steps, e.g. \`body: (b) => b.step('each', (item) => …)\`.`,
        { stepId: id },
      );
    }
    return compileScope(wid, wf.steps, id, all);
  };
  const fn = (value: unknown, name: string): ((...args: never[]) => unknown) => {
    if (typeof value !== 'function')
      invalid(wid, `\`${id}\` needs \`${name}\` to be a function.`, { stepId: id });
    return value as (...args: never[]) => unknown;
  };
  switch (spec.kind) {
    case 'forEach':
      return {
        kind: 'forEach',
        items: fn(spec.items, 'items') as (input: unknown) => unknown,
        body: body(spec.body),
      };
    case 'times': {
      if (
        typeof spec.count === 'number' &&
        !(Number.isInteger(spec.count) && spec.count >= 0 && spec.count <= 100_000)
      ) {
        invalid(
          wid,
          `\`${id}\` has count = ${spec.count}: expected a whole number from 0 to 100000, or a function of the input.`,
          { stepId: id },
        );
      }
      if (typeof spec.count !== 'number') fn(spec.count, 'count');
      return { kind: 'times', count: spec.count, body: body(spec.body) };
    }
    case 'while':
      if (!(
        Number.isInteger(spec.maxIterations) &&
        spec.maxIterations >= 1 &&
        spec.maxIterations <= 100_000
      )) {
        invalid(
          wid,
          `\`${id}\` has maxIterations = ${JSON.stringify(spec.maxIterations)}: a \`while\` loop needs a bound, a whole number from 1 to 100000.`,
          { stepId: id },
        );
      }
      return {
        kind: 'while',
        condition: fn(spec.condition, 'condition') as (
          last: unknown,
          iteration: number,
          input: unknown,
        ) => unknown,
        maxIterations: spec.maxIterations,
        body: body(spec.body),
      };
    case 'parallel': {
      const concurrency = spec.concurrency ?? MAX_PARALLEL_BRANCHES;
      if (!(
        Number.isInteger(concurrency) &&
        concurrency >= 1 &&
        concurrency <= MAX_PARALLEL_BRANCHES
      )) {
        invalid(
          wid,
          `\`${id}\` has concurrency = ${JSON.stringify(spec.concurrency)}: expected a whole number from 1 to ${MAX_PARALLEL_BRANCHES}.`,
          { stepId: id },
        );
      }
      const policy = spec.onBranchFailure ?? 'fail_fast';
      if (policy !== 'fail_fast' && policy !== 'collect') {
        invalid(
          wid,
          `\`${id}\` has onBranchFailure = ${JSON.stringify(policy)}: expected "fail_fast" or "collect".`,
          { stepId: id },
        );
      }
      return {
        kind: 'parallel',
        items: fn(spec.items, 'items') as (input: unknown) => unknown,
        concurrency,
        onBranchFailure: policy,
        body: body(spec.body),
      };
    }
    case 'sleep': {
      if ((spec.duration === undefined) === (spec.until === undefined)) {
        invalid(
          wid,
          `sleep \`${id}\` needs exactly one of \`duration\` (e.g. "10m") or \`until\` (a function returning a time).`,
          { stepId: id },
        );
      }
      if (spec.duration !== undefined)
        return {
          kind: 'sleep',
          durationMs: parseDuration(spec.duration, `Workflow \`${wid}\` sleep \`${id}\` duration`),
        };
      return { kind: 'sleep', until: fn(spec.until, 'until') as (input: unknown) => unknown };
    }
    case 'approval': {
      const out: CompiledControl = { kind: 'approval' };
      if (spec.timeout !== undefined)
        out.timeoutMs = parseDuration(
          spec.timeout,
          `Workflow \`${wid}\` approval \`${id}\` timeout`,
        );
      if (spec.schema !== undefined) out.schema = toJsonSchema(wid, id, spec.schema);
      return out;
    }
    case 'subWorkflow': {
      if (typeof spec.workflow !== 'string' || !ID_PATTERN.test(spec.workflow)) {
        invalid(
          wid,
          `sub-workflow \`${id}\` names workflow ${JSON.stringify(spec.workflow)}: pass a workflow id or definition.`,
          { stepId: id },
        );
      }
      const out: CompiledControl = { kind: 'subWorkflow', workflow: spec.workflow };
      if (spec.input !== undefined)
        out.input = fn(spec.input, 'input') as (input: unknown) => unknown;
      return out;
    }
  }
}

/** A zod schema becomes JSON Schema (stored with the version, checked by the API); a JSON Schema is checked as is. */
function toJsonSchema(wid: string, id: string, schema: unknown): JsonSchemaObject {
  try {
    return toStoredSchema(schema, 'output');
  } catch (error) {
    invalid(
      wid,
      `approval \`${id}\` has a schema that cannot be used: ${(error as Error).message}. Pass a zod schema or a JSON Schema object.`,
      { stepId: id },
    );
  }
}

function validateEdge(
  wid: string,
  stepId: string,
  edge: EdgeDefinition,
  defs: Map<string, StepDefinition>,
  owner: string | null,
  all: Map<string, CompiledStep>,
): void {
  const name = `${String(edge.from)} -> ${stepId}`;
  if (typeof edge.from !== 'string' || !defs.has(edge.from)) {
    if (typeof edge.from === 'string' && (all.has(edge.from) || edge.from === owner)) {
      invalid(
        wid,
        `step \`${stepId}\` runs after \`${edge.from}\`, which is in another level of the graph (edges may not cross into or out of a loop or parallel body).`,
        { stepId, edge: name },
      );
    }
    const known = [...defs.keys()].filter((k) => k !== stepId);
    invalid(
      wid,
      `step \`${stepId}\` runs after \`${String(edge.from)}\`, which is not a step of this workflow (a dangling edge). Known steps: ${known.map((k) => `\`${k}\``).join(', ') || 'none'}.`,
      {
        stepId,
        edge: name,
      },
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
      `edge \`${name}\` has on = ${JSON.stringify(edge.on)}: expected "success", "failure", "always" or "timeout".`,
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
  const parentKind = defs.get(edge.from)!.kind ?? 'step';
  if (edge.branch !== undefined) {
    if (typeof edge.branch !== 'string' || edge.branch.length === 0)
      invalid(wid, `edge \`${name}\` has an empty branch name.`, { stepId, edge: name });
    if (parentKind !== 'router')
      invalid(
        wid,
        `edge \`${name}\` names branch "${edge.branch}", but \`${edge.from}\` is not a router; declare it with \`.router(...)\`.`,
        { stepId, edge: name },
      );
    if (edge.when !== undefined || edge.on !== 'success')
      invalid(wid, `edge \`${name}\` combines a branch with another condition; use one.`, {
        stepId,
        edge: name,
      });
  }
  if (edge.on === 'timeout' && parentKind !== 'approval') {
    invalid(
      wid,
      `edge \`${name}\` is a timeout edge, but only approvals time out (\`${edge.from}\` is a ${parentKind}).`,
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

/** The steps of a level that no other step of that level runs after. */
export function isLoopKind(kind: StepKind): boolean {
  return LOOPS.includes(kind);
}
