/**
 * Workflows as data, for the fault and fuzz suites: one `WorkflowSpec` builds a real Weft workflow
 * (`buildWorkflow`, whose step code reports each start to a hook — the side-effect ledger) and is
 * also run by a fault-free reference interpreter written here in plain TypeScript (`interpret`).
 * A run under faults must end exactly where the interpreter ends: same status, same final state,
 * same run state.
 *
 * Values: every code step returns `{ v, by }`, where `v` is a deterministic function of its input
 * and `by` names the attempt that produced it (run, step key, attempt, pid). `by` lets the checker
 * tie a committed output to its attempt; the comparison with the interpreter strips it.
 *
 * The interpreter follows docs/semantics.md ("Graph"): an edge is live when its parent succeeded
 * and the edge is `success` (its `when` holds, or the router chose its branch) or `always`, or when
 * its parent failed and the edge is `failure` or `always`; a step runs once every parent is
 * resolved if at least one live edge reached it, else it is pruned (and prunes onward); a join's
 * input is `{ [parentId]: output | { error } }` over the live parents; a step that fails with no
 * live edge fails the run. Routers and sleeps pass their input on; a parallel or forEach outputs
 * the array of its one-step body's outputs. Final state: the succeeded top-level steps none of
 * whose successors ran — one: its output; several: `{ [stepId]: output }`.
 */
import { defineWorkflow, TerminalError, type StepContext } from '../../src/index.js';
import type { AnyWorkflow } from '../../src/engine/registry.js';

export interface EdgeSpec {
  from: string;
  on?: 'success' | 'failure' | 'always';
  /** A `when` predicate: numOf(output) % mod === rem. */
  when?: [mod: number, rem: number];
  /** From a router: the branch name. */
  branch?: string;
}

interface NodeBase {
  id: string;
  after: EdgeSpec[];
}
export interface CodeNode extends NodeBase {
  kind: 'step';
  mul: number;
  add: number;
  /** Fails (TerminalError) when numOf(input) % failMod === 0; 0: never. */
  failMod: number;
  maxAttempts: number;
}
export interface RouterNode extends NodeBase {
  kind: 'router';
  branches: string[];
}
export interface FanNode extends NodeBase {
  kind: 'parallel' | 'forEach';
  count: number;
  mul: number;
  add: number;
  maxAttempts: number;
}
export interface SleepNode extends NodeBase {
  kind: 'sleep';
  ms: number;
}
export interface ApprovalNode extends NodeBase {
  kind: 'approval';
}
export type NodeSpec = CodeNode | RouterNode | FanNode | SleepNode | ApprovalNode;

export interface WorkflowSpec {
  id: string;
  nodes: NodeSpec[];
}

/** What step code reports when it starts (the ledger append); awaited before the code goes on. */
export type StartHook = (ctx: StepContext) => Promise<void>;

const MOD = 9973;

/** A number from any value a step can receive; `by` is ignored, an `{ error }` counts 1000. */
export function numOf(value: unknown): number {
  if (typeof value === 'number') return value;
  if (Array.isArray(value))
    return value.reduce<number>((s, x, i) => (s + numOf(x) * (i + 1)) % MOD, 0);
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if (typeof o.v === 'number') return o.v;
    if ('error' in o) return 1000;
    return Object.keys(o)
      .sort()
      .reduce((s, k, i) => (s + numOf(o[k]) * (i + 1)) % MOD, 0);
  }
  return 0;
}

/** A copy without the `by` fields (who produced an output is not part of the result). */
export function stripBy(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripBy);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([k]) => k !== 'by')
        .map(([k, v]) => [k, stripBy(v)]),
    );
  }
  return value;
}

/**
 * What a result is compared on: no `by` fields, an `{ error }` input reduced to its presence (the
 * message and stack are the engine's, not the result's), object keys in sorted order.
 */
export function comparable(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(comparable);
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if ('error' in o && Object.keys(o).length === 1) return { error: '…' };
    return Object.fromEntries(
      Object.keys(o)
        .filter((k) => k !== 'by')
        .sort()
        .map((k) => [k, comparable(o[k])]),
    );
  }
  return value;
}

const compute = (x: number, mul: number, add: number) => (((x * mul + add) % MOD) + MOD) % MOD;
const fails = (x: number, failMod: number) => failMod > 0 && x % failMod === 0;
const fanItems = (x: number, count: number) => Array.from({ length: count }, (_, i) => x + i);

function toAfter(edges: EdgeSpec[]): unknown {
  const refs = edges.map((e) => {
    if (e.branch !== undefined) return { step: e.from, branch: e.branch };
    if (e.when) {
      const [mod, rem] = e.when;
      return { step: e.from, when: (out: unknown) => numOf(out) % mod === rem };
    }
    if (e.on && e.on !== 'success') return { step: e.from, on: e.on };
    return e.from;
  });
  if (refs.length === 0) return undefined;
  return refs.length === 1 ? refs[0] : refs;
}

/** The Weft workflow a spec describes; step code calls `onStart` first (the ledger). */
export function buildWorkflow(spec: WorkflowSpec, onStart: StartHook): AnyWorkflow {
  // The DSL's types follow each step's parents; a spec is data, so build untyped.
  let wf = defineWorkflow<unknown>(spec.id) as unknown as {
    step: (
      id: string,
      options: object,
      run: (input: unknown, ctx: StepContext) => unknown,
    ) => typeof wf;
    router: (id: string, options: object, run: (input: unknown) => unknown) => typeof wf;
    parallel: (id: string, options: object) => typeof wf;
    forEach: (id: string, options: object) => typeof wf;
    sleep: (id: string, options: object) => typeof wf;
    approval: (id: string, options: object) => typeof wf;
  };
  const codeStep =
    (mul: number, add: number, failMod: number) => async (input: unknown, ctx: StepContext) => {
      await onStart(ctx);
      const x = numOf(input);
      if (fails(x, failMod)) throw new TerminalError(`input ${x} is divisible by ${failMod}`);
      const v = compute(x, mul, add);
      ctx.state[ctx.stepKey] = v;
      return {
        v,
        by: { run: ctx.runId, step: ctx.stepKey, attempt: ctx.attempt, pid: process.pid },
      };
    };
  for (const node of spec.nodes) {
    const after = toAfter(node.after);
    const base = after === undefined ? {} : { after };
    switch (node.kind) {
      case 'step':
        wf = wf.step(
          node.id,
          { ...base, retry: { maxAttempts: node.maxAttempts, minDelay: 10, maxDelay: 100 } },
          codeStep(node.mul, node.add, node.failMod),
        );
        break;
      case 'router':
        wf = wf.router(
          node.id,
          base,
          (input) => node.branches[numOf(input) % node.branches.length],
        );
        break;
      case 'parallel':
      case 'forEach': {
        const retry = { maxAttempts: node.maxAttempts, minDelay: 10, maxDelay: 100 };
        const body = (b: { step: typeof wf.step }) =>
          b.step(`${node.id}_b`, { retry }, codeStep(node.mul, node.add, 0));
        wf = wf[node.kind](node.id, {
          ...base,
          items: (input: unknown) => fanItems(numOf(input), node.count),
          body,
        });
        break;
      }
      case 'sleep':
        wf = wf.sleep(node.id, { ...base, duration: node.ms });
        break;
      case 'approval':
        wf = wf.approval(node.id, base);
        break;
    }
  }
  return wf as unknown as AnyWorkflow;
}

export interface ReferenceResult {
  status: 'succeeded' | 'failed';
  /** Only meaningful when succeeded (a failed run's other branches stop at a racy point). */
  final: unknown;
  state: Record<string, unknown>;
}

type Resolved =
  { status: 'succeeded'; output: unknown } | { status: 'failed' } | { status: 'pruned' };

/**
 * The fault-free run of a spec: `approvals` gives each approval node's payload. Pure; no Weft code.
 */
export function interpret(
  spec: WorkflowSpec,
  input: unknown,
  approvals: Record<string, unknown> = {},
): ReferenceResult {
  const done = new Map<string, Resolved>();
  const state: Record<string, unknown> = {};
  const successors = new Map<string, string[]>();
  for (const n of spec.nodes)
    for (const e of n.after) successors.set(e.from, [...(successors.get(e.from) ?? []), n.id]);
  const byId = new Map(spec.nodes.map((n) => [n.id, n]));

  const edgeLive = (e: EdgeSpec): boolean => {
    const parent = done.get(e.from)!;
    const on = e.on ?? 'success';
    if (parent.status === 'pruned') return false;
    if (on === 'always') return true;
    if (parent.status === 'failed') return on === 'failure';
    if (on === 'failure') return false;
    const from = byId.get(e.from)!;
    if (e.branch !== undefined) {
      const router = from as RouterNode;
      return router.branches[numOf(parent.output) % router.branches.length] === e.branch;
    }
    if (e.when) return numOf(parent.output) % e.when[0] === e.when[1];
    return true;
  };

  // Definition order is a topological order (a step names only earlier steps as parents).
  for (const node of spec.nodes) {
    let nodeInput: unknown;
    if (node.after.length === 0) nodeInput = input;
    else {
      const live = node.after.filter(edgeLive);
      if (live.length === 0) {
        done.set(node.id, { status: 'pruned' });
        continue;
      }
      const valueOf = (from: string) => {
        const p = done.get(from)!;
        return p.status === 'succeeded' ? p.output : { error: '…' };
      };
      if (node.after.length === 1) nodeInput = valueOf(node.after[0]!.from);
      else nodeInput = Object.fromEntries(live.map((e) => [e.from, valueOf(e.from)]));
    }
    const x = numOf(nodeInput);
    switch (node.kind) {
      case 'step':
        if (fails(x, node.failMod)) {
          done.set(node.id, { status: 'failed' });
          const out = (successors.get(node.id) ?? []).some((s) =>
            byId
              .get(s)!
              .after.some((e) => e.from === node.id && (e.on === 'failure' || e.on === 'always')),
          );
          if (!out) return { status: 'failed', final: undefined, state };
        } else {
          const v = compute(x, node.mul, node.add);
          state[node.id] = v;
          done.set(node.id, { status: 'succeeded', output: { v } });
        }
        break;
      case 'router':
      case 'sleep':
        done.set(node.id, { status: 'succeeded', output: nodeInput });
        break;
      case 'approval':
        done.set(node.id, { status: 'succeeded', output: approvals[node.id] ?? null });
        break;
      case 'parallel':
      case 'forEach': {
        const outputs = fanItems(x, node.count).map((item, i) => {
          const v = compute(item, node.mul, node.add);
          state[`${node.id}_b[${i}]`] = v;
          return { v };
        });
        done.set(node.id, { status: 'succeeded', output: outputs });
        break;
      }
    }
  }
  const leaves = spec.nodes.filter(
    (n) =>
      done.get(n.id)!.status === 'succeeded' &&
      !(successors.get(n.id) ?? []).some((s) => {
        const st = done.get(s)!.status;
        return st === 'succeeded' || st === 'failed';
      }),
  );
  const outputOf = (id: string) => (done.get(id) as { output: unknown }).output;
  const final =
    leaves.length === 0
      ? undefined
      : leaves.length === 1
        ? outputOf(leaves[0]!.id)
        : Object.fromEntries(leaves.map((n) => [n.id, outputOf(n.id)]));
  return { status: 'succeeded', final, state };
}

/**
 * The chaos workflow: 8 code step runs and 4 control nodes — a fan-out to a join, a parallel of
 * three branches, a sleep, an approval (completed by the test over the API) and a final join.
 */
export const CHAOS_MIX: WorkflowSpec = {
  id: 'chaos-mix',
  nodes: [
    { id: 'a', kind: 'step', after: [], mul: 1, add: 1, failMod: 0, maxAttempts: 25 },
    { id: 'b', kind: 'step', after: [{ from: 'a' }], mul: 2, add: 0, failMod: 0, maxAttempts: 25 },
    { id: 'c', kind: 'step', after: [{ from: 'a' }], mul: 1, add: 3, failMod: 0, maxAttempts: 25 },
    {
      id: 'j',
      kind: 'step',
      after: [{ from: 'b' }, { from: 'c' }],
      mul: 1,
      add: 0,
      failMod: 0,
      maxAttempts: 25,
    },
    {
      id: 'p',
      kind: 'parallel',
      after: [{ from: 'j' }],
      count: 3,
      mul: 7,
      add: 1,
      maxAttempts: 25,
    },
    { id: 's', kind: 'sleep', after: [{ from: 'j' }], ms: 300 },
    { id: 'ap', kind: 'approval', after: [{ from: 's' }] },
    {
      id: 'f',
      kind: 'step',
      after: [{ from: 'p' }, { from: 'ap' }],
      mul: 1,
      add: 0,
      failMod: 0,
      maxAttempts: 25,
    },
  ],
};

/** One step: the 10,000-queued-runs scenario. */
export const CHAOS_ONE: WorkflowSpec = {
  id: 'chaos-one',
  nodes: [{ id: 'only', kind: 'step', after: [], mul: 3, add: 1, failMod: 0, maxAttempts: 25 }],
};

/** A chain of code steps (the restart, cut, partition and pause scenarios). */
export const CHAOS_CHAIN: WorkflowSpec = {
  id: 'chaos-chain',
  nodes: Array.from({ length: 6 }, (_, i) => ({
    id: `s${i}`,
    kind: 'step' as const,
    after: i === 0 ? [] : [{ from: `s${i - 1}` }],
    mul: i + 2,
    add: i,
    failMod: 0,
    maxAttempts: 25,
  })),
};

export const CHAOS_SPECS = [CHAOS_MIX, CHAOS_ONE, CHAOS_CHAIN];
