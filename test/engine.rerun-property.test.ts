/**
 * Rerun property on the real engine: for random DAGs with deterministic steps, a rerun from a
 * random step onto a version with some steps changed ends with the final state (and the state)
 * of a fresh full run of that version. Exercises what the planner's own property test cannot:
 * materializing only part of the graph (join inputs, leaves of reused steps, pruned branches).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rerunRun } from '../src/engine/rerun.js';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';
import { startTestEngine } from './support/engine.js';

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Shape {
  ids: string[];
  parents: Map<string, string[]>;
}

function randomShape(r: () => number, n: number): Shape {
  const ids = Array.from({ length: n }, (_, i) => `n${i}`);
  const parents = new Map<string, string[]>();
  ids.forEach((id, j) => {
    const ps: string[] = [];
    for (let i = Math.max(0, j - 4); i < j; i++) if (r() < 0.4) ps.push(ids[i]!);
    parents.set(id, ps);
  });
  return { ids, parents };
}

/**
 * A step whose source text names its version (so a new version changes its hash) and whose output
 * is a hash of its input; it also records itself in the run state.
 */
function stepFn(
  id: string,
  version: number,
): (input: unknown, ctx: { state: Record<string, unknown> }) => string {
  return new Function(
    'input',
    'ctx',
    `let h = 2166136261; const s = ${JSON.stringify(`${id}@${version}|`)} + JSON.stringify(input);
     for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
     const out = ${JSON.stringify(id)} + ':' + (h >>> 0).toString(16);
     ctx.state[${JSON.stringify(id)}] = out;
     return out;`,
  ) as (input: unknown, ctx: { state: Record<string, unknown> }) => string;
}

function build(name: string, shape: Shape, versions: Map<string, number>) {
  let wf = defineWorkflow<number>(name) as unknown as {
    step: (id: string, options: { after?: string[] }, fn: unknown) => unknown;
  };
  for (const id of shape.ids) {
    const ps = shape.parents.get(id)!;
    wf = wf.step(
      id,
      ps.length > 0 ? { after: ps } : {},
      stepFn(id, versions.get(id)!),
    ) as typeof wf;
  }
  return wf as never;
}

describe.each(BACKENDS)('rerun property on %s', (backend) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
  });
  afterAll(async () => {
    await db?.close();
  });

  it('a rerun ends with the final state and the state of a full run of the target version', async () => {
    for (let seed = 1; seed <= 12; seed++) {
      const r = rng(seed);
      const shape = randomShape(r, 6 + Math.floor(r() * 8));
      const v1 = new Map(shape.ids.map((id) => [id, 1]));
      const v2 = new Map(shape.ids.map((id) => [id, r() < 0.2 ? 2 : 1]));
      const name = `prop-${seed}`;
      const engine = await startTestEngine(db.stores, [build(name, shape, v1)]);
      try {
        const { run: source } = await engine.trigger(name, seed);
        expect((await engine.waitForRun(source.id)).status).toBe('succeeded');
        await engine.register(build(name, shape, v2));
        const fromStep = shape.ids[Math.floor(r() * shape.ids.length)]!;
        const { run } = await rerunRun(db.stores, engine.environmentId, source.id, {
          fromStep,
          version: 'current',
        });
        const { run: fresh } = await engine.trigger(name, seed);
        const [rerun, full] = [await engine.waitForRun(run!.id), await engine.waitForRun(fresh.id)];
        expect(rerun.status, `seed ${seed}`).toBe('succeeded');
        const body = async (id: string | null) =>
          (await db.stores.runs.getDataclip(engine.environmentId, id!))?.body;
        expect(await body(rerun.finalDataclipId), `seed ${seed} from ${fromStep}`).toEqual(
          await body(full.finalDataclipId),
        );
        const { db: x, schema } = [...db.stores.runs.locations.values()][0]!;
        const states = await x.query<{ id: string; state: unknown }>(
          `select id, state from ${schema}.runs where id = any($1::text[])`,
          [[rerun.id, full.id]],
        );
        const byId = new Map(states.rows.map((s) => [s.id, s.state]));
        expect(byId.get(rerun.id), `seed ${seed} state`).toEqual(byId.get(full.id));
      } finally {
        await engine.stop();
      }
    }
  }, 120_000);
});
