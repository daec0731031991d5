import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeftError } from '../src/core/errors.js';
import type { Engine } from '../src/engine/engine.js';
import { rerunRun } from '../src/engine/rerun.js';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';
import { startTestEngine } from './support/engine.js';

describe.each(BACKENDS)('rerun from a step on %s', (backend) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
  });
  afterAll(async () => {
    await db?.close();
  });

  const loc = () => [...db.stores.runs.locations.values()][0]!;

  /** Rows in the run tables of the (single) location. */
  async function rowCounts(): Promise<Record<string, number>> {
    const { db: x, schema } = loc();
    const rows = await x.query<Record<string, number>>(
      `select (select count(*) from ${schema}.runs)::int as runs,
              (select count(*) from ${schema}.step_runs)::int as step_runs,
              (select count(*) from ${schema}.attempts)::int as attempts,
              (select count(*) from ${schema}.dataclips)::int as dataclips,
              (select count(*) from ${schema}.run_events)::int as run_events`,
    );
    return rows.rows[0]!;
  }

  async function finalOf(engine: Engine, runId: string): Promise<unknown> {
    const run = await engine.waitForRun(runId, { timeoutMs: 30_000 });
    expect(run.status).toBe('succeeded');
    return (await db.stores.runs.getDataclip(engine.environmentId, run.finalDataclipId!))?.body;
  }

  async function stateOf(runId: string): Promise<unknown> {
    const { db: x, schema } = loc();
    return (
      await x.query<{ state: unknown }>(`select state from ${schema}.runs where id = $1`, [runId])
    ).rows[0]!.state;
  }

  it('from a middle step: reuses upstream outputs by reference, reruns downstream, replays state', async () => {
    const calls: string[] = [];
    const track = (id: string) => (x: number, ctx: { state: Record<string, unknown> }) => {
      calls.push(id);
      ctx.state.count = ((ctx.state.count as number | undefined) ?? 0) + 1;
      ctx.state[id] = x;
      return x + 1;
    };
    const wf = defineWorkflow<number>('rerun-chain')
      .step('a', track('a'))
      .step('b', { after: 'a' }, track('b'))
      .step('c', { after: 'b' }, track('c'))
      .step('d', { after: 'c' }, track('d'));
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const { run: source } = await engine.trigger('rerun-chain', 10);
      expect(await finalOf(engine, source.id)).toBe(14);
      const sourceSteps = (await db.stores.runs.listStepRuns(engine.environmentId, source.id))!;
      calls.length = 0;

      const { run, plan } = await rerunRun(db.stores, engine.environmentId, source.id, {
        fromStep: 'c',
      });
      expect(plan.nodes.map((n) => [n.stepId, n.fate, n.reason])).toEqual([
        ['a', 'reuse', null],
        ['b', 'reuse', null],
        ['c', 'rerun', 'target'],
        ['d', 'rerun', 'upstream_changed'],
      ]);
      expect(run).toMatchObject({
        trigger: { kind: 'rerun', ref: source.id },
        rerunOf: source.id,
        rerunFromStep: 'c',
        inputDataclipId: source.inputDataclipId,
      });
      expect(await finalOf(engine, run!.id)).toBe(14);
      expect(calls).toEqual(['c', 'd']);

      const steps = (await db.stores.runs.listStepRuns(engine.environmentId, run!.id))!;
      const by = new Map(steps.map((s) => [s.stepKey, s]));
      const src = new Map(sourceSteps.map((s) => [s.stepKey, s]));
      // b is the reused parent c needs: same output dataclip, no copy; a stays in the source only
      expect(by.has('a')).toBe(false);
      expect(by.get('b')).toMatchObject({
        status: 'succeeded',
        reusedFrom: src.get('b')!.id,
        outputDataclipId: src.get('b')!.outputDataclipId,
        attemptCount: 0,
      });
      expect(by.get('c')!.inputDataclipId).toBe(src.get('b')!.outputDataclipId);
      expect(by.get('c')!.inputHash).toBe(src.get('c')!.inputHash);
      expect(by.get('d')!.status).toBe('succeeded');
      // state: a and b's patches replayed, then c and d ran again — as a full run ends
      expect(await stateOf(run!.id)).toEqual(await stateOf(source.id));
    } finally {
      await engine.stop();
    }
  });

  it('a rerun of a rerun finds reused results along rerun_of; steps it skipped are not taken from older runs', async () => {
    const calls: string[] = [];
    const step = (id: string) => (x: number) => {
      calls.push(id);
      return x + 1;
    };
    const wf = defineWorkflow<number>('rerun-lineage')
      .step('a', step('a'))
      .step('b', { after: 'a' }, step('b'))
      .step('c', { after: 'b' }, step('c'))
      .step('d', { after: 'c' }, step('d'));
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const { run: source } = await engine.trigger('rerun-lineage', 0);
      expect(await finalOf(engine, source.id)).toBe(4);
      const first = await rerunRun(db.stores, engine.environmentId, source.id, { fromStep: 'c' });
      expect(await finalOf(engine, first.run!.id)).toBe(4);
      calls.length = 0;
      // a is not materialized in the first rerun: it is found in the source, by reference
      const second = await rerunRun(db.stores, engine.environmentId, first.run!.id, {
        fromStep: 'd',
      });
      expect(second.plan.nodes.map((n) => [n.stepId, n.fate])).toEqual([
        ['a', 'reuse'],
        ['b', 'reuse'],
        ['c', 'reuse'],
        ['d', 'rerun'],
      ]);
      const sourceA = (await db.stores.runs.listStepRuns(engine.environmentId, source.id))!.find(
        (s) => s.stepKey === 'a',
      )!;
      expect(second.plan.nodes[0]).toMatchObject({
        reusedFrom: sourceA.id,
        outputDataclipId: sourceA.outputDataclipId,
      });
      expect(await finalOf(engine, second.run!.id)).toBe(4);
      expect(calls).toEqual(['d']);

      // c and d were skipped by an until-rerun: a rerun of it runs them, never the source's
      const until = await rerunRun(db.stores, engine.environmentId, source.id, {
        fromStep: 'b',
        untilStep: 'b',
      });
      await finalOf(engine, until.run!.id);
      const after = await rerunRun(db.stores, engine.environmentId, until.run!.id, {
        fromStep: 'd',
        dryRun: true,
      });
      expect(after.plan.nodes.map((n) => [n.stepId, n.fate, n.reason])).toEqual([
        ['a', 'reuse', null],
        ['b', 'reuse', null],
        ['c', 'rerun', 'missing_output'],
        ['d', 'rerun', 'target'],
      ]);
    } finally {
      await engine.stop();
    }
  });

  it('a changed step (version current) reruns with definition_changed, and everything after it', async () => {
    const v1 = defineWorkflow<number>('rerun-changed')
      .step('a', (x) => x + 1)
      .step('b', { after: 'a' }, (x) => x * 2)
      .step('c', { after: 'b' }, (x) => x - 1)
      .step('d', { after: 'c' }, (x) => ({ out: x }));
    const engine = await startTestEngine(db.stores, [v1]);
    try {
      const { run: source } = await engine.trigger('rerun-changed', 1);
      expect(await finalOf(engine, source.id)).toEqual({ out: 3 });
      const v2 = defineWorkflow<number>('rerun-changed')
        .step('a', (x) => x + 1)
        .step('b', { after: 'a' }, (x) => x * 10)
        .step('c', { after: 'b' }, (x) => x - 1)
        .step('d', { after: 'c' }, (x) => ({ out: x }));
      await engine.register(v2);

      const original = await rerunRun(db.stores, engine.environmentId, source.id, {
        fromStep: 'd',
        dryRun: true,
      });
      expect(original.plan.counts).toEqual({ rerun: 1, reuse: 3, skip: 0 });

      const { run, plan } = await rerunRun(db.stores, engine.environmentId, source.id, {
        fromStep: 'c',
        version: 'current',
      });
      expect(plan.nodes.map((n) => [n.stepId, n.fate, n.reason])).toEqual([
        ['a', 'reuse', null],
        ['b', 'rerun', 'definition_changed'],
        ['c', 'rerun', 'target'],
        ['d', 'rerun', 'upstream_changed'],
      ]);
      expect(run!.versionId).not.toBe(source.versionId);
      expect(await finalOf(engine, run!.id)).toEqual({ out: 19 });
    } finally {
      await engine.stop();
    }
  });

  it('a join with one dirty parent: the clean parent is reused, the join merges both', async () => {
    let bCalls = 0;
    const make = (factor: number) =>
      defineWorkflow<number>('rerun-join')
        .step('a', (x) => x)
        .step('b', { after: 'a' }, (x) => {
          bCalls++;
          return x + 1;
        })
        .step('c', { after: 'a' }, factor === 2 ? (x) => x * 2 : (x) => x * 3)
        .step('j', { after: ['b', 'c'] }, (m) => m);
    const engine = await startTestEngine(db.stores, [make(2)]);
    try {
      const { run: source } = await engine.trigger('rerun-join', 5);
      expect(await finalOf(engine, source.id)).toEqual({ b: 6, c: 10 });
      await engine.register(make(3));
      bCalls = 0;
      const { run, plan } = await rerunRun(db.stores, engine.environmentId, source.id, {
        fromStep: 'j',
        version: 'current',
      });
      expect(plan.nodes.map((n) => [n.stepId, n.fate, n.reason])).toEqual([
        ['a', 'reuse', null],
        ['b', 'reuse', null],
        ['c', 'rerun', 'definition_changed'],
        ['j', 'rerun', 'target'],
      ]);
      expect(await finalOf(engine, run!.id)).toEqual({ b: 6, c: 15 });
      expect(bCalls).toBe(0);
    } finally {
      await engine.stop();
    }
  });

  it('a failed run: rerun from the failed step after fixing the code; previous_failure upstream', async () => {
    let flaky = true;
    const broken = defineWorkflow<number>('rerun-failed')
      .step('a', (x) => x + 1)
      .step('b', { after: 'a', retry: { maxAttempts: 1 } }, (x) => {
        if (flaky) throw new Error('bug');
        return x * 2;
      })
      .step('c', { after: 'b' }, (x) => x + 100);
    const engine = await startTestEngine(db.stores, [broken]);
    try {
      const { run: source } = await engine.trigger('rerun-failed', 1);
      expect((await engine.waitForRun(source.id)).status).toBe('failed');

      // from c on the original version: b failed, so it reruns too (and still fails)
      const planned = await rerunRun(db.stores, engine.environmentId, source.id, {
        fromStep: 'c',
        dryRun: true,
      });
      expect(planned.plan.nodes.map((n) => [n.stepId, n.fate, n.reason])).toEqual([
        ['a', 'reuse', null],
        ['b', 'rerun', 'previous_failure'],
        ['c', 'rerun', 'target'],
      ]);

      flaky = false;
      const fixed = defineWorkflow<number>('rerun-failed')
        .step('a', (x) => x + 1)
        .step('b', { after: 'a', retry: { maxAttempts: 1 } }, (x) => x * 2)
        .step('c', { after: 'b' }, (x) => x + 100);
      await engine.register(fixed);
      const { run, plan } = await rerunRun(db.stores, engine.environmentId, source.id, {
        fromStep: 'b',
        version: 'current',
      });
      expect(plan.nodes.map((n) => [n.stepId, n.fate])).toEqual([
        ['a', 'reuse'],
        ['b', 'rerun'],
        ['c', 'rerun'],
      ]);
      expect(await finalOf(engine, run!.id)).toBe(104);
    } finally {
      await engine.stop();
    }
  });

  it('untilStep stops after that step; a new input reruns roots with input_changed', async () => {
    const wf = defineWorkflow<number>('rerun-until')
      .step('a', (x) => x + 1)
      .step('b', { after: 'a' }, (x) => x + 1)
      .step('c', { after: 'b' }, (x) => x + 1);
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const { run: source } = await engine.trigger('rerun-until', 0);
      expect(await finalOf(engine, source.id)).toBe(3);
      const { run, plan } = await rerunRun(db.stores, engine.environmentId, source.id, {
        fromStep: 'b',
        untilStep: 'b',
        input: 10,
      });
      expect(plan.nodes.map((n) => [n.stepId, n.fate, n.reason])).toEqual([
        ['a', 'rerun', 'input_changed'],
        ['b', 'rerun', 'target'],
        ['c', 'skip', 'upstream_changed'],
      ]);
      expect(await finalOf(engine, run!.id)).toBe(12);
      const keys = (await db.stores.runs.listStepRuns(engine.environmentId, run!.id))!.map(
        (s) => s.stepKey,
      );
      expect(keys.sort()).toEqual(['a', 'b']);
    } finally {
      await engine.stop();
    }
  });

  it('keeps decisions outside the scope, re-decides inside; a reused leaf stays in the final state', async () => {
    const wf = defineWorkflow<{ vip: boolean }>('rerun-route')
      .router('route', {}, (u) => (u.vip ? 'vip' : 'std'))
      .step('vip', { after: { step: 'route', branch: 'vip' } }, () => 'VIP')
      .step('std', { after: { step: 'route', branch: 'std' } }, () => 'STD')
      .step('side', { after: 'route' }, () => 'side');
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const { run: source } = await engine.trigger('rerun-route', { vip: true });
      expect(await finalOf(engine, source.id)).toEqual({ vip: 'VIP', side: 'side' });
      // std was pruned by the kept decision: rerunning it prunes it again
      const { run, plan } = await rerunRun(db.stores, engine.environmentId, source.id, {
        fromStep: 'std',
      });
      expect(plan.counts).toEqual({ rerun: 1, reuse: 3, skip: 0 });
      expect(await finalOf(engine, run!.id)).toEqual({ vip: 'VIP', side: 'side' });
      // from the router: re-decided, same outcome
      const again = await rerunRun(db.stores, engine.environmentId, source.id, {
        fromStep: 'route',
      });
      expect(await finalOf(engine, again.run!.id)).toEqual({ vip: 'VIP', side: 'side' });
      // from vip only: side is a reused leaf, still in the final state
      const leaf = await rerunRun(db.stores, engine.environmentId, source.id, { fromStep: 'vip' });
      expect(await finalOf(engine, leaf.run!.id)).toEqual({ vip: 'VIP', side: 'side' });
    } finally {
      await engine.stop();
    }
  });

  it('a loop reruns as one unit', async () => {
    let bodyCalls = 0;
    const wf = defineWorkflow<number[]>('rerun-loop')
      .step('load', (xs) => xs)
      .forEach('each', {
        after: 'load',
        items: (xs: number[]) => xs,
        body: (b) =>
          b.step('sq', (n: number) => {
            bodyCalls++;
            return n * n;
          }),
      })
      .step('sum', { after: 'each' }, (rs) => (rs as number[]).reduce((s, r) => s + r, 0));
    const engine = await startTestEngine(db.stores, [wf as never]);
    try {
      const { run: source } = await engine.trigger('rerun-loop', [1, 2, 3]);
      expect(await finalOf(engine, source.id)).toBe(14);
      bodyCalls = 0;
      const { run, plan } = await rerunRun(db.stores, engine.environmentId, source.id, {
        fromStep: 'sq',
      });
      expect(plan.targetUnit).toBe('each');
      expect(plan.nodes.map((n) => [n.stepId, n.fate])).toEqual([
        ['load', 'reuse'],
        ['each', 'rerun'],
        ['sq', 'rerun'],
        ['sum', 'rerun'],
      ]);
      expect(await finalOf(engine, run!.id)).toBe(14);
      expect(bodyCalls).toBe(3);
    } finally {
      await engine.stop();
    }
  });

  it('dryRun returns the plan and writes nothing; 422 for an unknown step; 409 while active', async () => {
    let open = (): void => {};
    const gate = new Promise<void>((resolve) => (open = resolve));
    const wf = defineWorkflow<number>('rerun-dry')
      .step('a', async (x) => {
        if (x === 2) await gate;
        return x;
      })
      .step('b', { after: 'a' }, (x) => x);
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const { run: source } = await engine.trigger('rerun-dry', 1);
      await finalOf(engine, source.id);
      const before = await rowCounts();
      const { run, plan } = await rerunRun(db.stores, engine.environmentId, source.id, {
        fromStep: 'b',
        dryRun: true,
      });
      expect(run).toBeNull();
      expect(plan.counts).toEqual({ rerun: 1, reuse: 1, skip: 0 });
      expect(await rowCounts()).toEqual(before);

      const unknown = await rerunRun(db.stores, engine.environmentId, source.id, {
        fromStep: 'zzz',
      }).catch((e: unknown) => e);
      expect(unknown).toBeInstanceOf(WeftError);
      expect((unknown as WeftError).code).toBe('unknown_step');
      expect((unknown as WeftError).message).toContain('`zzz`');
      expect(await rowCounts()).toEqual(before);

      const { run: active } = await engine.trigger('rerun-dry', 2);
      const busy = await rerunRun(db.stores, engine.environmentId, active.id, {
        fromStep: 'b',
      }).catch((e: unknown) => e);
      expect((busy as WeftError).code).toBe('run_not_ended');
      open();
      await finalOf(engine, active.id);
    } finally {
      await engine.stop();
    }
  });

  it('409 dataclips_wiped names the step whose output was not kept', async () => {
    const wf = defineWorkflow<number>('rerun-wiped')
      .step('a', (x) => x)
      .step('b', { after: 'a' }, (x) => x);
    const engine = await startTestEngine(db.stores, [wf], { saveDataclips: false });
    try {
      const { run: source } = await engine.trigger('rerun-wiped', 1);
      expect((await engine.waitForRun(source.id)).status).toBe('succeeded');
      const error = await rerunRun(db.stores, engine.environmentId, source.id, {
        fromStep: 'b',
      }).catch((e: unknown) => e);
      expect((error as WeftError).code).toBe('dataclips_wiped');
      expect((error as WeftError).message).toMatch(/step `a`.*does not save dataclips/);
    } finally {
      await engine.stop();
    }
  });

  it('rerunning the last step of a 1,000-step chain executes 1 step and writes O(1) rows', async () => {
    const N = 1000;
    let executed = 0;
    let wf = defineWorkflow<number>('rerun-long').step('s0', (x: number) => {
      executed++;
      return x + 1;
    });
    for (let i = 1; i < N; i++) {
      wf = wf.step(`s${i}`, { after: `s${i - 1}` } as never, (x: number) => {
        executed++;
        return x + 1;
      }) as typeof wf;
    }
    let engine = await startTestEngine(db.stores, [wf as never], {
      worker: { concurrency: 1 },
    });
    try {
      const { run: source } = await engine.trigger('rerun-long', 0);
      expect(await finalOf(engine, source.id)).toBe(N);
      executed = 0;
      // no worker while the rerun is created, so the rows it writes are counted alone
      await engine.stop();
      const before = await rowCounts();
      const started = performance.now();
      const { run } = await rerunRun(db.stores, engine.environmentId, source.id, {
        fromStep: `s${N - 1}`,
      });
      const createMs = Math.round(performance.now() - started);
      const created = await rowCounts();
      engine = await startTestEngine(db.stores, [wf as never], {
        environmentId: engine.environmentId,
      });
      expect(await finalOf(engine, run!.id)).toBe(N);
      const after = await rowCounts();
      expect(executed).toBe(1);
      const diff = (a: Record<string, number>, b: Record<string, number>) =>
        Object.fromEntries(Object.keys(a).map((k) => [k, a[k]! - b[k]!]));
      // creating: the run, 2 step runs (s998 reused, s999 ready), 1 event; the input is reused
      expect(diff(created, before)).toEqual({
        runs: 1,
        step_runs: 2,
        attempts: 0,
        dataclips: 0,
        run_events: 1,
      });
      // executing s999: 1 attempt (also its step.started event), 1 output dataclip, the
      // run.succeeded event row (its step.succeeded is its step run row: it patches no state;
      // location 0010)
      expect(diff(after, before)).toEqual({
        runs: 1,
        step_runs: 2,
        attempts: 1,
        dataclips: 1,
        run_events: 2,
      });
      console.log(JSON.stringify({ backend, createMs, rerunLastOf1000: diff(after, before) }));
    } finally {
      await engine.stop();
    }
  }, 120_000);
  it('a rerun of a rerun starts with the state patches of steps reused along the whole lineage', async () => {
    const wf = defineWorkflow<number>('rerun-lineage-state')
      .step('a', (x: number, ctx) => {
        ctx.state.a = x;
        return x + 1;
      })
      .step('b', { after: 'a' }, (x: number, ctx) => {
        ctx.state.b = x;
        delete ctx.state.a;
        return x + 1;
      })
      .step('c', { after: 'b' }, (x: number, ctx) => {
        ctx.state.c = x;
        return x + 1;
      });
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const { run: source } = await engine.trigger('rerun-lineage-state', 1);
      expect(await finalOf(engine, source.id)).toBe(4);
      expect(await stateOf(source.id)).toEqual({ b: 2, c: 3 });
      let previous = source.id;
      for (let i = 0; i < 3; i++) {
        const { run } = await rerunRun(db.stores, engine.environmentId, previous, {
          fromStep: 'c',
        });
        expect(await finalOf(engine, run!.id)).toBe(4);
        // a and b ran only in the first run; their patches (b deleting a's key) still count
        expect(await stateOf(run!.id)).toEqual({ b: 2, c: 3 });
        previous = run!.id;
      }
    } finally {
      await engine.stop();
    }
  });
});
