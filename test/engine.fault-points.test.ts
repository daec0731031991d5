/**
 * Crashes at exact moments, in-process, through the worker's fault points (`WorkerOptions.faults`):
 * a fault that throws ends the worker's handling of that attempt there, as if the process had
 * died at that point — the attempt keeps its claim until the lease expires and the reaper marks it
 * `lost`. On PGlite and PostgreSQL.
 *
 * - beforeCommit (the code ran, the commit never happened): nothing of the attempt is kept — no
 *   output dataclip, no state patch — and the retry sees the state as it was before it.
 *   Catches: a state patch or output written before the commit, or outside its transaction.
 * - afterCommit (the commit happened, the process died before going on): the output is kept, the
 *   step is not run again, and the successor the commit handed to the dead chain is recovered.
 *   Catches: a commit that is not durable on return, a successor stuck `running` forever.
 * - beforeExecute (claimed, the code never started): the attempt row was already written, the
 *   attempt counts and is reaped as `lost`; the code starts only on the retry.
 *   Catches: an attempt written after the code starts, a crash that does not use up an attempt.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import type { Engine } from '../src/engine/engine.js';
import type { WorkerOptions } from '../src/engine/worker.js';
import type { ClaimedStep } from '../src/store/rows.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';
import { startTestEngine } from './support/engine.js';
import { eventually, sleep } from './support/crash-process.js';

// Long enough that, on a loaded CI machine, the dead attempt's lease is still running when the
// test first asks the reaper (which must then take nothing); short enough to keep the test quick.
const LEASE_MS = 2_000;

/** A fault that "kills the process" once, at the first claim that matches. */
function crashOnce(match: (claim: ClaimedStep) => boolean) {
  let resolveCrash!: (claim: ClaimedStep) => void;
  const crashed = new Promise<ClaimedStep>((resolve) => (resolveCrash = resolve));
  let done = false;
  const fault = (claim: ClaimedStep): void => {
    if (done || !match(claim)) return;
    done = true;
    resolveCrash(claim);
    throw new Error(
      `fault: the process dies here (step ${claim.stepKey}, attempt ${claim.attempt})`,
    );
  };
  return { fault, crashed };
}

describe.each(BACKENDS)('crashes at fault points on %s', (backend) => {
  let db: TestDatabase;
  let loc: string;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
    loc = db.stores.schemas.locations[0]!;
  });
  afterAll(async () => {
    await db?.close();
  });

  // The reaper is driven by hand (reapOnce) so each test can look at the rows in between.
  const start = (
    workflow: Parameters<typeof startTestEngine>[1][number],
    faults: WorkerOptions['faults'],
  ) =>
    startTestEngine(db.stores, [workflow], {
      reaperIntervalMs: false,
      worker: { leaseMs: LEASE_MS, heartbeatMs: 100, pollIntervalMs: 20, faults },
    });
  const stateOf = async (runId: string) =>
    (
      await db.executor.query<{ state: unknown }>(`select state from ${loc}.runs where id = $1`, [
        runId,
      ])
    ).rows[0]!.state;
  const outputsOf = async (runId: string) =>
    (
      await db.executor.query<{ body: unknown }>(
        `select body from ${loc}.dataclips where run_id = $1 and kind = 'output' order by created_at, id`,
        [runId],
      )
    ).rows.map((r) => r.body);
  const stepOf = async (engine: Engine, runId: string, key: string) => {
    const step = (await engine.stores.runs.listStepRuns(engine.environmentId, runId))!.find(
      (s) => s.stepKey === key,
    )!;
    return {
      status: step.status,
      output: step.outputDataclipId,
      attempts: step.attempts.map((a) => [a.number, a.status]),
    };
  };
  /** The reaper leaves the abandoned attempt alone while its lease runs, then takes it. */
  const reapAfterExpiry = async (engine: Engine) => {
    expect(await engine.reapOnce()).toBe(0);
    await eventually(
      'the abandoned lease to expire and be reaped',
      async () => ((await engine.reapOnce()) > 0 ? true : undefined),
      10_000,
    );
  };

  it('beforeCommit: the code ran but nothing of it is kept (no output, no state patch); reaped as lost, the retry sees the old state', async () => {
    const seen: Array<{ attempt: number; count: unknown }> = [];
    const wf = defineWorkflow<number>('fp-before-commit')
      .step('seed', (n, ctx) => {
        ctx.state.count = n;
        return { seeded: n };
      })
      .step('bump', { after: 'seed', retry: { maxAttempts: 3 } }, (_seeded, ctx) => {
        const count = ctx.state.count as number;
        seen.push({ attempt: ctx.attempt, count });
        ctx.state.count = count + 1;
        ctx.state.bumpedBy = ctx.attempt;
        return { attempt: ctx.attempt, saw: count };
      });
    const { fault, crashed } = crashOnce((c) => c.stepId === 'bump');
    const engine = await start(wf, { beforeCommit: fault });
    try {
      const { run } = await engine.trigger('fp-before-commit', 41);
      await crashed;
      await sleep(100); // anything the dead attempt could still write would land now

      expect(seen).toEqual([{ attempt: 1, count: 41 }]);
      expect(await stepOf(engine, run.id, 'bump')).toEqual({
        status: 'running',
        output: null,
        attempts: [[1, 'running']],
      });
      expect(await stateOf(run.id)).toEqual({ count: 41 });
      expect(await outputsOf(run.id)).toEqual([{ seeded: 41 }]);

      await reapAfterExpiry(engine);
      const done = await engine.waitForRun(run.id, { timeoutMs: 15_000 });
      expect([done.status, done.error]).toEqual(['succeeded', null]);
      expect(seen).toEqual([
        { attempt: 1, count: 41 },
        { attempt: 2, count: 41 },
      ]);
      const bump = await stepOf(engine, run.id, 'bump');
      expect(bump.attempts).toEqual([
        [1, 'lost'],
        [2, 'succeeded'],
      ]);
      expect(await stateOf(run.id)).toEqual({ count: 42, bumpedBy: 2 });
      expect(await outputsOf(run.id)).toEqual([{ seeded: 41 }, { attempt: 2, saw: 41 }]);
    } finally {
      await engine.stop();
    }
  });

  it('afterCommit: the output is kept and the step never runs again; the successor handed to the dead chain is reaped and run', async () => {
    const executions: string[] = [];
    const wf = defineWorkflow<number>('fp-after-commit')
      .step('x', (n, ctx) => {
        executions.push(`x#${ctx.attempt}`);
        ctx.state.x = true;
        return n * 10;
      })
      .step('y', { after: 'x' }, (v, ctx) => {
        executions.push(`y#${ctx.attempt}`);
        return v + 1;
      });
    const { fault, crashed } = crashOnce((c) => c.stepId === 'x');
    const engine = await start(wf, { afterCommit: fault });
    try {
      const { run } = await engine.trigger('fp-after-commit', 4);
      await crashed;
      await sleep(100);

      // x committed in full before the crash; its commit also claimed y for this (now dead) worker.
      expect(await stepOf(engine, run.id, 'x')).toMatchObject({
        status: 'succeeded',
        attempts: [[1, 'succeeded']],
      });
      expect(await stateOf(run.id)).toEqual({ x: true });
      expect(await outputsOf(run.id)).toEqual([40]);
      expect(await stepOf(engine, run.id, 'y')).toEqual({
        status: 'running',
        output: null,
        attempts: [[1, 'running']],
      });
      expect(executions).toEqual(['x#1']);

      await reapAfterExpiry(engine);
      const done = await engine.waitForRun(run.id, { timeoutMs: 15_000 });
      expect([done.status, done.error]).toEqual(['succeeded', null]);
      expect(executions).toEqual(['x#1', 'y#2']);
      expect((await stepOf(engine, run.id, 'x')).attempts).toEqual([[1, 'succeeded']]);
      expect((await stepOf(engine, run.id, 'y')).attempts).toEqual([
        [1, 'lost'],
        [2, 'succeeded'],
      ]);
      expect(await outputsOf(run.id)).toEqual([40, 41]);
    } finally {
      await engine.stop();
    }
  });

  it('beforeExecute: the attempt is durable before the code starts, counts when the process dies there, and is reaped as lost', async () => {
    const executions: number[] = [];
    const durable: Array<[number, string | undefined]> = [];
    const wf = defineWorkflow('fp-before-execute').step(
      'guarded',
      { retry: { maxAttempts: 2 } },
      (_input, ctx) => {
        executions.push(ctx.attempt);
        return { ran: ctx.attempt };
      },
    );
    const { fault, crashed } = crashOnce((c) => c.stepId === 'guarded');
    const engine = await start(wf, {
      beforeExecute: async (claim) => {
        const row = await db.executor.query<{ status: string }>(
          `select status from ${loc}.attempts where step_run_id = $1 and number = $2`,
          [claim.stepRunId, claim.attempt],
        );
        durable.push([claim.attempt, row.rows[0]?.status]);
        fault(claim);
      },
    });
    try {
      const { run } = await engine.trigger('fp-before-execute', null);
      await crashed;
      await sleep(100);

      expect(executions).toEqual([]);
      expect(await stepOf(engine, run.id, 'guarded')).toEqual({
        status: 'running',
        output: null,
        attempts: [[1, 'running']],
      });

      await reapAfterExpiry(engine);
      const done = await engine.waitForRun(run.id, { timeoutMs: 15_000 });
      expect([done.status, done.error]).toEqual(['succeeded', null]);
      // Each attempt row existed, `running`, before the code could start.
      expect(durable).toEqual([
        [1, 'running'],
        [2, 'running'],
      ]);
      expect(executions).toEqual([2]);
      expect((await stepOf(engine, run.id, 'guarded')).attempts).toEqual([
        [1, 'lost'],
        [2, 'succeeded'],
      ]);
      expect(await outputsOf(run.id)).toEqual([{ ran: 2 }]);
    } finally {
      await engine.stop();
    }
  });
});
