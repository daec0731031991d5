import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineWorkflow, type Workflow } from '../src/index.js';
import {
  BACKENDS,
  finalStateOf,
  openTestDatabase,
  type TestDatabase,
} from './support/databases.js';
import { startTestEngine } from './support/engine.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(BACKENDS)('control flow on %s', (backend) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
  });
  afterAll(async () => {
    await db?.close();
  });
  const final = (envId: string, runId: string) => finalStateOf(db, envId, runId);

  it('a router chooses branches and prunes the others', async () => {
    const wf = defineWorkflow<{ tier: string }>('tiers')
      .router('route', {}, ({ tier }) => (tier === 'gold' ? 'vip' : 'standard'))
      .step(
        'vip',
        { after: { step: 'route', branch: 'vip' } },
        (input) => `red carpet for ${input.tier}`,
      )
      .step('standard', { after: { step: 'route', branch: 'standard' } }, () => 'queue');
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const gold = await engine.waitForRun(
        (await engine.trigger('tiers', { tier: 'gold' })).run.id,
      );
      // the router decides; its successors receive the router's own input
      expect(await final(engine.environmentId, gold.id)).toBe('red carpet for gold');
      const steps = (await db.stores.runs.listStepRuns(engine.environmentId, gold.id))!;
      expect(steps.find((s) => s.stepKey === 'standard')!.status).toBe('pruned');
    } finally {
      await engine.stop();
    }
  });

  it('forEach runs its body per item in order, keyed step[i], with a router inside the loop', async () => {
    const order: string[] = [];
    const wf = defineWorkflow<number[]>('loop-router')
      .forEach('each', {
        items: (xs) => xs,
        body: (b) =>
          b
            .router('parity', {}, (n) => (n % 2 === 0 ? 'even' : 'odd'))
            .step('half', { after: { step: 'parity', branch: 'even' } }, (_p, ctx) => {
              order.push(ctx.stepKey);
              return 'even';
            })
            .step('triple', { after: { step: 'parity', branch: 'odd' } }, (_p, ctx) => {
              order.push(ctx.stepKey);
              return 'odd';
            }),
      })
      .step('count', { after: 'each' }, (results) => results);
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const done = await engine.waitForRun(
        (await engine.trigger('loop-router', [4, 7, 10])).run.id,
      );
      expect(done.status).toBe('succeeded');
      expect(await final(engine.environmentId, done.id)).toEqual(['even', 'odd', 'even']);
      expect(order).toEqual(['half[0]', 'triple[1]', 'half[2]']);
      const keys = (await db.stores.runs.listStepRuns(engine.environmentId, done.id))!.map(
        (s) => `${s.stepKey}:${s.status}`,
      );
      expect(keys).toEqual(
        expect.arrayContaining([
          'parity[0]:succeeded',
          'triple[0]:pruned',
          'half[1]:pruned',
          'each:succeeded',
          'count:succeeded',
        ]),
      );
    } finally {
      await engine.stop();
    }
  });

  it('times and while loops; while fails clearly at its bound', async () => {
    const wf = defineWorkflow<number>('counting')
      .times('thrice', { count: 3, body: (b) => b.step('sq', (i) => i * i) })
      .while('double', {
        after: 'thrice',
        maxIterations: 10,
        condition: (last, i) => (i === 0 ? true : (last as number) < 40),
        body: (b) => b.step('x2', (v) => (Array.isArray(v) ? 1 : (v as number) * 2)),
      });
    const runaway = defineWorkflow('runaway').while('forever', {
      maxIterations: 3,
      condition: () => true,
      body: (b) => b.step('tick', () => 1),
    });
    const engine = await startTestEngine(db.stores, [wf, runaway]);
    try {
      const done = await engine.waitForRun((await engine.trigger('counting', 0)).run.id);
      expect(done.status).toBe('succeeded');
      expect(await final(engine.environmentId, done.id)).toEqual([1, 2, 4, 8, 16, 32, 64]);
      const thrice = (await db.stores.runs.listStepRuns(engine.environmentId, done.id))!.find(
        (s) => s.stepKey === 'thrice',
      )!;
      expect(
        (await db.stores.runs.getDataclip(engine.environmentId, thrice.outputDataclipId!))?.body,
      ).toEqual([0, 1, 4]);
      const bad = await engine.waitForRun((await engine.trigger('runaway', null)).run.id);
      expect(bad.status).toBe('failed');
      expect(bad.error?.error?.message).toContain('reached its bound of 3 iterations');
    } finally {
      await engine.stop();
    }
  });

  it('a parallel whose branches contain a join returns branch results in item order, honouring its concurrency limit', async () => {
    let running = 0;
    let peak = 0;
    const wf = defineWorkflow<string[]>('fan')
      .parallel('each', {
        items: (xs) => xs,
        concurrency: 2,
        body: (b) =>
          b
            .step('upper', async (s) => {
              running++;
              peak = Math.max(peak, running);
              await sleep(30);
              running--;
              return s.toUpperCase();
            })
            .step('len', { after: 'upper' }, (s) => s.length)
            .step('rev', { after: 'upper' }, (s) => [...s].reverse().join(''))
            .step('pair', { after: ['len', 'rev'] }, ({ len, rev }) => `${rev}:${len}`),
      })
      .step('joined', { after: 'each' }, (xs) => xs.join(','));
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const done = await engine.waitForRun(
        (await engine.trigger('fan', ['ab', 'cde', 'f', 'ghij', 'k'])).run.id,
      );
      expect(done.status).toBe('succeeded');
      expect(await final(engine.environmentId, done.id)).toBe('BA:2,EDC:3,F:1,JIHG:4,K:1');
      expect(peak).toBeLessThanOrEqual(2);
    } finally {
      await engine.stop();
    }
  });

  it('a pruned branch feeding a join: the join runs once with the live parent', async () => {
    const wf = defineWorkflow<boolean>('prune-join')
      .step('start', (b) => b)
      .step('yes', { after: { step: 'start', when: (b) => b } }, () => 'yes')
      .step('no', { after: { step: 'start', when: (b) => !b } }, () => 'no')
      .step('deep', { after: 'no' }, () => 'deep')
      .step('join', { after: ['yes', 'deep'] }, (m) => m);
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const done = await engine.waitForRun((await engine.trigger('prune-join', true)).run.id);
      expect(await final(engine.environmentId, done.id)).toEqual({ yes: 'yes' });
    } finally {
      await engine.stop();
    }
  });

  it('parallel fail-fast fails the parallel and cancels the rest; collect records errors per branch', async () => {
    const body = (b: Workflow<number>) =>
      b.step('check', { retry: { maxAttempts: 1 } }, async (n) => {
        if (n === 2) throw new Error(`item ${n} is bad`);
        // item 3 is still running when item 2 fails, also when recording that failure loses a
        // deadlock to a sibling's commit first (detected after deadlock_timeout, 1 s) and is retried
        await sleep(n === 3 ? 3_000 : 5);
        return n;
      });
    const fast = defineWorkflow<number[]>('fast').parallel('all', { items: (x) => x, body });
    const collect = defineWorkflow<number[]>('collect').parallel('all', {
      items: (x) => x,
      onBranchFailure: 'collect',
      body,
    });
    const engine = await startTestEngine(db.stores, [fast, collect]);
    try {
      const a = await engine.waitForRun((await engine.trigger('fast', [1, 2, 3])).run.id);
      expect(a.status).toBe('failed');
      expect(a.error?.error?.message).toContain('step `check[1]` failed: item 2 is bad');
      const steps = (await db.stores.runs.listStepRuns(engine.environmentId, a.id))!;
      expect(steps.find((s) => s.stepKey === 'check[2]')!.status).toBe('canceled');
      const b = await engine.waitForRun((await engine.trigger('collect', [1, 2, 3])).run.id);
      expect(b.status).toBe('succeeded');
      const out = (await final(engine.environmentId, b.id)) as unknown[];
      expect(out[0]).toBe(1);
      expect(out[2]).toBe(3);
      expect((out[1] as { error: { message: string } }).error.message).toBe('item 2 is bad');
    } finally {
      await engine.stop();
    }
  });

  it('approvals inside a parallel: several wait at once and complete in any order; schema and reuse are refused', async () => {
    const wf = defineWorkflow<string[]>('sign-off')
      .parallel('reviews', {
        items: (xs) => xs,
        body: (b) =>
          b
            .approval('review', { schema: z.object({ ok: z.boolean() }).strict() })
            .step('note', { after: 'review' }, (r) => (r as { ok: boolean }).ok),
      })
      .step('verdict', { after: 'reviews' }, (xs) => xs.every(Boolean));
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const { run } = await engine.trigger('sign-off', ['alice', 'bob', 'carol']);
      let waiting: Awaited<ReturnType<typeof db.stores.runs.listWaitpoints>> = [];
      for (let i = 0; i < 200 && waiting.filter((w) => w.status === 'waiting').length < 3; i++) {
        await sleep(25);
        waiting = await db.stores.runs.listWaitpoints(engine.environmentId, run.id);
      }
      expect(waiting.map((w) => w.stepKey).sort()).toEqual(['review[0]', 'review[1]', 'review[2]']);
      // every open step waits: the run is `waiting` (set by the last park's commit)
      expect((await db.stores.runs.getRun(engine.environmentId, run.id))?.status).toBe('waiting');
      const byKey = Object.fromEntries(waiting.map((w) => [w.stepKey, w.id]));
      const bad = await engine
        .completeWaitpoint(byKey['review[1]']!, { ok: 'yes' })
        .catch((e: unknown) => e);
      expect(bad).toMatchObject({ code: 'invalid_payload' });
      expect((bad as Error).message).toContain('ok: Invalid input: expected boolean');
      await engine.completeWaitpoint(byKey['review[2]']!, { ok: true });
      await engine.completeWaitpoint(byKey['review[0]']!, { ok: true });
      await engine.completeWaitpoint(byKey['review[1]']!, { ok: false });
      const again = await engine
        .completeWaitpoint(byKey['review[1]']!, { ok: true })
        .catch((e: unknown) => e);
      expect(again).toMatchObject({ code: 'waitpoint_not_waiting' });
      const unknown = await engine
        .completeWaitpoint('wp_a0' + '0'.repeat(26), { ok: true })
        .catch((e: unknown) => e);
      expect(unknown).toMatchObject({ code: 'not_found' });
      const done = await engine.waitForRun(run.id);
      expect(done.status).toBe('succeeded');
      expect(await final(engine.environmentId, done.id)).toBe(false);
    } finally {
      await engine.stop();
    }
  });

  it('an approval timeout follows the timeout edge', async () => {
    const wf = defineWorkflow('expiring')
      .approval('ok', { timeout: 100 })
      .step('approved', { after: 'ok' }, () => 'approved')
      .step(
        'expired',
        { after: { step: 'ok', on: 'timeout' } },
        ({ error }) => `expired: ${error.message.includes('timed out')}`,
      );
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const done = await engine.waitForRun((await engine.trigger('expiring', null)).run.id);
      expect(done.status).toBe('succeeded');
      expect(await final(engine.environmentId, done.id)).toBe('expired: true');
    } finally {
      await engine.stop();
    }
  });

  it('a sleep holds no worker and outlives a full restart of the engine', async () => {
    const wf = defineWorkflow('nap')
      .sleep('wait', { duration: 700 })
      .step('after', { after: 'wait' }, () => 'woke');
    const first = await startTestEngine(db.stores, [wf], { worker: { concurrency: 1 } });
    const { run } = await first.trigger('nap', null);
    for (let i = 0; i < 100; i++) {
      const steps = (await db.stores.runs.listStepRuns(first.environmentId, run.id))!;
      if (steps[0]!.status === 'waiting') break;
      await sleep(20);
    }
    // Parked: no worker slot held. The park's commit can be visible to this query a moment
    // before the worker has read its reply and freed the slot (with eager start the sleep parks
    // within milliseconds of the trigger), so allow that moment: 200 ms, well inside the 700 ms
    // sleep, so a slot held for the sleep still fails here.
    const parkedBy = Date.now() + 200;
    while (first.worker!.inFlightCount > 0 && Date.now() < parkedBy) await sleep(5);
    expect(first.worker!.inFlightCount).toBe(0);
    expect((await db.stores.runs.listStepRuns(first.environmentId, run.id))![0]!.status).toBe(
      'waiting',
    );
    await first.stop();
    const second = await startTestEngine(db.stores, [wf], { environmentId: first.environmentId });
    try {
      const done = await second.waitForRun(run.id);
      expect(done.status).toBe('succeeded');
      expect(await final(second.environmentId, run.id)).toBe('woke');
      const started = Date.parse(done.createdAt);
      expect(Date.parse(done.finishedAt!) - started).toBeGreaterThanOrEqual(650);
    } finally {
      await second.stop();
    }
  });

  it('a sub-workflow runs as a child run and its final state is the step output', async () => {
    const child = defineWorkflow<{ n: number }>('child')
      .step('inc', ({ n }) => n + 1)
      .step('dbl', { after: 'inc' }, (n) => n * 2);
    const parent = defineWorkflow<number>('parent')
      .subWorkflow('call', { workflow: 'child', input: (n) => ({ n }) })
      .step('use', { after: 'call' }, (x) => ({ got: x }));
    const engine = await startTestEngine(db.stores, [child, parent]);
    try {
      const done = await engine.waitForRun((await engine.trigger('parent', 4)).run.id);
      expect(done.status).toBe('succeeded');
      expect(await final(engine.environmentId, done.id)).toEqual({ got: 10 });
      const { data } = await db.stores.runs.listRuns({
        environmentId: engine.environmentId,
        workflowId: 'child',
        limit: 10,
      });
      expect(data).toHaveLength(1);
      expect(data[0]!.parentRunId).toBe(done.id);
      expect(data[0]!.trigger.kind).toBe('child');
    } finally {
      await engine.stop();
    }
  });

  it('cancel during a parallel: running attempts see ctx.signal, children are canceled, the record is consistent', async () => {
    const aborted: string[] = [];
    const child = defineWorkflow('slow-child').sleep('hold', { duration: '1h' });
    const wf = defineWorkflow<number[]>('cancel-me')
      .parallel('work', {
        items: (xs) => xs,
        body: (b) =>
          b.step('spin', async (_n, ctx) => {
            await new Promise<void>((resolve) =>
              ctx.signal.addEventListener('abort', () => resolve()),
            );
            aborted.push(ctx.stepKey);
            return 'aborted';
          }),
      })
      .subWorkflow('kid', { workflow: 'slow-child' });
    const engine = await startTestEngine(db.stores, [child, wf]);
    try {
      const { run } = await engine.trigger('cancel-me', [1, 2, 3]);
      for (let i = 0; i < 200; i++) {
        const steps = (await db.stores.runs.listStepRuns(engine.environmentId, run.id))!;
        if (
          steps.filter((s) => s.status === 'running').length === 3 &&
          steps.find((s) => s.stepKey === 'kid')?.status === 'waiting'
        )
          break;
        await sleep(25);
      }
      const canceled = await engine.cancel(run.id, 'operator said stop');
      expect(canceled.status).toBe('canceled');
      for (let i = 0; i < 100 && aborted.length < 3; i++) await sleep(20);
      expect(aborted.sort()).toEqual(['spin[0]', 'spin[1]', 'spin[2]']);
      const steps = (await db.stores.runs.listStepRuns(engine.environmentId, run.id))!;
      expect(
        steps.filter((s) => ['pending', 'ready', 'running', 'waiting'].includes(s.status)),
      ).toEqual([]);
      expect(steps.flatMap((s) => s.attempts).filter((a) => a.status === 'running')).toEqual([]);
      const { data: kids } = await db.stores.runs.listRuns({
        environmentId: engine.environmentId,
        workflowId: 'slow-child',
        limit: 5,
      });
      expect(kids.map((k) => k.status)).toEqual(['canceled']);
      const twice = await engine.cancel(run.id).catch((e: unknown) => e);
      expect(twice).toMatchObject({ code: 'run_not_active' });
    } finally {
      await engine.stop();
    }
  });

  it('a run that fails cancels the child runs it was waiting on', async () => {
    const sleeper = defineWorkflow('sleeper').sleep('hold', { duration: '1h' });
    const wf = defineWorkflow('doomed')
      .subWorkflow('kid', { workflow: 'sleeper' })
      .step('boom', { retry: { maxAttempts: 1 } }, async () => {
        await sleep(300);
        throw new Error('sibling failed');
      });
    const engine = await startTestEngine(db.stores, [sleeper, wf]);
    try {
      const done = await engine.waitForRun((await engine.trigger('doomed', null)).run.id);
      expect(done.status).toBe('failed');
      const { data: kids } = await db.stores.runs.listRuns({
        environmentId: engine.environmentId,
        workflowId: 'sleeper',
        limit: 5,
      });
      expect(kids.map((k) => [k.status, k.parentRunId])).toEqual([['canceled', done.id]]);
    } finally {
      await engine.stop();
    }
  });

  it('a run paused after exhausted retries resumes on a fixed version of the code', async () => {
    const broken = defineWorkflow<number>('fixable')
      .step(
        'parse',
        { retry: { maxAttempts: 2, minDelay: 5 }, onExhausted: 'pause' },
        (n): number => {
          throw new Error(`cannot parse ${n}`);
        },
      )
      .step('use', { after: 'parse' }, (n) => n * 2);
    const engine = await startTestEngine(db.stores, [broken]);
    try {
      const { run } = await engine.trigger('fixable', 21);
      const paused = await engine.waitForRun(run.id);
      expect(paused.status).toBe('paused');
      const notPaused = await engine.resume('run_a0' + '0'.repeat(26)).catch((e: unknown) => e);
      expect(notPaused).toMatchObject({ code: 'not_found' });
      const fixed = defineWorkflow<number>('fixable')
        .step(
          'parse',
          { retry: { maxAttempts: 2, minDelay: 5 }, onExhausted: 'pause' },
          (n) => n + 0,
        )
        .step('use', { after: 'parse' }, (n) => n * 2);
      await engine.register(fixed);
      await engine.resume(run.id, { version: 'current' });
      const done = await engine.waitForRun(run.id);
      expect(done.status).toBe('succeeded');
      expect(await final(engine.environmentId, done.id)).toBe(42);
      const parse = (await db.stores.runs.listStepRuns(engine.environmentId, run.id))!.find(
        (s) => s.stepKey === 'parse',
      )!;
      expect(parse.attempts.map((a) => a.status)).toEqual(['failed', 'failed', 'succeeded']);
    } finally {
      await engine.stop();
    }
  });

  it('concurrency limits hold on the chain fast path too (per step across runs, per run)', async () => {
    let running = 0;
    let peak = 0;
    let runPeak = 0;
    let runRunning = 0;
    const limited = defineWorkflow('limited')
      .step('prepare', () => null)
      .step('call', { after: 'prepare', concurrency: 1 }, async () => {
        running++;
        peak = Math.max(peak, running);
        await sleep(40);
        running--;
        return 'called';
      });
    const perRun = defineWorkflow('per-run', { maxConcurrency: 1 })
      .step('start', () => null)
      .step('x', { after: 'start' }, async () => {
        runRunning++;
        runPeak = Math.max(runPeak, runRunning);
        await sleep(40);
        runRunning--;
        return 1;
      })
      .step('y', { after: 'start' }, async () => {
        runRunning++;
        runPeak = Math.max(runPeak, runRunning);
        await sleep(40);
        runRunning--;
        return 2;
      });
    const engine = await startTestEngine(db.stores, [limited, perRun], {
      worker: { concurrency: 8 },
    });
    try {
      const runs = await Promise.all(
        Array.from({ length: 6 }, () => engine.trigger('limited', null)),
      );
      for (const { run } of runs)
        expect((await engine.waitForRun(run.id)).status).toBe('succeeded');
      expect(peak).toBe(1);
      const one = await engine.waitForRun((await engine.trigger('per-run', null)).run.id);
      expect(one.status).toBe('succeeded');
      expect(runPeak).toBe(1);
    } finally {
      await engine.stop();
    }
  });

  it('bad input: forEach over a non-array, a throwing items function', async () => {
    const notArray = defineWorkflow<unknown>('not-array').forEach('each', {
      items: (x) => x as never,
      body: (b) => b.step('s', (x) => x),
    });
    const engine = await startTestEngine(db.stores, [notArray]);
    try {
      const done = await engine.waitForRun((await engine.trigger('not-array', { a: 1 })).run.id);
      expect(done.status).toBe('failed');
      expect(done.error?.error?.message).toContain('returned an object; it must return an array');
      const steps = (await db.stores.runs.listStepRuns(engine.environmentId, done.id))!;
      expect(
        steps.every((s) => !['pending', 'ready', 'running', 'waiting'].includes(s.status)),
      ).toBe(true);
    } finally {
      await engine.stop();
    }
  });
});
