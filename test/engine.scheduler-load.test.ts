/**
 * Regressions of issue 7 for the scheduler, on PGlite and PostgreSQL:
 *
 * - A per-second schedule some minutes behind froze the process: `CronSchedule.next()` stepped
 *   through ~10,800 matches per call (~0.5 s, synchronously) for every due slot, so a tick with
 *   held slots took seconds to minutes and nothing else ran meanwhile. Catches: slot math that is
 *   not O(1)-ish per slot, a tick that holds the event loop.
 * - A PATCH (disable, countManualRuns) committed while a tick was under way did not take effect
 *   until the tick ended: a run of a disabled schedule was created 3.7 s after the disable.
 *   Catches: firing from the due list read at the start of the tick.
 */
import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import { Engine } from '../src/engine/engine.js';
import { silentLogger } from '../src/engine/logger.js';
import { createSchedule, updateSchedule, type SchedulerOptions } from '../src/engine/scheduler.js';
import type { Stores } from '../src/store/stores.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';
import { sleep } from './support/crash-process.js';

async function newEnvironment(stores: Stores): Promise<string> {
  const suffix = randomBytes(4).toString('hex');
  return (
    await stores.control.createTenant(
      { organization: `org-${suffix}`, project: `prj-${suffix}`, environment: 'test' },
      { saveDataclips: true },
    )
  ).environmentId;
}

describe.each(BACKENDS)('scheduler under load on %s', (backend) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
  });
  afterAll(async () => {
    await db?.close();
  });

  const start = async (workflowIds: string | string[], scheduler: SchedulerOptions) => {
    const env = await newEnvironment(db.stores);
    const engine = await Engine.start({
      stores: db.stores,
      environmentId: env,
      workflows: [workflowIds]
        .flat()
        .map((id) => defineWorkflow(id).step('a', () => ({ at: Date.now() }))),
      logger: silentLogger(),
      reaperIntervalMs: false,
      timerIntervalMs: false,
      worker: false,
      scheduler,
    });
    return { env, engine };
  };

  it('a per-second schedule 5 minutes behind: ticks are quick and never block the event loop', async () => {
    let clock = new Date('2026-06-01T12:00:00.300Z');
    const { env, engine } = await start(['every-second', 'every-second-held'], {
      intervalMs: false,
      now: () => clock,
    });
    const loop = monitorEventLoopDelay({ resolution: 5 });
    try {
      const all = await createSchedule(
        db.stores,
        env,
        { workflowId: 'every-second', cron: '* * * * * *', catchUp: 'all', catchUpLimit: 20 },
        clock,
      );
      // previous-run input: the slot is held while the first run is queued (no worker), and a
      // held slot is re-examined every tick — the case whose ticks grew 2.8 s → 35 s
      const held = await createSchedule(
        db.stores,
        env,
        {
          workflowId: 'every-second-held',
          cron: '* * * * * *',
          input: { mode: 'previous_final_state' },
          catchUp: 'last',
        },
        clock,
      );
      clock = new Date(clock.getTime() + 5 * 60_000); // 300 slots behind
      const durations: number[] = [];
      for (let tick = 0; tick < 5; tick++) {
        // the first tick creates 21 runs (on PGlite the database runs on this thread too): the
        // event-loop bound is for the ticks that re-examine the held slot, as the did
        if (tick === 1) loop.enable();
        const started = performance.now();
        const report = await engine.scheduler!.tickOnce();
        durations.push(performance.now() - started);
        if (tick === 0) {
          expect(report.fired.filter((f) => f.scheduleId === all.id)).toHaveLength(20);
          expect(report.fired.filter((f) => f.scheduleId === held.id)).toHaveLength(1);
        } else {
          expect(report.held).toContain(held.id);
        }
        clock = new Date(clock.getTime() + 1000);
      }
      loop.disable();
      // generous correctness bounds (the old slot math took ~0.5 s per slot: minutes here)
      expect(Math.max(...durations.slice(1))).toBeLessThan(1000);
      expect(durations[0]).toBeLessThan(5000);
      expect(loop.max / 1e6).toBeLessThan(250);
      const after = (await db.stores.schedules.getSchedule(env, all.id))!;
      expect(after.nextSlotAt).toBe(
        new Date(Math.floor(clock.getTime() / 1000) * 1000).toISOString(),
      );
    } finally {
      loop.disable();
      await engine.stop();
    }
  });

  it('a disable committed after a tick read its due schedules stops that tick from firing', async () => {
    let clock = new Date('2026-06-01T12:00:00.300Z');
    let env = '';
    let scheduleId = '';
    const { env: e, engine } = await start('disable-mid-tick', {
      intervalMs: false,
      now: () => clock,
      faults: {
        afterDueRead: async () => {
          await updateSchedule(db.stores, env, scheduleId, { enabled: false }, clock);
        },
      },
    });
    env = e;
    try {
      const s = await createSchedule(
        db.stores,
        env,
        { workflowId: 'disable-mid-tick', cron: '* * * * * *', catchUp: 'all' },
        clock,
      );
      scheduleId = s.id;
      clock = new Date(clock.getTime() + 5000);
      const report = await engine.scheduler!.tickOnce();
      expect(report.fired).toEqual([]);
      expect(report.lost).toEqual([s.id]);
      const runs = await db.stores.runs.listRuns({ environmentId: env, limit: 10 });
      expect(runs.data).toEqual([]);
    } finally {
      await engine.stop();
    }
  });

  it(
    'on the real clock: no run is created after a PATCH disable returned',
    { timeout: 20_000 },
    async () => {
      const { env, engine } = await start('disable-real-clock', { intervalMs: 100 });
      try {
        const s = await createSchedule(db.stores, env, {
          workflowId: 'disable-real-clock',
          cron: '* * * * * *',
        });
        const listRuns = async () =>
          (await db.stores.runs.listRuns({ environmentId: env, limit: 100 })).data;
        for (let i = 0; i < 100 && (await listRuns()).length < 2; i++) await sleep(100);
        await updateSchedule(db.stores, env, s.id, { enabled: false });
        const disabledAt = Date.now();
        await sleep(2500);
        const late = (await listRuns()).filter(
          (r) => new Date(r.createdAt).getTime() > disabledAt + 50,
        );
        expect(late).toEqual([]);
      } finally {
        await engine.stop();
      }
    },
  );
});
