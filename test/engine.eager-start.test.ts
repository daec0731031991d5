/**
 * Eager start (issue 8, trigger → first step started): a process that triggers a run and runs an
 * idle worker has the run's first step claimed for that worker in the trigger's own transaction
 * (Worker.reserveEager, RunCreation.createEager). What is checked: once `engine.trigger` returns,
 * the first step is already `running` under this worker's lease with its attempt written (without
 * eager start it is still `ready`: the claim waits for a NOTIFY and a claim round trip); a busy
 * worker, a deduplicated trigger and a step with a concurrency limit take the ordinary path and
 * still finish; exactly one attempt per step either way.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';
import { startTestEngine } from './support/engine.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A gate a step waits on, opened by the test. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

describe.each(BACKENDS)('eager start on %s', (backend) => {
  let db: TestDatabase;
  let schema: string;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
    schema = db.stores.schemas.locations[0]!;
  });
  afterAll(async () => {
    await db?.close();
  });

  const stepRun = async (runId: string, stepKey: string) =>
    (
      await db.executor.query<{ status: string; lease_owner: string | null; attempts: number }>(
        `select s.status, s.lease_owner,
                (select count(*)::int from ${schema}.attempts a where a.step_run_id = s.id) as attempts
           from ${schema}.step_runs s where s.run_id = $1 and s.step_key = $2`,
        [runId, stepKey],
      )
    ).rows[0]!;

  /** Until the worker's claim loop has run once and found the queue empty. */
  const idle = () => sleep(150);

  it("the first step is running under this worker's lease when trigger returns, then the run finishes", async () => {
    const g = gate();
    const wf = defineWorkflow('eager')
      .step('first', async () => {
        await g.opened;
        return 1;
      })
      .step('second', { after: 'first' }, (n: number) => n + 1);
    const engine = await startTestEngine(db.stores, [wf], { worker: { pollIntervalMs: 60_000 } });
    try {
      await idle();
      const { run } = await engine.trigger('eager', null);
      // no await between: the claim was committed with the run
      const first = await stepRun(run.id, 'first');
      expect(first).toEqual({
        status: 'running',
        lease_owner: engine.worker!.workerId,
        attempts: 1,
      });
      g.open();
      const done = await engine.waitForRun(run.id, { timeoutMs: 10_000 });
      expect(done.status).toBe('succeeded');
      expect((await stepRun(run.id, 'first')).attempts).toBe(1);
    } finally {
      g.open();
      await engine.stop();
    }
  });

  it('a busy worker does not take it: the step waits, ready, for the ordinary claim', async () => {
    const g = gate();
    const wf = defineWorkflow('busy').step('only', async () => {
      await g.opened;
      return 1;
    });
    const engine = await startTestEngine(db.stores, [wf], {
      worker: { concurrency: 1, pollIntervalMs: 60_000 },
    });
    try {
      await idle();
      const a = await engine.trigger('busy', { n: 1 }); // takes the only slot
      const b = await engine.trigger('busy', { n: 2 });
      expect((await stepRun(a.run.id, 'only')).status).toBe('running');
      expect(await stepRun(b.run.id, 'only')).toEqual({
        status: 'ready',
        lease_owner: null,
        attempts: 0,
      });
      g.open();
      for (const id of [a.run.id, b.run.id])
        expect((await engine.waitForRun(id, { timeoutMs: 10_000 })).status).toBe('succeeded');
    } finally {
      g.open();
      await engine.stop();
    }
  });

  it('a deduplicated trigger claims nothing, and a step with a concurrency limit goes through the claim that counts', async () => {
    const wf = defineWorkflow<{ n: number }>('keyed').step('only', (input) => input.n);
    const limited = defineWorkflow('limited').step('only', { concurrency: 1 }, () => 'ok');
    const engine = await startTestEngine(db.stores, [wf, limited], {
      worker: { pollIntervalMs: 100 },
    });
    try {
      await idle();
      const first = await engine.trigger('keyed', { n: 7 }, { idempotencyKey: 'k-1' });
      await engine.waitForRun(first.run.id, { timeoutMs: 10_000 });
      await idle();
      const again = await engine.trigger('keyed', { n: 7 }, { idempotencyKey: 'k-1' });
      expect(again).toMatchObject({ deduplicated: true, run: { id: first.run.id } });
      expect((await stepRun(first.run.id, 'only')).attempts).toBe(1);

      await idle();
      const l = await engine.trigger('limited', null);
      expect((await stepRun(l.run.id, 'only')).status).toBe('ready');
      expect((await engine.waitForRun(l.run.id, { timeoutMs: 10_000 })).status).toBe('succeeded');
      // the freed slots are claimable again: a run triggered now still runs
      const after = await engine.trigger('keyed', { n: 8 });
      expect((await engine.waitForRun(after.run.id, { timeoutMs: 10_000 })).status).toBe(
        'succeeded',
      );
    } finally {
      await engine.stop();
    }
  });

  // The latency bench ran 1,101 claims for 1,100 one-step runs: each run was started eagerly, and
  // its end still made the worker claim, finding nothing (a round trip and a walk of the ready
  // index per run). A freed slot now claims only when work was left behind.
  it('one-step runs triggered one after another: started eagerly, no claim after each run ends', async () => {
    const wf = defineWorkflow('one-by-one').step('only', () => 'done');
    const engine = await startTestEngine(db.stores, [wf], { worker: { pollIntervalMs: 60_000 } });
    const claims = vi.spyOn(db.stores.runs, 'claimSteps');
    try {
      await idle();
      claims.mockClear();
      for (let i = 0; i < 20; i++) {
        const { run } = await engine.trigger('one-by-one', null);
        expect((await engine.waitForRun(run.id, { timeoutMs: 10_000 })).status).toBe('succeeded');
      }
      expect(claims.mock.calls.length).toBeLessThanOrEqual(1);
    } finally {
      claims.mockRestore();
      await engine.stop();
    }
  });
});
