import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import { Engine } from '../src/engine/engine.js';
import { silentLogger } from '../src/engine/logger.js';
import type { AnyWorkflow } from '../src/engine/registry.js';
import { createSchedule, type ScheduleRequest } from '../src/engine/scheduler.js';
import { createPgExecutor } from '../src/store/pg-executor.js';
import { createStores, type Stores } from '../src/store/stores.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';

/** A clock the test moves by hand; the scheduler never sleeps on it. */
class TestClock {
  constructor(public t: Date) {}
  now = (): Date => new Date(this.t);
  set(iso: string): void {
    this.t = new Date(iso);
  }
  advance(ms: number): void {
    this.t = new Date(this.t.getTime() + ms);
  }
}

const MINUTE = 60_000;

async function newEnvironment(stores: Stores): Promise<string> {
  const suffix = randomBytes(4).toString('hex');
  return (
    await stores.control.createTenant(
      { organization: `org-${suffix}`, project: `prj-${suffix}`, environment: 'test' },
      { saveDataclips: true },
    )
  ).environmentId;
}

/** An engine whose scheduler only fires on `tickOnce()`, on the given clock. */
function startEngine(
  stores: Stores,
  environmentId: string,
  workflows: readonly AnyWorkflow[],
  clock: TestClock,
  options: { worker?: boolean; missedAfterMs?: number } = {},
): Promise<Engine> {
  return Engine.start({
    stores,
    environmentId,
    workflows,
    logger: silentLogger(),
    reaperIntervalMs: false,
    timerIntervalMs: false,
    worker: options.worker ? { pollIntervalMs: 50, concurrency: 4 } : false,
    scheduler: {
      intervalMs: false,
      now: clock.now,
      missedAfterMs: options.missedAfterMs ?? 10_000,
    },
  });
}

describe.each(BACKENDS)('scheduler on %s', (backend) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
  });
  afterAll(async () => {
    await db?.close();
  });

  const runsOf = async (environmentId: string, workflowId: string) =>
    (await db.stores.runs.listRuns({ environmentId, workflowId, limit: 500 })).data.reverse();
  const inputOf = async (environmentId: string, runId: string) => {
    const run = (await db.stores.runs.getRun(environmentId, runId))!;
    return (await db.stores.runs.getDataclip(environmentId, run.inputDataclipId!))!.body;
  };

  /** One env, one workflow whose runs stay queued (no worker): active until canceled. */
  async function idleSetup(
    workflowId: string,
    schedule: Omit<ScheduleRequest, 'workflowId' | 'cron'> & { cron?: string },
    options: { missedAfterMs?: number } = {},
  ) {
    const clock = new TestClock(new Date('2026-06-01T12:00:00Z'));
    const env = await newEnvironment(db.stores);
    const wf = defineWorkflow(workflowId).step('a', () => 1);
    const engine = await startEngine(db.stores, env, [wf], clock, options);
    const s = await createSchedule(
      db.stores,
      env,
      { workflowId, cron: '* * * * *', ...schedule },
      clock.now(),
    );
    return { clock, env, engine, s };
  }

  it('previous_final_state chains over 5 ticks: each input is the previous final state', async () => {
    const clock = new TestClock(new Date('2026-06-01T12:00:05Z')); // ticks 5 s after each slot
    const env = await newEnvironment(db.stores);
    const wf = defineWorkflow<{ n: number } | null>('counter').step('count', (input) => ({
      n: (input?.n ?? 0) + 1,
      at: Date.now(),
    }));
    const engine = await startEngine(db.stores, env, [wf], clock, { worker: true });
    try {
      const s = await createSchedule(
        db.stores,
        env,
        { workflowId: 'counter', cron: '* * * * *', input: { mode: 'previous_final_state' } },
        clock.now(),
      );
      expect(s.nextSlotAt).toBe('2026-06-01T12:01:00.000Z');
      const finals: unknown[] = [];
      for (let tick = 1; tick <= 5; tick++) {
        clock.advance(MINUTE);
        const report = await engine.scheduler!.tickOnce();
        expect({ tick, ...report }).toMatchObject({ tick, fired: [{ scheduleId: s.id }] });
        const run = await engine.waitForRun(report.fired[0]!.runId, { timeoutMs: 10_000 });
        expect(run.status).toBe('succeeded');
        expect(run.trigger).toEqual({ kind: 'cron', ref: s.id });
        expect(run.idempotencyKey).toBe(`schedule:${s.id}:${report.fired[0]!.slot}`);
        const input = await inputOf(env, run.id);
        expect(input).toEqual(tick === 1 ? null : finals[tick - 2]);
        finals.push((await db.stores.runs.getDataclip(env, run.finalDataclipId!))!.body);
      }
      expect(finals.map((f) => (f as { n: number }).n)).toEqual([1, 2, 3, 4, 5]);
    } finally {
      await engine.stop();
    }
  });

  it('previous_step_output reads the named step; a manual run counts only with countManualRuns', async () => {
    const clock = new TestClock(new Date('2026-06-01T12:00:30Z'));
    const env = await newEnvironment(db.stores);
    const wf = defineWorkflow<unknown>('two-steps')
      .step('first', (input) => ({ seen: input ?? 'nothing' }))
      .step('second', { after: 'first' }, () => 'leaf');
    const engine = await startEngine(db.stores, env, [wf], clock, { worker: true });
    try {
      const counted = await createSchedule(
        db.stores,
        env,
        {
          workflowId: 'two-steps',
          cron: '0 * * * *',
          input: { mode: 'previous_step_output', step: 'first' },
          countManualRuns: true,
        },
        clock.now(),
      );
      const manual = await engine.trigger('two-steps', 'by hand');
      await engine.waitForRun(manual.run.id);
      clock.set('2026-06-01T13:00:01Z');
      const report = await engine.scheduler!.tickOnce();
      expect(report.fired.map((f) => f.scheduleId)).toEqual([counted.id]);
      const run = await engine.waitForRun(report.fired[0]!.runId);
      expect(await inputOf(env, run.id)).toEqual({ seen: 'by hand' });

      // Without countManualRuns the latest cron run is "previous", not a newer manual one.
      await db.stores.schedules.deleteSchedule(env, counted.id);
      const cronOnly = await createSchedule(
        db.stores,
        env,
        {
          workflowId: 'two-steps',
          cron: '0 * * * *',
          input: { mode: 'previous_step_output', step: 'first' },
        },
        clock.now(),
      );
      await engine.waitForRun((await engine.trigger('two-steps', 'newer by hand')).run.id);
      clock.set('2026-06-01T14:00:01Z');
      const second = await engine.scheduler!.tickOnce();
      expect(second.fired.map((f) => f.scheduleId)).toEqual([cronOnly.id]);
      expect(await inputOf(env, second.fired[0]!.runId)).toEqual({ seen: { seen: 'by hand' } });
    } finally {
      await engine.stop();
    }
  });

  it('a previous-state run is not created while the previous run is active (input resolved at start)', async () => {
    const { clock, env, engine, s } = await idleSetup('held-input', {
      input: { mode: 'previous_final_state' },
      overlap: 'allow',
    });
    try {
      clock.advance(MINUTE);
      const first = await engine.scheduler!.tickOnce();
      expect(first.fired).toHaveLength(1);
      clock.advance(MINUTE);
      const second = await engine.scheduler!.tickOnce();
      // the first run is still queued: its final state is unknown, so the slot is held
      expect(second.fired).toHaveLength(0);
      expect(second.held).toEqual([s.id]);
      expect((await db.stores.schedules.getSchedule(env, s.id))!.nextSlotHeld).toBe(true);
      await engine.cancel(first.fired[0]!.runId);
      clock.advance(5 * MINUTE); // long past: a held slot fires whatever its age
      const third = await engine.scheduler!.tickOnce();
      expect(third.fired.map((f) => f.slot)).toEqual(['2026-06-01T12:02:00.000Z']);
      expect((await db.stores.schedules.getSchedule(env, s.id))!.nextSlotAt).toBe(
        '2026-06-01T12:08:00.000Z',
      );
    } finally {
      await engine.stop();
    }
  });

  describe('overlap', () => {
    it('allow: a second run starts while the first is active', async () => {
      const { clock, env, engine } = await idleSetup('ov-allow', { overlap: 'allow' });
      try {
        clock.advance(MINUTE);
        await engine.scheduler!.tickOnce();
        clock.advance(MINUTE);
        const r = await engine.scheduler!.tickOnce();
        expect(r.fired).toHaveLength(1);
        const runs = await runsOf(env, 'ov-allow');
        expect(runs.map((x) => x.status)).toEqual(['queued', 'queued']);
      } finally {
        await engine.stop();
      }
    });

    it('skip: the slot is dropped while the first is active, the next one fires', async () => {
      const { clock, env, engine, s } = await idleSetup('ov-skip', { overlap: 'skip' });
      try {
        clock.advance(MINUTE);
        const first = await engine.scheduler!.tickOnce();
        clock.advance(MINUTE);
        const r = await engine.scheduler!.tickOnce();
        expect(r.fired).toHaveLength(0);
        expect(r.skipped).toEqual([
          { scheduleId: s.id, slot: '2026-06-01T12:02:00.000Z', reason: 'overlap' },
        ]);
        expect(await runsOf(env, 'ov-skip')).toHaveLength(1);
        await engine.cancel(first.fired[0]!.runId);
        clock.advance(MINUTE);
        const after = await engine.scheduler!.tickOnce();
        expect(after.fired.map((f) => f.slot)).toEqual(['2026-06-01T12:03:00.000Z']);
      } finally {
        await engine.stop();
      }
    });

    it('queue: the slot waits for the first run to end, then fires under its own key', async () => {
      const { clock, env, engine, s } = await idleSetup('ov-queue', { overlap: 'queue' });
      try {
        clock.advance(MINUTE);
        const first = await engine.scheduler!.tickOnce();
        clock.advance(MINUTE);
        expect((await engine.scheduler!.tickOnce()).held).toEqual([s.id]);
        clock.advance(30_000);
        expect((await engine.scheduler!.tickOnce()).fired).toHaveLength(0);
        expect(await runsOf(env, 'ov-queue')).toHaveLength(1);
        await engine.cancel(first.fired[0]!.runId);
        const r = await engine.scheduler!.tickOnce();
        expect(r.fired.map((f) => f.slot)).toEqual(['2026-06-01T12:02:00.000Z']);
        const run = (await db.stores.runs.getRun(env, r.fired[0]!.runId))!;
        expect(run.idempotencyKey).toBe(`schedule:${s.id}:2026-06-01T12:02:00.000Z`);
        const after = (await db.stores.schedules.getSchedule(env, s.id))!;
        expect(after).toMatchObject({
          nextSlotAt: '2026-06-01T12:03:00.000Z',
          nextSlotHeld: false,
        });
      } finally {
        await engine.stop();
      }
    });

    it('cancel_previous: the active run is canceled and the slot fires', async () => {
      const { clock, env, engine } = await idleSetup('ov-cancel', { overlap: 'cancel_previous' });
      try {
        clock.advance(MINUTE);
        const first = await engine.scheduler!.tickOnce();
        clock.advance(MINUTE);
        const r = await engine.scheduler!.tickOnce();
        expect(r.fired).toHaveLength(1);
        const old = (await db.stores.runs.getRun(env, first.fired[0]!.runId))!;
        expect(old.status).toBe('canceled');
        expect((await runsOf(env, 'ov-cancel')).map((x) => x.status)).toEqual([
          'canceled',
          'queued',
        ]);
      } finally {
        await engine.stop();
      }
    });
  });

  describe('catch-up after downtime (10 slots missed)', () => {
    const downtime = async (catchUp: 'none' | 'last' | 'all') => {
      const { clock, env, engine, s } = await idleSetup(`cu-${catchUp}`, {
        catchUp,
        catchUpLimit: 3,
      });
      try {
        clock.advance(10 * MINUTE + 30_000); // 12:10:30, slots 12:01 … 12:10 passed
        const r = await engine.scheduler!.tickOnce();
        const after = (await db.stores.schedules.getSchedule(env, s.id))!;
        expect(after.nextSlotAt).toBe('2026-06-01T12:11:00.000Z');
        // a second tick at the same time fires nothing more
        expect((await engine.scheduler!.tickOnce()).fired).toHaveLength(0);
        return { fired: r.fired.map((f) => f.slot), runs: await runsOf(env, `cu-${catchUp}`) };
      } finally {
        await engine.stop();
      }
    };

    it('none: no missed slot fires', async () => {
      const { fired, runs } = await downtime('none');
      expect(fired).toEqual([]);
      expect(runs).toHaveLength(0);
    });

    it('last: only the latest slot fires', async () => {
      const { fired, runs } = await downtime('last');
      expect(fired).toEqual(['2026-06-01T12:10:00.000Z']);
      expect(runs).toHaveLength(1);
    });

    it('all: every slot, bounded by catchUpLimit (the latest 3), oldest first', async () => {
      const { fired, runs } = await downtime('all');
      expect(fired).toEqual([
        '2026-06-01T12:08:00.000Z',
        '2026-06-01T12:09:00.000Z',
        '2026-06-01T12:10:00.000Z',
      ]);
      expect(runs).toHaveLength(3);
    });

    it('none still fires an on-time slot', async () => {
      const { clock, engine } = await idleSetup('cu-on-time', { catchUp: 'none' });
      try {
        clock.advance(MINUTE + 2_000);
        expect((await engine.scheduler!.tickOnce()).fired).toHaveLength(1);
      } finally {
        await engine.stop();
      }
    });
  });

  describe('DST (hourly ticks across the transition)', () => {
    const firedAcross = async (
      workflowId: string,
      cron: string,
      timezone: string,
      from: string,
      hours: number,
    ) => {
      const clock = new TestClock(new Date(from));
      const env = await newEnvironment(db.stores);
      const engine = await startEngine(
        db.stores,
        env,
        [defineWorkflow(workflowId).step('a', () => 1)],
        clock,
      );
      try {
        await createSchedule(db.stores, env, { workflowId, cron, timezone }, clock.now());
        const fired: string[] = [];
        for (let h = 0; h < hours * 4; h++) {
          clock.advance(15 * MINUTE);
          fired.push(...(await engine.scheduler!.tickOnce()).fired.map((f) => f.slot));
        }
        expect(await runsOf(env, workflowId)).toHaveLength(fired.length);
        return fired;
      } finally {
        await engine.stop();
      }
    };

    it('Europe/London spring forward: 01:30 fires once at 02:00 BST', async () => {
      expect(
        await firedAcross('ldn-spring', '30 1 * * *', 'Europe/London', '2026-03-28T00:00:00Z', 72),
      ).toEqual([
        '2026-03-28T01:30:00.000Z',
        '2026-03-29T01:00:00.000Z',
        '2026-03-30T00:30:00.000Z',
      ]);
    });

    it('Europe/London fall back: 01:30 fires once, on the BST occurrence', async () => {
      expect(
        await firedAcross('ldn-fall', '30 1 * * *', 'Europe/London', '2026-10-24T00:00:00Z', 72),
      ).toEqual([
        '2026-10-24T00:30:00.000Z',
        '2026-10-25T00:30:00.000Z',
        '2026-10-26T01:30:00.000Z',
      ]);
    });

    it('America/New_York spring forward: 02:30 fires once at 03:00 EDT', async () => {
      expect(
        await firedAcross(
          'ny-spring',
          '30 2 * * *',
          'America/New_York',
          '2026-03-07T00:00:00Z',
          72,
        ),
      ).toEqual([
        '2026-03-07T07:30:00.000Z',
        '2026-03-08T07:00:00.000Z',
        '2026-03-09T06:30:00.000Z',
      ]);
    });

    it('America/New_York fall back: hourly at :30 skips the repeated 01:30', async () => {
      const fired = await firedAcross(
        'ny-fall',
        '30 * * * *',
        'America/New_York',
        '2026-11-01T04:00:00Z', // 00:00 EDT
        4,
      );
      expect(fired).toEqual([
        '2026-11-01T04:30:00.000Z', // 00:30 EDT
        '2026-11-01T05:30:00.000Z', // 01:30 EDT (first occurrence)
        // 06:30Z is 01:30 EST, the repeat: nothing
        '2026-11-01T07:30:00.000Z', // 02:30 EST
      ]);
    });
  });

  it(
    '3 schedulers with skewed clocks racing on one database: exactly one run per slot',
    { timeout: 120_000 },
    async () => {
      const env = await newEnvironment(db.stores);
      const wf = defineWorkflow('raced').step('a', () => 1);
      const base = new TestClock(new Date('2026-06-01T12:00:00Z'));
      const skews = [-1_500, 0, 2_500];
      const clocks = skews.map((ms) => new TestClock(new Date(base.t.getTime() + ms)));
      // PostgreSQL: three stores with their own pools, as three processes would have.
      const extra: Stores[] = [];
      const storesFor = (i: number): Stores => {
        if (backend === 'pglite' || i === 0) return db.stores;
        const stores = createStores({
          control: createPgExecutor({ connectionString: db.url!, max: 4 }),
        });
        extra.push(stores);
        return stores;
      };
      const engines = await Promise.all(
        clocks.map((clock, i) => startEngine(storesFor(i), env, [wf], clock)),
      );
      try {
        const s = await createSchedule(
          db.stores,
          env,
          {
            workflowId: 'raced',
            cron: '*/10 * * * * *',
            input: { mode: 'static', value: { x: 1 } },
          },
          base.now(),
        );
        let contended = 0;
        for (let i = 0; i < 15; i++) {
          const step = 3_000 + Math.floor(Math.random() * 5_000);
          base.advance(step);
          clocks.forEach((c) => c.advance(step));
          const reports = await Promise.all(engines.map((e) => e.scheduler!.tickOnce()));
          contended += reports.reduce(
            (n, r) => n + r.lost.length + r.fired.filter((x) => x.deduplicated).length,
            0,
          );
        }
        // the schedulers really did fire the same slots concurrently
        expect(contended).toBeGreaterThan(0);
        // every slot up to the slowest clock, once each
        const lastSlot = Math.floor((base.t.getTime() + skews[0]!) / 10_000) * 10_000;
        const expected = (lastSlot - Date.parse('2026-06-01T12:00:00Z')) / 10_000;
        const runs = await runsOf(env, 'raced');
        const keys = runs.map((r) => r.idempotencyKey);
        expect(new Set(keys).size).toBe(keys.length);
        expect(runs.length).toBeGreaterThanOrEqual(expected);
        expect(runs.length).toBeLessThanOrEqual(expected + 1);
        const slots = keys.map((k) => Date.parse(k!.slice(`schedule:${s.id}:`.length))).sort();
        slots.forEach((t, i) => expect(t).toBe(Date.parse('2026-06-01T12:00:10Z') + i * 10_000));
      } finally {
        await Promise.all(engines.map((e) => e.stop()));
        await Promise.all(extra.map((x) => x.close()));
      }
    },
  );

  it('schedules declared in code are upserted by name on start, keeping their next slot', async () => {
    const env = await newEnvironment(db.stores);
    const wf = defineWorkflow('coded').step('a', () => 1);
    const clock = new TestClock(new Date('2026-06-01T12:00:30Z'));
    const options = (extra: Record<string, unknown> = {}) => ({
      stores: db.stores,
      environmentId: env,
      workflows: [wf],
      logger: silentLogger(),
      reaperIntervalMs: false as const,
      timerIntervalMs: false as const,
      worker: false as const,
      scheduler: { intervalMs: false as const, now: clock.now },
      schedules: [
        {
          name: 'nightly',
          workflowId: 'coded',
          cron: '0 2 * * *',
          timezone: 'Europe/London',
          ...extra,
        },
      ],
    });
    const first = await Engine.start(options());
    await first.stop();
    const [created] = await db.stores.schedules.listSchedules(env);
    expect(created).toMatchObject({ name: 'nightly', source: 'code', cron: '0 2 * * *' });
    expect(created!.nextSlotAt).toBe('2026-06-02T01:00:00.000Z');
    clock.advance(3_600_000);
    const second = await Engine.start(options({ overlap: 'skip' }));
    await second.stop();
    const list = await db.stores.schedules.listSchedules(env);
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({
      id: created!.id,
      overlap: 'skip',
      nextSlotAt: created!.nextSlotAt,
    });
    await expect(Engine.start(options({ cron: 'every day' }))).rejects.toThrow(
      /schedule `nightly` of workflow `coded`.*"every day", which does not parse/,
    );
  });
});
