/**
 * RunStore.releaseAttempt — giving an attempt back uncharged when the database, not the step,
 * failed — and heldStepRuns, on both databases: released with a valid lease (the owner's fence)
 * and with an expired one (not yet reaped); the budget grows by one so the next claim may run;
 * refused (fenced, nothing changed) for another worker, a reaped attempt (it stays charged) and a
 * canceled run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileWorkflow } from '../src/core/graph.js';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';
import { startTestEngine } from './support/engine.js';
import { createStoreRun } from './support/store-runs.js';

const dbError = { code: 'database_unavailable', charged: false, message: 'test' };

describe.each(BACKENDS)('releasing an attempt uncharged on %s', (backend) => {
  let db: TestDatabase;
  let environmentId: string;
  let loc: string;
  const compiled = compileWorkflow(
    defineWorkflow('once')
      .step('a', { retry: { maxAttempts: 1 } }, () => 1)
      .step('b', { after: 'a' }, () => 2),
  );

  beforeAll(async () => {
    db = await openTestDatabase(backend);
    loc = db.stores.schemas.locations[0]!;
    ({ environmentId } = await db.stores.control.createTenant({
      organization: 'o',
      project: 'p',
      environment: 'release',
    }));
    await db.stores.control.registerWorkflow(environmentId, compiled);
  });
  afterAll(async () => {
    await db?.close();
  });

  async function startRun() {
    const run = await createStoreRun(db.stores, environmentId, compiled);
    const [claim] = await db.stores.runs.claimSteps('w1', [environmentId], ['once'], 1, 60_000);
    expect(claim).toMatchObject({ runId: run.id, stepKey: 'a', attempt: 1, maxAttempts: 1 });
    return claim!;
  }

  const attempts = async (stepRunId: string) =>
    (
      await db.executor.query<{ number: number; status: string; code: string | null }>(
        `select number, status, error->>'code' as code from ${loc}.attempts where step_run_id = $1 order by number`,
        [stepRunId],
      )
    ).rows;

  it('with a valid lease: the attempt is lost uncharged, the step ready at once with one more attempt', async () => {
    const claim = await startRun();
    expect(await db.stores.runs.heldStepRuns(claim.runId, 'w1')).toMatchObject([
      { stepRunId: claim.stepRunId, attempt: 1 },
    ]);
    expect(await db.stores.runs.releaseAttempt(claim, 'other-worker', dbError)).toBe('fenced');
    expect(await db.stores.runs.releaseAttempt(claim, 'w1', dbError)).toBe('released');
    expect(await db.stores.runs.heldStepRuns(claim.runId, 'w1')).toEqual([]);
    expect(await attempts(claim.stepRunId)).toEqual([
      { number: 1, status: 'lost', code: 'database_unavailable' },
    ]);
    // maxAttempts 1 and one attempt used: without the release the step could not run again.
    const [again] = await db.stores.runs.claimSteps('w2', [environmentId], ['once'], 5, 60_000);
    expect(again).toMatchObject({ stepRunId: claim.stepRunId, attempt: 2, maxAttempts: 2 });
    // a second release of the same (old) attempt changes nothing
    expect(await db.stores.runs.releaseAttempt(claim, 'w1', dbError)).toBe('fenced');
  });

  it('with an expired lease not yet reaped: released too', async () => {
    const claim = await startRun();
    await db.executor.query(
      `update ${loc}.step_runs set lease_expires_at = now() - interval '1 second' where id = $1`,
      [claim.stepRunId],
    );
    expect(await db.stores.runs.releaseAttempt(claim, 'w1', dbError)).toBe('released');
    const [again] = await db.stores.runs.claimSteps('w2', [environmentId], ['once'], 5, 60_000);
    expect(again).toMatchObject({ stepRunId: claim.stepRunId, attempt: 2, maxAttempts: 2 });
  });

  it('a reaped attempt stays charged, and a canceled run is left alone', async () => {
    const reaped = await startRun();
    await db.executor.query(
      `update ${loc}.step_runs set lease_expires_at = now() - interval '1 second' where id = $1`,
      [reaped.stepRunId],
    );
    expect(await db.stores.runs.reapExpiredLeases()).toBeGreaterThanOrEqual(1);
    expect(await db.stores.runs.releaseAttempt(reaped, 'w1', dbError)).toBe('fenced');
    // maxAttempts 1, reaped: the step failed, and so did the run
    expect((await db.stores.runs.getRun(environmentId, reaped.runId))?.status).toBe('failed');
    expect(await attempts(reaped.stepRunId)).toEqual([
      { number: 1, status: 'lost', code: 'lease_lost' },
    ]);

    const canceled = await startRun();
    await db.stores.runs.cancelRun(environmentId, canceled.runId, 'test');
    expect(await db.stores.runs.releaseAttempt(canceled, 'w1', dbError)).toBe('fenced');
    expect((await db.stores.runs.getRun(environmentId, canceled.runId))?.status).toBe('canceled');
  });

  it('a control node (unlimited budget, the integer maximum) is released without overflowing it', async () => {
    const claim = await startRun();
    // A sleep, forEach or sub-workflow transition has max_attempts = 2147483647 (unlimited): the
    // release used to add one and fail with "integer out of range", retrying for ten minutes.
    await db.executor.query(`update ${loc}.step_runs set max_attempts = 2147483647 where id = $1`, [
      claim.stepRunId,
    ]);
    expect(await db.stores.runs.releaseAttempt(claim, 'w1', dbError)).toBe('released');
    const budget = await db.executor.query<{ max_attempts: number; status: string }>(
      `select max_attempts, status from ${loc}.step_runs where id = $1`,
      [claim.stepRunId],
    );
    expect(budget.rows).toEqual([{ max_attempts: 2147483647, status: 'ready' }]);
  });

  it('a commit whose reply was lost: the retry is fenced, and the next step that commit claimed is released at once, not after its lease', async () => {
    let cut = false;
    const wf = defineWorkflow('ack-lost')
      .step('a', () => 'A')
      .step('b', { after: 'a' }, (a) => `${a}B`);
    const engine = await startTestEngine(db.stores, [wf], {
      worker: {
        leaseMs: 30_000,
        faults: {
          // The first commit of `a` went through (and claimed `b` for this worker); its
          // acknowledgement is "lost": the worker sees a dropped connection.
          afterCommitBeforeAck: (claim) => {
            if (claim.stepKey !== 'a' || cut) return;
            cut = true;
            throw new Error('Connection terminated unexpectedly');
          },
        },
      },
    });
    try {
      const started = Date.now();
      const done = await engine.waitForRun((await engine.trigger('ack-lost', null)).run.id, {
        timeoutMs: 20_000,
      });
      expect(cut).toBe(true);
      expect(done.status).toBe('succeeded');
      // b's claim from the lost reply was released, not left to its 30 s lease
      expect(Date.now() - started).toBeLessThan(10_000);
      const steps = (await db.stores.runs.listStepRuns(engine.environmentId, done.id))!;
      const byKey = Object.fromEntries(
        steps.map((s) => [s.stepKey, s.attempts.map((a) => [a.number, a.status, a.error?.code])]),
      );
      expect(byKey.a).toEqual([[1, 'succeeded', undefined]]);
      expect(byKey.b).toEqual([
        [1, 'lost', 'database_unavailable'],
        [2, 'succeeded', undefined],
      ]);
    } finally {
      await engine.stop();
    }
  });
});
