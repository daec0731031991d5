import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';
import { startTestEngine } from './support/engine.js';

describe.each(BACKENDS)('graph execution on %s', (backend) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
  });
  afterAll(async () => {
    await db?.close();
  });

  it('runs a chain, each step receiving its parent output, and records every step run', async () => {
    const chain = defineWorkflow<{ n: number }>('chain')
      .step('double', ({ n }) => n * 2)
      .step('inc', { after: 'double' }, (x) => x + 1)
      .step('format', { after: 'inc' }, (x) => ({ result: `=${x}` }));
    const engine = await startTestEngine(db.stores, [chain]);
    try {
      const { run } = await engine.trigger('chain', { n: 20 });
      const done = await engine.waitForRun(run.id);
      expect(done.status).toBe('succeeded');
      const final = await db.stores.runs.getDataclip(engine.environmentId, done.finalDataclipId!);
      expect(final?.body).toEqual({ result: '=41' });
      const steps = await db.stores.runs.listStepRuns(engine.environmentId, run.id);
      expect(steps?.map((s) => [s.stepKey, s.status, s.attemptCount])).toEqual([
        ['double', 'succeeded', 1],
        ['inc', 'succeeded', 1],
        ['format', 'succeeded', 1],
      ]);
      // a single-parent step's input is its parent's output dataclip, by reference
      const [double, inc] = steps!;
      expect(inc!.inputDataclipId).toBe(double!.outputDataclipId);
      expect(inc!.inputHash).toMatch(/^[0-9a-f]{32}$/);
    } finally {
      await engine.stop();
    }
  });

  it('runs a join with three parents exactly once, with a map of their outputs', async () => {
    let joinRuns = 0;
    const wf = defineWorkflow<number>('join3')
      .step('root', (n) => n)
      .step('b', { after: 'root' }, async (n) => {
        await new Promise((r) => setTimeout(r, 30));
        return n + 1;
      })
      .step('c', { after: 'root' }, (n) => n + 2)
      .step('d', { after: 'root' }, async (n) => {
        await new Promise((r) => setTimeout(r, 10));
        return n + 3;
      })
      .step('join', { after: ['b', 'c', 'd'] }, (parents) => {
        joinRuns++;
        return parents;
      });
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const runs = await Promise.all([1, 2, 3, 4].map((n) => engine.trigger('join3', n)));
      for (const [i, { run }] of runs.entries()) {
        const done = await engine.waitForRun(run.id);
        expect(done.status).toBe('succeeded');
        const final = await db.stores.runs.getDataclip(engine.environmentId, done.finalDataclipId!);
        const n = i + 1;
        expect(final?.body).toEqual({ b: n + 1, c: n + 2, d: n + 3 });
      }
      expect(joinRuns).toBe(4);
    } finally {
      await engine.stop();
    }
  });

  it('follows predicate edges and prunes the untaken branch, propagating into a join', async () => {
    const seen: string[] = [];
    const wf = defineWorkflow<{ vip: boolean }>('route')
      .step('load', (u) => u)
      .step('vip', { after: { step: 'load', when: (u) => u.vip } }, () => {
        seen.push('vip');
        return 'gold';
      })
      .step('vipExtra', { after: 'vip' }, (tier) => {
        seen.push('vipExtra');
        return `${tier}+`;
      })
      .step('regular', { after: { step: 'load', when: (u) => !u.vip } }, () => {
        seen.push('regular');
        return 'standard';
      })
      .step('notify', { after: ['vipExtra', 'regular'] }, (parents) => parents);
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const { run } = await engine.trigger('route', { vip: false });
      const done = await engine.waitForRun(run.id);
      expect(done.status).toBe('succeeded');
      expect(seen.sort()).toEqual(['regular']);
      const steps = await db.stores.runs.listStepRuns(engine.environmentId, run.id);
      const status = Object.fromEntries(steps!.map((s) => [s.stepKey, s.status]));
      expect(status).toEqual({
        load: 'succeeded',
        vip: 'pruned',
        vipExtra: 'pruned',
        regular: 'succeeded',
        notify: 'succeeded',
      });
      const final = await db.stores.runs.getDataclip(engine.environmentId, done.finalDataclipId!);
      expect(final?.body).toEqual({ regular: 'standard' });

      const vipRun = await engine.trigger('route', { vip: true });
      const vipDone = await engine.waitForRun(vipRun.run.id);
      const vipFinal = await db.stores.runs.getDataclip(
        engine.environmentId,
        vipDone.finalDataclipId!,
      );
      expect(vipFinal?.body).toEqual({ vipExtra: 'gold+' });
    } finally {
      await engine.stop();
    }
  });

  it('a run whose every path is pruned ends with the last step that ran as its final state', async () => {
    const wf = defineWorkflow<number>('allpruned')
      .step('check', (n) => n)
      .step('big', { after: { step: 'check', when: (n) => n > 100 } }, () => 'big')
      .step('after', { after: 'big' }, () => 'after');
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const { run } = await engine.trigger('allpruned', 5);
      const done = await engine.waitForRun(run.id);
      expect(done.status).toBe('succeeded');
      const final = await db.stores.runs.getDataclip(engine.environmentId, done.finalDataclipId!);
      expect(final?.body).toBe(5);
    } finally {
      await engine.stop();
    }
  });

  it('routes an exhausted failure along a failure edge, and the run succeeds through the handler', async () => {
    const wf = defineWorkflow<string>('recover')
      .step('charge', { retry: { maxAttempts: 2, minDelay: 5, maxDelay: 10 } }, (card): string => {
        throw new Error(`card ${card} declined`);
      })
      .step('ship', { after: 'charge' }, () => 'shipped')
      .step('refund', { after: { step: 'charge', on: 'failure' } }, (failure) => ({
        handled: failure.error.message,
      }));
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const { run } = await engine.trigger('recover', '4242');
      const done = await engine.waitForRun(run.id);
      expect(done.status).toBe('succeeded');
      const final = await db.stores.runs.getDataclip(engine.environmentId, done.finalDataclipId!);
      expect(final?.body).toEqual({ handled: 'card 4242 declined' });
      const steps = await db.stores.runs.listStepRuns(engine.environmentId, run.id);
      const charge = steps!.find((s) => s.stepKey === 'charge')!;
      expect(charge.status).toBe('failed');
      expect(charge.attempts.map((a) => a.status)).toEqual(['failed', 'failed']);
      expect(steps!.find((s) => s.stepKey === 'ship')!.status).toBe('pruned');
    } finally {
      await engine.stop();
    }
  });

  it('an always edge runs after success and after failure', async () => {
    const wf = defineWorkflow<boolean>('always')
      .step('maybe', { retry: { maxAttempts: 1 } }, (fail) => {
        if (fail) throw new Error('asked to fail');
        return 'ok';
      })
      .step('cleanup', { after: { step: 'maybe', on: 'always' } }, (x) => ({ got: x }));
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const ok = await engine.waitForRun((await engine.trigger('always', false)).run.id);
      const bad = await engine.waitForRun((await engine.trigger('always', true)).run.id);
      expect(ok.status).toBe('succeeded');
      expect(bad.status).toBe('succeeded');
      expect(
        (await db.stores.runs.getDataclip(engine.environmentId, ok.finalDataclipId!))?.body,
      ).toEqual({ got: 'ok' });
      const badFinal = (
        await db.stores.runs.getDataclip(engine.environmentId, bad.finalDataclipId!)
      )?.body as { got: { error: { message: string } } };
      expect(badFinal.got.error.message).toBe('asked to fail');
    } finally {
      await engine.stop();
    }
  });
});
