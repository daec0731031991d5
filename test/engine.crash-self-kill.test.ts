/**
 * "maxAttempts: 3 means at most three starts of the code, whatever crashes happen" (docs/semantics.md),
 * with real processes on PostgreSQL: the step `boom` kills its own worker process (SIGKILL) each
 * time it starts, after recording the start through a separate connection. Whoever restarts the
 * worker, however often, the code starts exactly three times; the reaper marks each attempt
 * `lost` and, after the third, fails the run.
 *
 * Catches: a reaper that requeues without counting the lost attempt (a 4th, 5th… start), a claim
 * that does not write the attempt before the code runs, a lost attempt left `running`.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/engine/engine.js';
import { TERMINAL_RUN_STATUSES } from '../src/store/rows.js';
import { openTestDatabase, type TestDatabase } from './support/databases.js';
import { startTestEngine } from './support/engine.js';
import {
  CrashWorker,
  createStartsTable,
  killCrashWorkers,
  listStarts,
  sleep,
} from './support/crash-process.js';

describe('a step that kills its own worker process (PostgreSQL, real processes)', () => {
  let db: TestDatabase;
  let engine: Engine;
  beforeAll(async () => {
    db = await openTestDatabase('postgres');
    await createStartsTable(db.executor);
    // The test process triggers, observes and reaps; the workers are child processes.
    engine = await startTestEngine(db.stores, [], { worker: false, reaperIntervalMs: 100 });
  });
  afterEach(async () => {
    await killCrashWorkers();
  });
  afterAll(async () => {
    await engine?.stop();
    await db?.close();
  });

  it('starts the step exactly maxAttempts (3) times however often the worker restarts, and fails the run with 3 lost attempts', async () => {
    const leaseMs = 1000;
    const options = {
      databaseUrl: db.url!,
      environmentId: engine.environmentId,
      leaseMs,
      heartbeatMs: 200,
    };
    const workers: CrashWorker[] = [];
    const startWorker = async () => {
      const w = await CrashWorker.start({ ...options, workerId: `selfkill-${workers.length + 1}` });
      workers.push(w);
      return w;
    };

    let worker = await startWorker();
    const { run } = await engine.trigger('crash-self-kill', 'payload');

    // Keep a worker running: restart it at once every time it dies, until the run has ended.
    const deadline = Date.now() + 40_000;
    for (;;) {
      const current = await engine.stores.runs.getRun(engine.environmentId, run.id);
      if (TERMINAL_RUN_STATUSES.includes(current!.status)) break;
      if (Date.now() > deadline)
        throw new Error(`run ${run.id} still ${current!.status} after 40 s`);
      const started = (await listStarts(db.executor, [run.id])).filter(
        (s) => s.step_key === 'boom',
      );
      expect(started.length, 'starts of `boom` so far').toBeLessThanOrEqual(3);
      if (!worker.alive) worker = await startWorker();
      await sleep(25);
    }

    // Restarting more workers later changes nothing: no fourth start, ever.
    await startWorker();
    await startWorker();
    await sleep(leaseMs * 2);

    const done = await engine.waitForRun(run.id);
    expect(done.status).toBe('failed');
    expect(done.error).toMatchObject({ stepKey: 'boom' });

    const steps = await engine.stores.runs.listStepRuns(engine.environmentId, run.id);
    const prep = steps!.find((s) => s.stepKey === 'prep')!;
    const boom = steps!.find((s) => s.stepKey === 'boom')!;
    expect(prep.status).toBe('succeeded');
    expect(prep.attempts.map((a) => a.status)).toEqual(['succeeded']);
    expect(boom.status).toBe('failed');
    expect(boom.attemptCount).toBe(3);
    expect(boom.attempts.map((a) => [a.number, a.status])).toEqual([
      [1, 'lost'],
      [2, 'lost'],
      [3, 'lost'],
    ]);
    for (const a of boom.attempts) expect(a.error).toMatchObject({ code: 'lease_lost' });

    // The durable record of starts, written before each kill: exactly three, one per attempt,
    // each by a different process, all with the step run's stable idempotency key.
    const starts = (await listStarts(db.executor, [run.id])).filter((s) => s.step_key === 'boom');
    expect(starts.map((s) => s.attempt)).toEqual([1, 2, 3]);
    expect(new Set(starts.map((s) => s.worker_id)).size).toBe(3);
    expect(new Set(starts.map((s) => s.idempotency_key))).toEqual(new Set([boom.id]));
    // Each start matches the attempt row written (by the claim) for the process that ran it.
    expect(starts.map((s) => s.worker_id)).toEqual(boom.attempts.map((a) => a.workerId));

    // Exactly the three processes that ran `boom` died, each by its own SIGKILL.
    const died = await Promise.all(workers.filter((w) => !w.alive).map((w) => w.exited));
    expect(died).toEqual([1, 2, 3].map(() => ({ code: null, signal: 'SIGKILL' })));
    expect(workers.length).toBeGreaterThanOrEqual(5);
  });
});
