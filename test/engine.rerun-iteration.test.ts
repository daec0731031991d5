/**
 * Rerun from one loop iteration or one parallel branch (`fromStep: 's[k]'`, docs/rerun.md): a loop
 * restarts from iteration k and keeps the iterations before it; a parallel reruns only the
 * targeted branch (and branches that did not succeed) and what depends on it. Each case checks
 * which user code ran again, the final output, the run state, and the reused rows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeftError } from '../src/core/errors.js';
import type { Engine } from '../src/engine/engine.js';
import { rerunRun } from '../src/engine/rerun.js';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';
import { startTestEngine } from './support/engine.js';

describe.each(BACKENDS)('rerun from one iteration or branch on %s', (backend) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
  });
  afterAll(async () => {
    await db?.close();
  });

  const loc = () => [...db.stores.runs.locations.values()][0]!;

  async function ended(engine: Engine, runId: string, status = 'succeeded') {
    const run = await engine.waitForRun(runId, { timeoutMs: 30_000 });
    expect(run.status).toBe(status);
    return run;
  }

  async function finalOf(engine: Engine, runId: string): Promise<unknown> {
    const run = await ended(engine, runId);
    return (await db.stores.runs.getDataclip(engine.environmentId, run.finalDataclipId!))?.body;
  }

  async function stateOf(runId: string): Promise<unknown> {
    const { db: x, schema } = loc();
    return (
      await x.query<{ state: unknown }>(`select state from ${schema}.runs where id = $1`, [runId])
    ).rows[0]!.state;
  }

  async function rejection(p: Promise<unknown>): Promise<WeftError> {
    try {
      await p;
    } catch (error) {
      expect(error).toBeInstanceOf(WeftError);
      return error as WeftError;
    }
    return expect.unreachable() as never;
  }

  it('a loop restarts from iteration k, keeps 0..k-1 by reference, and replays their state', async () => {
    const calls: number[] = [];
    const wf = defineWorkflow<number[]>('iter-loop')
      .step('load', (xs) => xs)
      .forEach('each', {
        after: 'load',
        items: (xs: number[]) => xs,
        body: (b) =>
          b.step('sq', (n: number, ctx) => {
            calls.push(n);
            ctx.state[`sq${n}`] = n * n;
            return n * n;
          }),
      })
      .step('sum', { after: 'each' }, (rs) => (rs as number[]).reduce((s, r) => s + r, 0));
    const engine = await startTestEngine(db.stores, [wf as never]);
    try {
      const { run: source } = await engine.trigger('iter-loop', [1, 2, 3, 4]);
      expect(await finalOf(engine, source.id)).toBe(30);
      const sourceSteps = (await db.stores.runs.listStepRuns(engine.environmentId, source.id))!;
      calls.length = 0;

      const { run, plan } = await rerunRun(db.stores, engine.environmentId, source.id, {
        fromStep: 'sq[2]',
      });
      expect(plan.iterations).toEqual({
        owner: 'each',
        kind: 'loop',
        target: 2,
        sourceCount: 4,
        reuse: [0, 1],
        rerun: [2, 3],
        within: null,
      });
      expect(plan.nodes.map((n) => [n.stepId, n.fate, n.reason])).toEqual([
        ['load', 'reuse', null],
        ['each', 'rerun', 'target'],
        ['sq', 'rerun', 'target'],
        ['sum', 'rerun', 'upstream_changed'],
      ]);
      expect(await finalOf(engine, run!.id)).toBe(30);
      expect(calls).toEqual([3, 4]);
      expect(await stateOf(run!.id)).toEqual(await stateOf(source.id));

      const steps = (await db.stores.runs.listStepRuns(engine.environmentId, run!.id))!;
      const byKey = new Map(steps.map((s) => [s.stepKey, s]));
      for (const i of [0, 1]) {
        const src = sourceSteps.find((s) => s.stepKey === `sq[${i}]`)!;
        expect(byKey.get(`sq[${i}]`)).toMatchObject({
          status: 'succeeded',
          reusedFrom: src.id,
          outputDataclipId: src.outputDataclipId,
          attempts: [],
        });
      }
      for (const i of [2, 3]) {
        expect(byKey.get(`sq[${i}]`)).toMatchObject({ status: 'succeeded', reusedFrom: null });
        expect(byKey.get(`sq[${i}]`)!.attempts).toHaveLength(1);
      }

      // A rerun of that rerun, from a later iteration: copies of copies, the same result.
      calls.length = 0;
      const again = await rerunRun(db.stores, engine.environmentId, run!.id, {
        fromStep: 'each[3]',
      });
      expect(again.plan.iterations?.reuse).toEqual([0, 1, 2]);
      expect(await finalOf(engine, again.run!.id)).toBe(30);
      expect(calls).toEqual([4]);
      expect(await stateOf(again.run!.id)).toEqual(await stateOf(source.id));
    } finally {
      await engine.stop();
    }
  });

  it('inside iteration k, the body steps before the target (and beside it) keep their results', async () => {
    const calls: string[] = [];
    const wf = defineWorkflow<number[]>('iter-within').forEach('each', {
      items: (xs: number[]) => xs,
      body: (b) =>
        b
          .step('fetch', (n: number, ctx) => {
            calls.push(ctx.stepKey);
            ctx.state[ctx.stepKey] = n;
            return n + 1;
          })
          .step('save', { after: 'fetch' }, (n: number, ctx) => {
            calls.push(ctx.stepKey);
            return n * 2;
          })
          .step('audit', { after: 'fetch' }, (n: number, ctx) => {
            calls.push(ctx.stepKey);
            return `seen ${n}`;
          }),
    });
    const engine = await startTestEngine(db.stores, [wf as never]);
    try {
      const { run: source } = await engine.trigger('iter-within', [1, 2, 3]);
      const expected = await finalOf(engine, source.id);
      expect(expected).toEqual([
        { save: 4, audit: 'seen 2' },
        { save: 6, audit: 'seen 3' },
        { save: 8, audit: 'seen 4' },
      ]);
      calls.length = 0;
      const { run, plan } = await rerunRun(db.stores, engine.environmentId, source.id, {
        fromStep: 'save[1]',
      });
      expect(plan.iterations).toMatchObject({
        reuse: [0],
        within: { iteration: 1, rerun: ['save'], reuse: ['fetch', 'audit'] },
      });
      expect(await finalOf(engine, run!.id)).toEqual(expected);
      expect(calls.sort()).toEqual(['audit[2]', 'fetch[2]', 'save[1]', 'save[2]']);
      expect(await stateOf(run!.id)).toEqual(await stateOf(source.id));
    } finally {
      await engine.stop();
    }
  });

  it('a loop that failed at iteration k is resumed there after a fix', async () => {
    let broken = true;
    const calls: number[] = [];
    const wf = defineWorkflow<number>('iter-fix').times('rounds', {
      count: 4,
      body: (b) =>
        b.step('work', (i: number) => {
          calls.push(i);
          if (broken && i === 2) throw new Error('round 2 is broken');
          return i * 10;
        }),
    });
    const engine = await startTestEngine(db.stores, [wf as never]);
    try {
      const { run: source } = await engine.trigger('iter-fix', 0);
      await ended(engine, source.id, 'failed');
      broken = false;
      calls.length = 0;
      const { run, plan } = await rerunRun(db.stores, engine.environmentId, source.id, {
        fromStep: 'work[2]',
      });
      expect(plan.iterations).toMatchObject({ reuse: [0, 1], rerun: [2], sourceCount: 3 });
      expect(await finalOf(engine, run!.id)).toEqual([0, 10, 20, 30]);
      expect(calls).toEqual([2, 3]);
    } finally {
      await engine.stop();
    }
  });

  it('a parallel reruns only the targeted branch and the branches that failed', async () => {
    const calls: string[] = [];
    let failOne = true;
    const wf = defineWorkflow<number[]>('iter-par')
      .parallel('fan', {
        items: (xs: number[]) => xs,
        concurrency: 2,
        onBranchFailure: 'collect',
        body: (b) =>
          b
            .step('fetch', (n: number) => {
              calls.push(`fetch${n}`);
              if (failOne && n === 20) throw new Error('twenty is flaky');
              return n + 1;
            })
            .step('save', { after: 'fetch' }, (n: number, ctx) => {
              calls.push(`save${n}`);
              ctx.state[`saved${n}`] = true;
              return n * 2;
            }),
      })
      .step('total', { after: 'fan' }, (rs) =>
        (rs as Array<number | { error: unknown }>).map((r) => (typeof r === 'number' ? r : 'x')),
      );
    const engine = await startTestEngine(db.stores, [wf as never]);
    try {
      const { run: source } = await engine.trigger('iter-par', [0, 10, 20, 30, 40]);
      expect(await finalOf(engine, source.id)).toEqual([2, 22, 'x', 62, 82]);
      failOne = false;
      calls.length = 0;
      const { run, plan } = await rerunRun(db.stores, engine.environmentId, source.id, {
        fromStep: 'save[3]',
      });
      expect(plan.iterations).toMatchObject({
        kind: 'parallel',
        rerun: [2, 3],
        reuse: [0, 1, 4],
      });
      expect(await finalOf(engine, run!.id)).toEqual([2, 22, 42, 62, 82]);
      // branch 2 failed at fetch: it reruns in full; in branch 3, fetch[3] is kept and save[3] reruns
      expect(plan.iterations?.within).toEqual({ iteration: 3, rerun: ['save'], reuse: ['fetch'] });
      expect(calls.sort()).toEqual(['fetch20', 'save21', 'save31']);
      // reused branches' state patches are replayed, the rerun ones patch it again
      expect(await stateOf(run!.id)).toEqual({
        saved1: true,
        saved11: true,
        saved21: true,
        saved31: true,
        saved41: true,
      });
      const steps = (await db.stores.runs.listStepRuns(engine.environmentId, run!.id))!;
      const reused = steps.filter((s) => s.reusedFrom !== null).map((s) => s.stepKey);
      expect(reused.sort()).toEqual(
        ['fetch[0]', 'fetch[1]', 'fetch[3]', 'fetch[4]', 'save[0]', 'save[1]', 'save[4]'].sort(),
      );

      // dry run: plans and writes nothing
      const dry = await rerunRun(db.stores, engine.environmentId, run!.id, {
        fromStep: 'fan[0]',
        dryRun: true,
      });
      expect(dry.run).toBeNull();
      expect(dry.plan.iterations).toMatchObject({ rerun: [0], reuse: [1, 2, 3, 4] });
    } finally {
      await engine.stop();
    }
  });

  it('property: a rerun from a random iteration ends like a full run and reruns only what it must', async () => {
    let seed = backend === 'pglite' ? 11 : 29;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let c = 0; c < 6; c++) {
      const kind = c % 2 === 0 ? 'forEach' : 'parallel';
      const items = Array.from({ length: 1 + rand(6) }, (_, i) => i * 3 + 1);
      const depth = 1 + rand(3);
      const failAt = rand(2) === 0 ? rand(items.length) : -1; // the source fails there
      let fixed = false;
      const ran: string[] = [];
      const body = (b: never) => {
        let chain = b as unknown as {
          step: (
            id: string,
            o: unknown,
            fn: (x: number, ctx: { state: Record<string, unknown>; stepKey: string }) => number,
          ) => typeof chain;
        };
        for (let d = 0; d < depth; d++) {
          chain = chain.step(
            `p${c}s${d}`,
            d === 0 ? { retry: { maxAttempts: 1 } } : { after: `p${c}s${d - 1}` },
            (x, ctx) => {
              ran.push(ctx.stepKey);
              if (d === 0 && !fixed && x === items[failAt]) throw new Error('flaky');
              ctx.state[ctx.stepKey] = x;
              return x * 7 + d;
            },
          );
        }
        return chain as never;
      };
      const name = `iter-prop-${c}`;
      let wf = defineWorkflow<number[]>(name) as unknown as Record<
        string,
        (...a: unknown[]) => unknown
      >;
      wf = wf[kind]!('owner', {
        items: (xs: number[]) => xs,
        ...(kind === 'parallel' ? { onBranchFailure: 'collect', concurrency: 2 } : {}),
        body,
      }) as typeof wf;
      wf = wf.step!('after', { after: 'owner' }, (rs: unknown) => rs) as typeof wf;
      const engine = await startTestEngine(db.stores, [wf as never]);
      try {
        const { run: source } = await engine.trigger(name, items);
        const src = await engine.waitForRun(source.id, { timeoutMs: 30_000 });
        fixed = true;
        const reference = (await engine.trigger(name, items)).run.id;
        const expected = await finalOf(engine, reference);
        const k = failAt >= 0 && kind === 'forEach' ? rand(failAt + 1) : rand(items.length);
        const j = rand(depth);
        const step = `p${c}s${j}`;
        ran.length = 0;
        const { run, plan } = await rerunRun(db.stores, engine.environmentId, source.id, {
          fromStep: `${step}[${k}]`,
        });
        expect(
          await finalOf(engine, run!.id),
          `case ${c}: ${kind} ${JSON.stringify(items)} from ${step}[${k}] (source ${src.status})`,
        ).toEqual(expected);
        expect(await stateOf(run!.id)).toEqual(await stateOf(reference));
        const it = plan.iterations!;
        const iterationsRun = [
          ...new Set(ran.map((key) => Number(/\[(\d+)\]$/.exec(key)![1]))),
        ].sort((a, b) => a - b);
        if (kind === 'forEach') {
          expect(it.reuse).toEqual(Array.from({ length: k }, (_, i) => i));
          expect(iterationsRun).toEqual(Array.from({ length: items.length - k }, (_, i) => k + i));
        } else {
          const again = [k, ...(failAt >= 0 && failAt !== k ? [failAt] : [])].sort((a, b) => a - b);
          expect(it.rerun).toEqual(again);
          expect(iterationsRun).toEqual(again);
        }
        // inside iteration k, the body steps before the target are kept (when they succeeded)
        const partial = j > 0 && k !== failAt;
        expect(it.within).toEqual(
          partial
            ? {
                iteration: k,
                rerun: Array.from({ length: depth - j }, (_, d) => `p${c}s${j + d}`),
                reuse: Array.from({ length: j }, (_, d) => `p${c}s${d}`),
              }
            : null,
        );
        const expectedRan = iterationsRun.flatMap((i) =>
          Array.from({ length: depth }, (_, d) => d)
            .filter((d) => !(partial && i === k && d < j))
            .map((d) => `p${c}s${d}[${i}]`),
        );
        expect([...ran].sort()).toEqual(expectedRan.sort());
      } finally {
        await engine.stop();
      }
    }
  });

  it('422 for an iteration the source did not run, a malformed key, a step with no iterations', async () => {
    const wf = defineWorkflow<number[]>('iter-bad')
      .step('a', (xs) => xs)
      .forEach('each', {
        after: 'a',
        items: (xs: number[]) => xs,
        body: (b) => b.step('s', (n) => n),
      });
    const engine = await startTestEngine(db.stores, [wf as never]);
    try {
      const { run: source } = await engine.trigger('iter-bad', [1, 2, 3]);
      await ended(engine, source.id);
      const beyond = await rejection(
        rerunRun(db.stores, engine.environmentId, source.id, { fromStep: 's[99]' }),
      );
      expect(beyond.code).toBe('unknown_step');
      expect(beyond.message).toMatch(/`each` ran 3 iterations .*from 0 to 2, or `s`/);
      const malformed = await rejection(
        rerunRun(db.stores, engine.environmentId, source.id, { fromStep: 's[x]' }),
      );
      expect(malformed.message).toMatch(/not a step id or a step run key/);
      const top = await rejection(
        rerunRun(db.stores, engine.environmentId, source.id, { fromStep: 'a[0]' }),
      );
      expect(top.message).toMatch(/`a` is a top-level step/);
    } finally {
      await engine.stop();
    }
  });
});
