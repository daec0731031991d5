import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow, type Workflow } from '../src/index.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';
import { startTestEngine } from './support/engine.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(BACKENDS)('wake-ups, the chain fast path and shutdown on %s', (backend) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
  });
  afterAll(async () => {
    await db?.close();
  });

  it('LISTEN/NOTIFY wakes an idle worker at once (polling is only the fallback)', async () => {
    const wf = defineWorkflow('ping').step('pong', () => 'pong');
    const engine = await startTestEngine(db.stores, [wf], { worker: { pollIntervalMs: 120_000 } });
    try {
      await sleep(300); // the worker has polled once and is now waiting
      const started = Date.now();
      const done = await engine.waitForRun((await engine.trigger('ping', null)).run.id, {
        timeoutMs: 10_000,
      });
      expect(done.status).toBe('succeeded');
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      await engine.stop();
    }
  });

  it('a chain of 20 steps needs one claim: every commit hands the worker the next step', async () => {
    let wf = defineWorkflow('chain20').step('s0', () => 0) as unknown as Workflow<
      unknown,
      Record<string, unknown>
    >;
    for (let i = 1; i < 20; i++) {
      wf = wf.step(`s${i}`, { after: `s${i - 1}` as never }, (n) => (n as number) + 1) as never;
    }
    const engine = await startTestEngine(db.stores, [wf], { worker: { pollIntervalMs: 50 } });
    const runs = db.stores.runs;
    const original = runs.claimSteps.bind(runs);
    const claimedByPolling: string[] = [];
    runs.claimSteps = async (...args) => {
      const claimed = await original(...args);
      claimedByPolling.push(...claimed.map((c) => c.stepKey));
      return claimed;
    };
    try {
      const done = await engine.waitForRun((await engine.trigger('chain20', null)).run.id);
      expect(done.status).toBe('succeeded');
      expect((await runs.getDataclip(engine.environmentId, done.finalDataclipId!))?.body).toBe(19);
      expect(claimedByPolling).toEqual(['s0']);
      const steps = (await runs.listStepRuns(engine.environmentId, done.id))!;
      expect(new Set(steps.map((s) => s.attempts[0]!.workerId)).size).toBe(1);
    } finally {
      runs.claimSteps = original;
      await engine.stop();
    }
  });

  it('stop() lets a running step finish and commit, and claims nothing more', async () => {
    let release: () => void = () => {};
    const entered = new Promise<void>((resolve) => {
      release = resolve;
    });
    const wf = defineWorkflow('drain')
      .step('slow', async () => {
        release();
        await sleep(300);
        return 'finished';
      })
      .step('next', { after: 'slow' }, () => 'never here');
    const engine = await startTestEngine(db.stores, [wf]);
    const { run } = await engine.trigger('drain', null);
    await entered;
    await engine.stop();
    const steps = (await db.stores.runs.listStepRuns(engine.environmentId, run.id))!;
    expect(steps.map((s) => [s.stepKey, s.status])).toEqual([
      ['slow', 'succeeded'],
      ['next', 'ready'],
    ]);
  });

  it('after the grace period stop() aborts the step; the attempt fails as retryable and the step is ready again', async () => {
    const signals: string[] = [];
    const wf = defineWorkflow('stuck').step('forever', async (_i, ctx) => {
      await new Promise<void>((resolve) =>
        ctx.signal.addEventListener('abort', () => {
          signals.push(String((ctx.signal.reason as Error).message));
          resolve();
        }),
      );
      return 'aborted';
    });
    const engine = await startTestEngine(db.stores, [wf], { worker: { shutdownGraceMs: 200 } });
    const { run } = await engine.trigger('stuck', null);
    for (
      let i = 0;
      i < 100 &&
      (await db.stores.runs.listStepRuns(engine.environmentId, run.id))![0]!.status !== 'running';
      i++
    ) {
      await sleep(20);
    }
    await engine.stop();
    expect(signals).toHaveLength(1);
    expect(signals[0]).toContain('shutting down');
    const [step] = (await db.stores.runs.listStepRuns(engine.environmentId, run.id))!;
    expect(step!.status).toBe('ready');
    expect(step!.attempts.map((a) => a.status)).toEqual(['failed']);
  });
});
