/**
 * How long the rerun planner takes on 1,000-node graphs (docs/rerun.md: "well under 50 ms"). Prints one
 * JSON line: median and p95 over repeated runs, for a chain (rerun the last step, and the first)
 * and for a random layered DAG with some changed steps.
 *
 *   node --import tsx bench/rerun-planner.ts [--nodes 1000] [--iterations 200]
 */
import { parseArgs } from 'node:util';
import type { SerializedGraph } from '../src/core/graph.js';
import { planRerun, type SourceStepRun } from '../src/core/rerun-planner.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1000' },
    iterations: { type: 'string', default: '200' },
  },
});
const N = Number(values.nodes);
const ITERATIONS = Number(values.iterations);

function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function build(edges: Array<[number, number]>, hash: (i: number) => string): SerializedGraph {
  return {
    maxPayloadBytes: 1 << 20,
    nodes: Array.from({ length: N }, (_, i) => ({
      id: `s${i}`,
      kind: 'step' as const,
      hash: hash(i),
      maxAttempts: 3,
      onExhausted: 'fail' as const,
    })),
    edges: edges.map(([f, t]) => ({ from: `s${f}`, to: `s${t}`, on: 'success' as const })),
  };
}

function source(g: SerializedGraph): SourceStepRun[] {
  const liveFrom = new Map<string, string[]>();
  for (const e of g.edges) liveFrom.set(e.to, [...(liveFrom.get(e.to) ?? []), e.from]);
  return g.nodes.map((n) => ({
    stepId: n.id,
    stepRunId: `sr_${n.id}`,
    status: 'succeeded',
    outputDataclipId: `dc_${n.id}`,
    outputWiped: false,
    inputHash: `in_${n.id}`,
    liveFrom: liveFrom.get(n.id) ?? [],
  }));
}

function measure(run: () => void): { medianMs: number; p95Ms: number; maxMs: number } {
  for (let i = 0; i < 20; i++) run(); // warm up the JIT
  const times: number[] = [];
  for (let i = 0; i < ITERATIONS; i++) {
    const t = performance.now();
    run();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  const at = (q: number) =>
    Math.round(times[Math.min(times.length - 1, Math.floor(q * times.length))]! * 1000) / 1000;
  return { medianMs: at(0.5), p95Ms: at(0.95), maxMs: at(1) };
}

const chain = build(
  Array.from({ length: N - 1 }, (_, i) => [i, i + 1] as [number, number]),
  (i) => `h${i}`,
);
const chainSteps = source(chain);

const r = seeded(42);
const dagEdges: Array<[number, number]> = [];
for (let j = 1; j < N; j++) {
  dagEdges.push([Math.max(0, j - 1 - Math.floor(r() * 8)), j]);
  if (r() < 0.5) dagEdges.push([Math.max(0, j - 1 - Math.floor(r() * 30)), j]);
}
const dedup = [...new Map(dagEdges.map((e) => [`${e[0]}-${e[1]}`, e])).values()];
const dagA = build(dedup, (i) => `h${i}`);
const dagB = build(dedup, (i) => (r() < 0.01 ? `h${i}'` : `h${i}`));
const dagSteps = source(dagA);
const input = { hash: 'in_s0', available: true };

const result = {
  bench: 'rerun-planner',
  nodes: N,
  iterations: ITERATIONS,
  node: process.version,
  chainLastStep: measure(() =>
    planRerun({
      sourceGraph: chain,
      targetGraph: chain,
      sourceSteps: chainSteps,
      fromStep: `s${N - 1}`,
      runInput: input,
    }),
  ),
  chainFirstStep: measure(() =>
    planRerun({
      sourceGraph: chain,
      targetGraph: chain,
      sourceSteps: chainSteps,
      fromStep: 's0',
      runInput: input,
    }),
  ),
  randomDagMiddleChanged: measure(() =>
    planRerun({
      sourceGraph: dagA,
      targetGraph: dagB,
      sourceSteps: dagSteps,
      fromStep: `s${Math.floor(N / 2)}`,
      runInput: input,
    }),
  ),
};
console.log(JSON.stringify(result));
