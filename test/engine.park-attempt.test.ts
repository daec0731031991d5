/**
 * A parked (waiting) step holds no lease and no running attempt, and a run that ends leaves no
 * attempt `running` — found by the fuzz suite (seed 897713924, workflows with a sleep beside a
 * failing step): on PostgreSQL a park could fail (a deadlock with cancel_open, which locked
 * attempts before step runs), leaving the sleep `running` with its lease for the whole lease
 * (30 s) until it was reaped as `lost`; and a run failing while another step's claim committed
 * left that claim's attempt `running` forever under a canceled step run.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow, TerminalError } from '../src/index.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';
import { startTestEngine } from './support/engine.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(BACKENDS)('parked steps and open attempts on %s', (backend) => {
  let db: TestDatabase;
  let schema: string;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
    schema = db.stores.schemas.locations[0]!;
  });
  afterAll(async () => {
    await db?.close();
  });

  const runningAttempts = async (runId: string) =>
    (
      await db.executor.query<{ step_key: string; number: number; step_status: string }>(
        `select sr.step_key, a.number, sr.status as step_status from ${schema}.attempts a
           join ${schema}.step_runs sr on sr.id = a.step_run_id
          where a.run_id = $1 and a.status = 'running'`,
        [runId],
      )
    ).rows;

  it('a park that fails releases the attempt at once: the sleep does not wait out its 30 s lease', async () => {
    // The first park_step call fails (as a deadlock did), every later one goes through.
    await db.executor.query(`create table ${schema}.p_fail_park (n integer)`);
    await db.executor.query(`insert into ${schema}.p_fail_park values (1)`);
    await db.executor.query(
      `alter function ${schema}.park_step(text, integer, text, jsonb) rename to park_step_real`,
    );
    await db.executor.query(`
      create function ${schema}.park_step(a text, b integer, c text, d jsonb) returns jsonb
      language plpgsql as $$
      begin
        if exists (select 1 from ${schema}.p_fail_park) then
          delete from ${schema}.p_fail_park;
          raise exception 'injected park failure';
        end if;
        return ${schema}.park_step_real(a, b, c, d);
      end $$`);
    const wf = defineWorkflow('park-fails-once')
      .sleep('nap', { duration: 20 })
      .step('after', { after: 'nap' }, () => 'woke');
    const engine = await startTestEngine(db.stores, [wf], {
      worker: { pollIntervalMs: 20, leaseMs: 30_000 },
    });
    try {
      const started = Date.now();
      const runId = (await engine.trigger('park-fails-once', {})).run.id;
      const run = await engine.waitForRun(runId, { timeoutMs: 10_000 });
      expect(run.status).toBe('succeeded');
      expect(Date.now() - started).toBeLessThan(10_000);
      const nap = (await db.stores.runs.listStepRuns(engine.environmentId, run.id))!.find(
        (s) => s.stepKey === 'nap',
      )!;
      // the failed park is not charged as a lost attempt: released, then park, then wake
      expect(nap.attempts.map((a) => a.status)).not.toContain('lost');
      expect(nap.attempts.map((a) => a.status).slice(-2)).toEqual(['succeeded', 'succeeded']);
      expect(await runningAttempts(run.id)).toEqual([]);
    } finally {
      await engine.stop();
      await db.executor.query(`drop function ${schema}.park_step(text, integer, text, jsonb)`);
      await db.executor.query(
        `alter function ${schema}.park_step_real(text, integer, text, jsonb) rename to park_step`,
      );
      await db.executor.query(`drop table ${schema}.p_fail_park`);
    }
  }, 30_000);

  it('a run that fails beside a sleep ends with no attempt running and no step holding a lease', async () => {
    const wf = defineWorkflow('sleep-beside-failure')
      .sleep('nap', { duration: 20 })
      .forEach('each', { items: () => [1, 2], body: (b) => b.step('x', (n: number) => n) })
      .step('boom', () => {
        throw new TerminalError('boom');
      });
    const engine = await startTestEngine(db.stores, [wf], {
      worker: { pollIntervalMs: 20, concurrency: 16, leaseMs: 30_000 },
    });
    try {
      const ids = await Promise.all(
        Array.from({ length: 10 }, async () => (await engine.trigger(wf.id, {})).run.id),
      );
      for (const id of ids) {
        const run = await engine.waitForRun(id, { timeoutMs: 10_000 });
        expect(run.status).toBe('failed');
        expect(await runningAttempts(id)).toEqual([]);
        const held = await db.executor.query(
          `select step_key from ${schema}.step_runs where run_id = $1 and lease_owner is not null`,
          [id],
        );
        expect(held.rows).toEqual([]);
      }
    } finally {
      await engine.stop();
    }
  }, 30_000);

  // Needs two connections at once: PGlite has one, so it cannot interleave these transactions.
  it.runIf(backend === 'postgres')(
    'canceling a run while a claim of one of its steps commits closes that claim’s attempt',
    async () => {
      const wf = defineWorkflow('cancel-vs-claim').step('a', () => 1);
      const engine = await startTestEngine(db.stores, [wf], { worker: false });
      const claimer = new pg.Client({ connectionString: db.url });
      const canceler = new pg.Client({ connectionString: db.url });
      await claimer.connect();
      await canceler.connect();
      try {
        const runId = (await engine.trigger(wf.id, {})).run.id;
        const step = (
          await db.executor.query<{ id: string }>(
            `select id from ${schema}.step_runs where run_id = $1 and step_key = 'a'`,
            [runId],
          )
        ).rows[0]!;
        // A worker claims the step: its transaction holds the row, its attempt is not committed.
        await claimer.query('begin');
        const claimed = await claimer.query(
          `select * from ${schema}.claim_by_ids(array[$1], 'p-worker', 30000)`,
          [step.id],
        );
        expect(claimed.rows).toHaveLength(1);
        // The run is failed/canceled meanwhile (cancel_open): it waits for the claim's row lock.
        const cancel = canceler.query(`select ${schema}.cancel_open($1)`, [runId]);
        await sleep(300);
        await claimer.query('commit');
        await cancel;
        const rows = await db.executor.query<{ sr: string; a: string }>(
          `select sr.status as sr, a.status as a from ${schema}.step_runs sr
             join ${schema}.attempts a on a.step_run_id = sr.id where sr.id = $1`,
          [step.id],
        );
        expect(rows.rows).toEqual([{ sr: 'canceled', a: 'canceled' }]);
      } finally {
        await claimer.end();
        await canceler.end();
        await engine.stop();
      }
    },
    30_000,
  );
});
