/**
 * Unit tests of rerun-planner.ts, beside it (pure: no database). Kept whole (about 660 lines): the
 * cases share the graph builders and the seeded random graphs below.
 */
import { describe, expect, it } from 'vitest';
import { WeftError } from './errors.js';
import type { SerializedGraph, SerializedNode } from './graph.js';
import {
  assertOutputsAvailable,
  parseStepTarget,
  planRerun,
  type RerunPlan,
  type SourceIterations,
  type SourceStepRun,
} from './rerun-planner.js';

/** Small seeded PRNG (mulberry32): the same seed always builds the same graphs. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function node(id: string, hash: string, extra: Partial<SerializedNode> = {}): SerializedNode {
  return { id, kind: 'step', hash, maxAttempts: 1, onExhausted: 'fail', ...extra };
}

function graph(nodes: SerializedNode[], edges: Array<[string, string]>): SerializedGraph {
  return {
    maxPayloadBytes: 1 << 20,
    nodes,
    edges: edges.map(([from, to]) => ({ from, to, on: 'success' as const })),
  };
}

function chain(n: number): SerializedGraph {
  const nodes = Array.from({ length: n }, (_, i) => node(`s${i}`, `h${i}`));
  const edges = Array.from({ length: n - 1 }, (_, i) => [`s${i}`, `s${i + 1}`] as [string, string]);
  return graph(nodes, edges);
}

function succeededRun(g: SerializedGraph): SourceStepRun[] {
  return g.nodes
    .filter((n) => n.scope === undefined)
    .map((n) => ({
      stepId: n.id,
      stepRunId: `sr_${n.id}`,
      status: 'succeeded' as const,
      outputDataclipId: `dc_${n.id}`,
      outputWiped: false,
      inputHash: `in_${n.id}`,
      liveFrom: g.edges.filter((e) => e.to === n.id).map((e) => e.from),
    }));
}

const INPUT = { hash: 'in_s0', available: true };
const fate = (plan: RerunPlan, id: string) => plan.nodes.find((n) => n.stepId === id);

describe('planRerun', () => {
  it('reruns the target and everything after it; reuses the rest by reference', () => {
    const g = chain(5);
    const plan = planRerun({
      sourceGraph: g,
      targetGraph: g,
      sourceSteps: succeededRun(g),
      fromStep: 's2',
      runInput: INPUT,
    });
    expect(plan.nodes.map((n) => [n.stepId, n.fate, n.reason])).toEqual([
      ['s0', 'reuse', null],
      ['s1', 'reuse', null],
      ['s2', 'rerun', 'target'],
      ['s3', 'rerun', 'upstream_changed'],
      ['s4', 'rerun', 'upstream_changed'],
    ]);
    expect(fate(plan, 's1')).toMatchObject({ reusedFrom: 'sr_s1', outputDataclipId: 'dc_s1' });
    expect(plan.counts).toEqual({ rerun: 3, reuse: 2, skip: 0 });
  });

  it('names each reason: changed, new, failed, missing, input', () => {
    const source = graph(
      [node('a', 'ha'), node('b', 'hb'), node('c', 'hc'), node('d', 'hd'), node('z', 'hz')],
      [],
    );
    const target = graph(
      [
        node('a', 'ha'),
        node('b', 'hb2'),
        node('c', 'hc'),
        node('d', 'hd'),
        node('z', 'hz'),
        node('n', 'hn'),
      ],
      [],
    );
    const steps = succeededRun(source);
    steps[2]!.status = 'failed';
    steps[3]!.status = 'canceled';
    steps[0]!.inputHash = 'other';
    const plan = planRerun({
      sourceGraph: source,
      targetGraph: target,
      sourceSteps: steps,
      fromStep: 'z',
      runInput: { hash: 'in_z', available: true },
    });
    expect(Object.fromEntries(plan.nodes.map((n) => [n.stepId, n.reason]))).toEqual({
      a: 'input_changed',
      b: 'definition_changed',
      c: 'previous_failure',
      d: 'missing_output',
      z: 'target',
      n: 'new_step',
    });
  });

  it('a join with one dirty parent reruns that parent and the join only', () => {
    const source = graph(
      [node('a', 'ha'), node('b', 'hb'), node('c', 'hc'), node('j', 'hj')],
      [
        ['a', 'b'],
        ['a', 'c'],
        ['b', 'j'],
        ['c', 'j'],
      ],
    );
    const target = {
      ...source,
      nodes: source.nodes.map((n) => (n.id === 'c' ? node('c', 'hc2') : n)),
    };
    const plan = planRerun({
      sourceGraph: source,
      targetGraph: target,
      sourceSteps: succeededRun(source),
      fromStep: 'j',
      runInput: { hash: 'in_a', available: true },
    });
    expect(plan.nodes.map((n) => [n.stepId, n.fate, n.reason])).toEqual([
      ['a', 'reuse', null],
      ['b', 'reuse', null],
      ['c', 'rerun', 'definition_changed'],
      ['j', 'rerun', 'target'],
    ]);
  });

  it('untilStep skips what does not lead to it', () => {
    const g = chain(5);
    const plan = planRerun({
      sourceGraph: g,
      targetGraph: g,
      sourceSteps: succeededRun(g),
      fromStep: 's1',
      untilStep: 's2',
      runInput: INPUT,
    });
    expect(plan.nodes.map((n) => n.fate)).toEqual(['reuse', 'rerun', 'rerun', 'skip', 'skip']);
    expect(() =>
      planRerun({
        sourceGraph: g,
        targetGraph: g,
        sourceSteps: succeededRun(g),
        fromStep: 's3',
        untilStep: 's1',
        runInput: INPUT,
      }),
    ).toThrow(/does not run after/);
  });

  it('a body step targets its loop as one unit and says so', () => {
    const g = graph(
      [
        node('a', 'ha'),
        node('loop', 'hl', { kind: 'forEach' }),
        node('each', 'he', { scope: 'loop' }),
        node('z', 'hz'),
      ],
      [
        ['a', 'loop'],
        ['loop', 'z'],
      ],
    );
    const plan = planRerun({
      sourceGraph: g,
      targetGraph: g,
      sourceSteps: succeededRun(g),
      fromStep: 'each',
      runInput: { hash: 'in_a', available: true },
    });
    expect(plan.targetUnit).toBe('loop');
    expect(plan.nodes.map((n) => [n.stepId, n.fate, n.reason])).toEqual([
      ['a', 'reuse', null],
      ['loop', 'rerun', 'target'],
      ['each', 'rerun', 'target'],
      ['z', 'rerun', 'upstream_changed'],
    ]);
    expect(plan.notes.join(' ')).toMatch(/one unit/);
  });

  it('keeps a pruned step pruned when nothing upstream changed', () => {
    const g = chain(3);
    const steps = succeededRun(g);
    steps[1]!.status = 'pruned';
    steps[1]!.outputDataclipId = null;
    steps[2]!.status = 'pruned';
    steps[2]!.outputDataclipId = null;
    const plan = planRerun({
      sourceGraph: g,
      targetGraph: g,
      sourceSteps: steps,
      fromStep: 's2',
      runInput: INPUT,
    });
    expect(fate(plan, 's1')).toMatchObject({ fate: 'reuse', outputDataclipId: null });
    expect(fate(plan, 's2')).toMatchObject({ fate: 'rerun', reason: 'target' });
  });

  it('422 unknown_step names the step; 409 dataclips_wiped names the missing output', () => {
    const g = chain(3);
    try {
      planRerun({
        sourceGraph: g,
        targetGraph: g,
        sourceSteps: succeededRun(g),
        fromStep: 'nope',
        runInput: INPUT,
      });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(WeftError);
      expect((error as WeftError).code).toBe('unknown_step');
      expect((error as WeftError).message).toContain('`nope`');
    }
    const steps = succeededRun(g).map((s) => ({ ...s, outputWiped: true }));
    const plan = planRerun({
      sourceGraph: g,
      targetGraph: g,
      sourceSteps: steps,
      fromStep: 's2',
      runInput: INPUT,
    });
    expect(() => assertOutputsAvailable(plan, g, steps, INPUT)).toThrow(
      /output of step `s1`.*does not save dataclips/,
    );
    const fromRoot = planRerun({
      sourceGraph: g,
      targetGraph: g,
      sourceSteps: steps,
      fromStep: 's0',
      runInput: INPUT,
    });
    expect(() =>
      assertOutputsAvailable(fromRoot, g, steps, { hash: null, available: false }),
    ).toThrow(/source run’s input/);
  });
});

/**
 * Property tests over random DAGs. Step functions are deterministic: a node's output is a hash of
 * its id, its code version and its parents' outputs. A source run executes version A (some nodes
 * flaky: they failed there); the target version B changes some nodes' code. Replaying the plan —
 * reused nodes take the source's outputs, rerun nodes compute — must give exactly the outputs of a
 * full run of B.
 */
describe('planRerun properties (random DAGs)', () => {
  interface Sim {
    ids: string[];
    parents: Map<string, string[]>;
  }

  function randomDag(r: () => number, n: number): Sim {
    const ids = Array.from({ length: n }, (_, i) => `n${i}`);
    const parents = new Map<string, string[]>();
    for (let j = 0; j < n; j++) {
      const ps: string[] = [];
      for (let i = Math.max(0, j - 6); i < j; i++) if (r() < 0.35) ps.push(ids[i]!);
      parents.set(ids[j]!, ps);
    }
    return { ids, parents };
  }

  function toGraph(sim: Sim, versions: Map<string, number>): SerializedGraph {
    const edges: Array<[string, string]> = [];
    for (const id of sim.ids) for (const p of sim.parents.get(id)!) edges.push([p, id]);
    return graph(
      sim.ids.map((id) => node(id, `${id}@${versions.get(id)}`)),
      edges,
    );
  }

  const compute = (id: string, version: number, inputs: string[]): string =>
    `${id}v${version}(${inputs.join(',')})`.length.toString(36) +
    ':' +
    simpleHash(`${id}|${version}|${inputs.join('|')}`);

  function simpleHash(s: string): string {
    let h = 2166136261;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
    return (h >>> 0).toString(16);
  }

  /** A full run: outputs in id order (ids are topological); a failing node stops its descendants. */
  function fullRun(sim: Sim, versions: Map<string, number>, failing: Set<string>) {
    const out = new Map<string, string>();
    const status = new Map<string, SourceStepRun['status']>();
    for (const id of sim.ids) {
      const ps = sim.parents.get(id)!;
      if (ps.some((p) => status.get(p) !== 'succeeded')) status.set(id, 'canceled');
      else if (failing.has(id)) status.set(id, 'failed');
      else {
        status.set(id, 'succeeded');
        out.set(
          id,
          compute(
            id,
            versions.get(id)!,
            ps.map((p) => out.get(p)!),
          ),
        );
      }
    }
    return { out, status };
  }

  function ancestors(sim: Sim, id: string): Set<string> {
    const seen = new Set<string>();
    const stack = [...sim.parents.get(id)!];
    while (stack.length > 0) {
      const p = stack.pop()!;
      if (seen.has(p)) continue;
      seen.add(p);
      stack.push(...sim.parents.get(p)!);
    }
    return seen;
  }

  it('a rerun ends in the state of a full run, and no reused node has a dirty ancestor', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const r = rng(seed);
      const sim = randomDag(r, 3 + Math.floor(r() * 40));
      const a = new Map(sim.ids.map((id) => [id, 1]));
      const b = new Map(a);
      for (const id of sim.ids) if (r() < 0.1) b.set(id, 2);
      const flaky = new Set(sim.ids.filter(() => r() < 0.05));
      const source = fullRun(sim, a, flaky);
      const sourceSteps: SourceStepRun[] = sim.ids.map((id) => ({
        stepId: id,
        stepRunId: `sr_${id}`,
        status: source.status.get(id)!,
        outputDataclipId: source.out.has(id) ? `dc_${id}` : null,
        outputWiped: false,
        inputHash: sim.parents.get(id)!.length === 0 ? 'input' : `h_${id}`,
        liveFrom: sim.parents.get(id)!,
      }));
      const fromStep = sim.ids[Math.floor(r() * sim.ids.length)]!;
      const plan = planRerun({
        sourceGraph: toGraph(sim, a),
        targetGraph: toGraph(sim, b),
        sourceSteps,
        fromStep,
        runInput: { hash: 'input', available: true },
      });

      // Replay the plan.
      const byId = new Map(plan.nodes.map((n) => [n.stepId, n]));
      const replay = new Map<string, string>();
      for (const id of sim.ids) {
        const planned = byId.get(id)!;
        if (planned.fate === 'reuse') {
          expect(planned.outputDataclipId, `seed ${seed} ${id}`).toBe(`dc_${id}`);
          replay.set(id, source.out.get(id)!);
        } else {
          expect(planned.fate).toBe('rerun');
          replay.set(
            id,
            compute(
              id,
              b.get(id)!,
              sim.parents.get(id)!.map((p) => replay.get(p)!),
            ),
          );
        }
      }
      const expected = fullRun(sim, b, new Set()).out;
      expect(replay, `seed ${seed}`).toEqual(expected);

      // Dirty, computed independently: changed or not succeeded in the source, and descendants.
      const dirty = new Set(
        sim.ids.filter((id) => a.get(id) !== b.get(id) || source.status.get(id) !== 'succeeded'),
      );
      for (const planned of plan.nodes) {
        if (planned.fate !== 'reuse') continue;
        expect(dirty.has(planned.stepId)).toBe(false);
        for (const anc of ancestors(sim, planned.stepId)) expect(dirty.has(anc)).toBe(false);
        expect(ancestors(sim, planned.stepId).has(fromStep)).toBe(false);
      }
    }
  });

  it('with untilStep, the until step ends as in a full run and nothing after it runs', () => {
    for (let seed = 1000; seed < 1200; seed++) {
      const r = rng(seed);
      const sim = randomDag(r, 3 + Math.floor(r() * 30));
      const a = new Map(sim.ids.map((id) => [id, 1]));
      const b = new Map(a);
      for (const id of sim.ids) if (r() < 0.1) b.set(id, 2);
      const source = fullRun(sim, a, new Set());
      const fromIndex = Math.floor(r() * sim.ids.length);
      const fromStep = sim.ids[fromIndex]!;
      const descendants = sim.ids.filter(
        (id) => id === fromStep || ancestors(sim, id).has(fromStep),
      );
      const untilStep = descendants[Math.floor(r() * descendants.length)]!;
      const plan = planRerun({
        sourceGraph: toGraph(sim, a),
        targetGraph: toGraph(sim, b),
        sourceSteps: sim.ids.map((id) => ({
          stepId: id,
          stepRunId: `sr_${id}`,
          status: 'succeeded',
          outputDataclipId: `dc_${id}`,
          outputWiped: false,
          inputHash: sim.parents.get(id)!.length === 0 ? 'input' : `h_${id}`,
          liveFrom: sim.parents.get(id)!,
        })),
        fromStep,
        untilStep,
        runInput: { hash: 'input', available: true },
      });
      const byId = new Map(plan.nodes.map((n) => [n.stepId, n]));
      const replay = new Map<string, string>();
      for (const id of sim.ids) {
        const planned = byId.get(id)!;
        if (planned.fate === 'reuse') replay.set(id, source.out.get(id)!);
        else if (planned.fate === 'rerun') {
          const inputs = sim.parents.get(id)!.map((p) => replay.get(p));
          expect(
            inputs.every((x) => x !== undefined),
            `seed ${seed}: ${id} lacks an input`,
          ).toBe(true);
          replay.set(id, compute(id, b.get(id)!, inputs as string[]));
        } else {
          expect(ancestors(sim, untilStep).has(id) || id === untilStep).toBe(false);
        }
      }
      expect(replay.get(untilStep)).toBe(fullRun(sim, b, new Set()).out.get(untilStep));
    }
  });

  it('rerunning the last step of a chain plans exactly one rerun node', () => {
    for (const n of [1, 2, 10, 1000]) {
      const g = chain(n);
      const plan = planRerun({
        sourceGraph: g,
        targetGraph: g,
        sourceSteps: succeededRun(g),
        fromStep: `s${n - 1}`,
        runInput: INPUT,
      });
      expect(plan.counts).toEqual({ rerun: 1, reuse: n - 1, skip: 0 });
    }
  });
});

describe('planRerun from one iteration or branch (`s[k]`)', () => {
  const loopGraph = (kind: 'forEach' | 'parallel') =>
    graph(
      [
        node('a', 'ha'),
        node('loop', 'hl', { kind }),
        node('each', 'he', { scope: 'loop' }),
        node('z', 'hz'),
      ],
      [
        ['a', 'loop'],
        ['loop', 'z'],
      ],
    );
  const plan = (
    g: SerializedGraph,
    fromStep: string,
    sourceIterations?: SourceIterations,
    steps = succeededRun(g),
  ) =>
    planRerun({
      sourceGraph: g,
      targetGraph: g,
      sourceSteps: steps,
      fromStep,
      runInput: { hash: 'in_a', available: true },
      sourceIterations,
    });
  const codeOf = (fn: () => unknown): [string, string] => {
    try {
      fn();
    } catch (error) {
      expect(error).toBeInstanceOf(WeftError);
      return [(error as WeftError).code, (error as WeftError).message];
    }
    return expect.unreachable() as never;
  };

  it('parses step run keys and refuses malformed ones with the expected form', () => {
    expect(parseStepTarget('fromStep', 'send')).toEqual({ stepId: 'send', indices: [] });
    expect(parseStepTarget('fromStep', 'send[2][0]')).toEqual({ stepId: 'send', indices: [2, 0] });
    for (const bad of ['s[x]', 's[', 's[-1]', 's[01]', 's[1]x', '[1]', 's[]']) {
      const [code, message] = codeOf(() => parseStepTarget('fromStep', bad));
      expect(code).toBe('unknown_step');
      expect(message).toContain('send[3]');
    }
  });

  it('a loop restarts from iteration k and keeps the iterations before it', () => {
    const g = loopGraph('forEach');
    const p = plan(g, 'each[2]', { count: 4, reusable: [0, 1, 2, 3] });
    expect(p.iterations).toEqual({
      owner: 'loop',
      kind: 'loop',
      target: 2,
      sourceCount: 4,
      reuse: [0, 1],
      rerun: [2, 3],
      within: null,
    });
    expect(p.nodes.map((n) => [n.stepId, n.fate, n.reason])).toEqual([
      ['a', 'reuse', null],
      ['loop', 'rerun', 'target'],
      ['each', 'rerun', 'target'],
      ['z', 'rerun', 'upstream_changed'],
    ]);
    expect(fate(p, 'each')!.detail).toMatch(/iterations 0, 1 reused, from iteration 2 on rerun/);
    // `loop[2]` names the same iteration from the owner itself
    expect(plan(g, 'loop[2]', { count: 4, reusable: [0, 1, 2, 3] }).iterations?.reuse).toEqual([
      0, 1,
    ]);
  });

  it('inside the targeted iteration, the body steps before the target are kept', () => {
    const g = graph(
      [
        node('a', 'ha'),
        node('loop', 'hl', { kind: 'parallel' }),
        node('fetch', 'hf', { scope: 'loop' }),
        node('save', 'hs', { scope: 'loop' }),
        node('log', 'hg', { scope: 'loop' }),
        node('side', 'hx', { scope: 'loop' }),
      ],
      [
        ['a', 'loop'],
        ['fetch', 'save'],
        ['save', 'log'],
        ['fetch', 'side'],
      ],
    );
    const rows = (status: 'succeeded' | 'failed') =>
      ['fetch', 'save', 'log', 'side'].map((stepId) => ({
        stepId,
        status: stepId === 'fetch' ? status : ('succeeded' as const),
      }));
    const p = plan(g, 'save[1]', { count: 3, reusable: [0, 1, 2], targetRows: rows('succeeded') });
    expect(p.iterations?.within).toEqual({
      iteration: 1,
      rerun: ['save', 'log'],
      reuse: ['fetch', 'side'],
    });
    expect(fate(p, 'save')!.detail).toMatch(/in branch 1, `fetch`, `side` kept/);
    // the whole iteration when a kept step did not succeed, or the target is the first step
    const failed = plan(g, 'save[1]', { count: 3, reusable: [0, 2], targetRows: rows('failed') });
    expect(failed.iterations?.within).toBeNull();
    expect(failed.notes.join(' ')).toMatch(/reruns in full: `fetch\[1\]`, before `save`/);
    expect(plan(g, 'fetch[1]', { count: 3, reusable: [0, 1, 2] }).iterations?.within).toBeNull();
    expect(plan(g, 'loop[1]', { count: 3, reusable: [0, 1, 2] }).iterations?.within).toBeNull();
  });

  it('a failed loop restarts from the failed iteration; the failure before k wins', () => {
    const g = loopGraph('forEach');
    const steps = succeededRun(g);
    steps.find((s) => s.stepId === 'loop')!.status = 'failed';
    const p = plan(g, 'each[2]', { count: 3, reusable: [0, 1] }, steps);
    expect(p.iterations?.reuse).toEqual([0, 1]);
    const early = plan(g, 'each[2]', { count: 3, reusable: [1] }, steps);
    expect(early.iterations?.reuse).toEqual([]);
    expect(early.notes.join(' ')).toMatch(/Iteration 0 .* restarts from it/);
  });

  it('a parallel reruns the targeted branch and the branches that did not succeed', () => {
    const g = loopGraph('parallel');
    const p = plan(g, 'each[1]', { count: 5, reusable: [0, 1, 2, 4] });
    expect(p.iterations).toMatchObject({ kind: 'parallel', rerun: [1, 3], reuse: [0, 2, 4] });
    expect(fate(p, 'z')).toMatchObject({ fate: 'rerun', reason: 'upstream_changed' });
  });

  it('an owner whose input may change restarts from iteration 0 and says why', () => {
    const g = loopGraph('forEach');
    const changed = graph(
      [
        node('a', 'ha2'),
        node('loop', 'hl', { kind: 'forEach' }),
        node('each', 'he', { scope: 'loop' }),
        node('z', 'hz'),
      ],
      [
        ['a', 'loop'],
        ['loop', 'z'],
      ],
    );
    const p = planRerun({
      sourceGraph: g,
      targetGraph: changed,
      sourceSteps: succeededRun(g),
      fromStep: 'each[2]',
      runInput: { hash: 'in_a', available: true },
      sourceIterations: { count: 4, reusable: [0, 1, 2, 3] },
    });
    expect(p.iterations).toBeNull();
    expect(p.notes.join(' ')).toMatch(/restarts from iteration 0, not 2: `a` upstream reruns/);
  });

  it('422 for an index beyond the source iterations, on a top-level step, or too many indices', () => {
    const g = loopGraph('forEach');
    const [code, message] = codeOf(() => plan(g, 'each[99]', { count: 3, reusable: [0, 1, 2] }));
    expect(code).toBe('unknown_step');
    expect(message).toContain('`loop` ran 3 iterations');
    expect(message).toContain('from 0 to 2');
    expect(codeOf(() => plan(g, 'each[0]', { count: 0, reusable: [] }))[1]).toMatch(
      /ran no iterations .* Rerun from `loop`/,
    );
    expect(codeOf(() => plan(g, 'a[1]'))[1]).toMatch(/top-level step, not in a loop.*Use `a`/);
    expect(codeOf(() => plan(g, 'each[1][2]'))[1]).toMatch(/at most 1/);
    expect(codeOf(() => plan(g, 'nope[1]'))[1]).toMatch(/`nope\[1\]` is not a step/);
    expect(codeOf(() => planRerun({ ...baseInput(g), untilStep: 'each[1]' }))[1]).toMatch(
      /untilStep takes a step id/,
    );
  });

  const baseInput = (g: SerializedGraph) => ({
    sourceGraph: g,
    targetGraph: g,
    sourceSteps: succeededRun(g),
    fromStep: 'a',
    runInput: { hash: 'in_a', available: true },
  });

  it('properties: reused iterations succeeded; a loop keeps a prefix; k always reruns', () => {
    const r = rng(7);
    for (let t = 0; t < 500; t++) {
      const count = 1 + Math.floor(r() * 12);
      const reusable = range(count).filter(() => r() < 0.8);
      const k = Math.floor(r() * count);
      for (const kind of ['forEach', 'parallel'] as const) {
        const p = plan(loopGraph(kind), `each[${k}]`, { count, reusable })!.iterations!;
        expect(p.rerun).toContain(k);
        expect([...p.reuse, ...p.rerun].sort((a, b) => a - b)).toEqual(range(count));
        for (const i of p.reuse) expect(reusable).toContain(i);
        if (kind === 'forEach') expect(p.reuse).toEqual(range(p.reuse.length));
        else expect(p.rerun.every((i) => i === k || !reusable.includes(i))).toBe(true);
      }
    }
  });
});

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
