/**
 * "A worker whose lease expired (paused, partitioned, slow) cannot commit; its late commit is
 * rejected and logged" (docs/semantics.md), with real processes on PostgreSQL.
 *
 * Worker A runs attempt 1 of `slow` and is frozen mid-step (SIGSTOP). Its lease expires, the
 * reaper marks the attempt `lost` and requeues the step, worker B runs attempt 2. Then A is
 * continued (SIGCONT): its step returns at once and A sends its commit — while B still holds the
 * lease, or after B has committed. The commit must be rejected: the step's output is committed
 * exactly once, by attempt 2, and nothing A produced (output, state patch, successor input)
 * appears anywhere.
 *
 * A freezes itself (`process.kill(process.pid, 'SIGSTOP')` in the step, see crash-workflows.ts)
 * so the pause lands exactly mid-step and, once continued, the late commit is really sent rather
 * than preempted by A's heartbeat noticing the lost lease. The "late commit rejected" line in A's
 * log proves the commit reached the fence.
 *
 * Catches: a commit fenced by status only (B's attempt is `running` too), by lease expiry only
 * (B's lease is valid), or not fenced at all; a reaper that takes a lease still held.
 */
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/engine/engine.js';
import { openTestDatabase, type TestDatabase } from './support/databases.js';
import { startTestEngine } from './support/engine.js';
import {
  CrashWorker,
  createStartsTable,
  eventually,
  killCrashWorkers,
  listStarts,
  sleep,
} from './support/crash-process.js';

/** Whether a process is stopped (state `T` in /proc/<pid>/stat). */
function isStopped(pid: number): boolean {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
}

describe('lease fencing of a paused worker (PostgreSQL, real processes)', () => {
  let db: TestDatabase;
  let engine: Engine;
  let loc: string;
  beforeAll(async () => {
    db = await openTestDatabase('postgres');
    loc = db.stores.schemas.locations[0]!;
    await createStartsTable(db.executor);
    engine = await startTestEngine(db.stores, [], { worker: false, reaperIntervalMs: 100 });
  });
  afterEach(async () => {
    await killCrashWorkers();
  });
  afterAll(async () => {
    await engine?.stop();
    await db?.close();
  });

  const outputsOf = async (runId: string) =>
    (
      await db.executor.query<{ body: { worker?: string; from?: string; attempt: number } }>(
        `select body from ${loc}.dataclips where run_id = $1 and kind = 'output' order by created_at, id`,
        [runId],
      )
    ).rows.map((r) => r.body);
  const stateOf = async (runId: string) =>
    (
      await db.executor.query<{ state: Record<string, unknown> }>(
        `select state from ${loc}.runs where id = $1`,
        [runId],
      )
    ).rows[0]!.state;

  it.each([
    { when: 'while the new attempt still holds the lease', holdMs: 1500, wakeAfterRunEnds: false },
    { when: 'after the new attempt has committed', holdMs: 100, wakeAfterRunEnds: true },
  ])('rejects the late commit of a worker woken $when', async ({ holdMs, wakeAfterRunEnds }) => {
    const base = {
      databaseUrl: db.url!,
      environmentId: engine.environmentId,
      leaseMs: 1000,
      heartbeatMs: 200,
    };
    const suffix = wakeAfterRunEnds ? 'late' : 'overlap';
    const a = await CrashWorker.start({
      ...base,
      workerId: `paused-${suffix}`,
      stopOnFirstAttempt: true,
    });
    const { run } = await engine.trigger('crash-fencing', 'x');

    // A starts attempt 1 and freezes itself mid-step.
    await eventually('attempt 1 to start on A', async () =>
      (await listStarts(db.executor, [run.id])).find(
        (s) => s.attempt === 1 && s.worker_id === a.workerId,
      ),
    );
    await eventually('A to be stopped', async () => (isStopped(a.pid) ? true : undefined));
    const slow = (await engine.stores.runs.listStepRuns(engine.environmentId, run.id))!.find(
      (st) => st.stepKey === 'slow',
    );

    // B can take the step only once A's lease has expired and the reaper has requeued it.
    const b = await CrashWorker.start({ ...base, workerId: `taker-${suffix}`, holdMs });
    await eventually(
      'attempt 2 to start on B',
      async () =>
        (await listStarts(db.executor, [run.id])).find(
          (s) => s.attempt === 2 && s.worker_id === b.workerId,
        ),
      10_000,
    );
    const attempt1 = (await engine.stores.runs.listStepRuns(engine.environmentId, run.id))!.find(
      (st) => st.stepKey === 'slow',
    )!.attempts[0]!;
    expect([attempt1.status, attempt1.workerId]).toEqual(['lost', a.workerId]);

    if (wakeAfterRunEnds) {
      const ended = await engine.waitForRun(run.id, { timeoutMs: 15_000 });
      expect([ended.status, ended.error]).toEqual(['succeeded', null]);
    }
    const outputsBefore = await outputsOf(run.id);

    // Wake A: its step returns and it sends the commit of attempt 1.
    await a.signal('SIGCONT');
    const isRejection = (line: string) =>
      line.includes('late commit rejected') && line.includes(slow!.id);
    const byA = async () => (await outputsOf(run.id)).filter((o) => o.worker === a.workerId);
    await eventually('A to commit or to be rejected', async () =>
      a.lines.some(isRejection) || (await byA()).length > 0 ? true : undefined,
    );
    // Nothing of A's attempt landed: no output, no state patch; A was told so.
    expect(await byA()).toEqual([]);
    expect(await outputsOf(run.id)).toEqual(outputsBefore);
    expect(JSON.parse(a.lines.find(isRejection)!)).toMatchObject({
      worker: a.workerId,
      attempt: 1,
      stepRunId: slow!.id,
    });
    if (!wakeAfterRunEnds) {
      // The fence held against an attempt that is itself `running` with a valid lease.
      const held = await db.executor.query<{
        status: string;
        attempt_count: number;
        lease_owner: string;
      }>(`select status, attempt_count, lease_owner from ${loc}.step_runs where id = $1`, [
        slow!.id,
      ]);
      expect(held.rows[0]).toEqual({
        status: 'running',
        attempt_count: 2,
        lease_owner: b.workerId,
      });
      expect(outputsBefore).toEqual([]);
      expect(await stateOf(run.id)).toEqual({});
    }

    const done = await engine.waitForRun(run.id, { timeoutMs: 15_000 });
    expect([done.status, done.error]).toEqual(['succeeded', null]);
    await sleep(200); // anything A might still write would land now

    // The output was committed exactly once, by attempt 2 on B; the successor saw B's output.
    const steps = await engine.stores.runs.listStepRuns(engine.environmentId, run.id);
    const slowDone = steps!.find((s) => s.stepKey === 'slow')!;
    expect(slowDone.status).toBe('succeeded');
    expect(slowDone.attempts.map((x) => [x.number, x.status, x.workerId])).toEqual([
      [1, 'lost', a.workerId],
      [2, 'succeeded', b.workerId],
    ]);
    const outputs = await outputsOf(run.id);
    expect(outputs).toEqual([
      { attempt: 2, worker: b.workerId },
      { from: b.workerId, attempt: 2 },
    ]);
    const slowOutput = await engine.stores.runs.getDataclip(
      engine.environmentId,
      slowDone.outputDataclipId!,
    );
    expect(slowOutput?.body).toEqual({ attempt: 2, worker: b.workerId });
    const final = await engine.stores.runs.getDataclip(engine.environmentId, done.finalDataclipId!);
    expect(final?.body).toEqual({ from: b.workerId, attempt: 2 });
    expect(await stateOf(run.id)).toEqual({ by: b.workerId });

    // A woke up, was fenced, and is a healthy worker again; its code ran exactly once.
    expect(a.alive).toBe(true);
    expect(
      (await listStarts(db.executor, [run.id])).map((s) => [s.step_key, s.attempt, s.worker_id]),
    ).toEqual([
      ['slow', 1, a.workerId],
      ['slow', 2, b.workerId],
    ]);
  });
});
