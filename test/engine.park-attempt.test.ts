/**
 * A parked (waiting) step holds no lease and no running attempt, and a run that ends leaves no
 * step run open and no attempt `running` — found by the fuzz suite (seed 897713924, workflows with
 * a sleep or forEach beside a failing step), each case here shown to fail on the old code:
 * - a park that fails (a deadlock, a dropped connection) released nothing: the step stayed
 *   `running` with its lease for the whole lease (30 s) until it was reaped as `lost`;
 * - cancel_open (a run failing or canceled) locked attempts before step runs, the reverse of
 *   claim and commit: it deadlocked with a commit, and missed the attempt of a claim committing
 *   meanwhile, which stayed `running` forever under a canceled step run;
 * - a forEach park committing while cancel_open waited for its row inserted body step runs
 *   cancel_open's snapshot could not see: they stayed `ready` in a failed run and were claimed.
 * The interleavings need two connections at once, so those run on PostgreSQL only (PGlite has one
 * connection and cannot interleave transactions).
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

  it('a park that fails ends its attempt at once: the sleep does not wait out its 30 s lease', async () => {
    // The first park_step call fails (as a deadlock did), every later one goes through. A
    // sequence counts the calls: nextval is not rolled back with the failed statement.
    await db.executor.query(`create sequence ${schema}.p_fail_park`);
    await db.executor.query(
      `alter function ${schema}.park_step(text, integer, text, jsonb) rename to park_step_real`,
    );
    await db.executor.query(`
      create function ${schema}.park_step(a text, b integer, c text, d jsonb) returns jsonb
      language plpgsql as $$
      begin
        if nextval('${schema}.p_fail_park') = 1 then
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
      // the failed park ended its attempt at once (failed, with the park's error), not by a
      // lost lease; then the park, then the wake
      expect(nap.attempts.map((a) => [a.status, a.error?.message])).toEqual([
        ['failed', expect.stringContaining('injected park failure')],
        ['succeeded', undefined],
        ['succeeded', undefined],
      ]);
      expect(await runningAttempts(run.id)).toEqual([]);
    } finally {
      await engine.stop();
      await db.executor.query(`drop function ${schema}.park_step(text, integer, text, jsonb)`);
      await db.executor.query(
        `alter function ${schema}.park_step_real(text, integer, text, jsonb) rename to park_step`,
      );
      await db.executor.query(`drop sequence ${schema}.p_fail_park`);
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

  // Two PostgreSQL sessions driving the functions directly, so the interleaving is exact.
  async function sessions() {
    const a = new pg.Client({ connectionString: db.url });
    const b = new pg.Client({ connectionString: db.url });
    await a.connect();
    await b.connect();
    return { a, b, end: () => Promise.all([a.end(), b.end()]) };
  }
  const stepRunId = async (runId: string, key: string) =>
    (
      await db.executor.query<{ id: string }>(
        `select id from ${schema}.step_runs where run_id = $1 and step_key = $2`,
        [runId, key],
      )
    ).rows[0]!.id;

  it.runIf(backend === 'postgres')(
    'canceling a run while a commit holds its step run does not deadlock (step runs are locked before attempts)',
    async () => {
      const wf = defineWorkflow('cancel-vs-commit').step(
        'a',
        { retry: { maxAttempts: 3 } },
        () => 1,
      );
      const engine = await startTestEngine(db.stores, [wf], { worker: false });
      const { a: committer, b: canceler, end } = await sessions();
      try {
        const runId = (await engine.trigger(wf.id, {})).run.id;
        const id = await stepRunId(runId, 'a');
        await committer.query(
          `select * from ${schema}.claim_by_ids(array[$1], 'p-worker', 30000)`,
          [id],
        );
        // A commit's lock order (fail_step, park_step): the step run, then its attempt row.
        await committer.query('begin');
        await committer.query(`select 1 from ${schema}.step_runs where id = $1 for update`, [id]);
        const cancel = canceler.query(`select ${schema}.cancel_open($1)`, [runId]);
        await sleep(300);
        // Old cancel_open held this attempt (locked first) while waiting for the step run: the
        // failed attempt's end (its row written or updated) then waited for it, a deadlock one of
        // the two was killed for. Here the attempt fails and the step is requeued (retry path).
        await committer.query(
          `select ${schema}.fail_step($1, 1, 'p-worker', 'failed', '{"message":"boom"}'::jsonb, 0)`,
          [id],
        );
        await committer.query('commit');
        await cancel;
        const rows = await db.executor.query<{ sr: string; a: string }>(
          `select sr.status as sr, a.status as a from ${schema}.step_runs sr
             join ${schema}.attempts a on a.step_run_id = sr.id where sr.id = $1`,
          [id],
        );
        // the commit went first (its attempt ended); the step run is canceled after it
        expect(rows.rows).toEqual([{ sr: 'canceled', a: 'failed' }]);
      } finally {
        await end();
        await engine.stop();
      }
    },
    30_000,
  );

  it.runIf(backend === 'postgres')(
    'a forEach park committing while the run is canceled: its body step runs are canceled too, none left ready',
    async () => {
      const wf = defineWorkflow('cancel-vs-foreach-park').forEach('each', {
        items: () => [1, 2],
        body: (b) => b.step('x', (n: number) => n),
      });
      const engine = await startTestEngine(db.stores, [wf], { worker: false });
      const { a: parker, b: canceler, end } = await sessions();
      try {
        const runId = (await engine.trigger(wf.id, {})).run.id;
        const id = await stepRunId(runId, 'each');
        await parker.query(`select * from ${schema}.claim_by_ids(array[$1], 'p-worker', 30000)`, [
          id,
        ]);
        const node = {
          step_id: 'x',
          kind: 'step',
          parents: [],
          successors: [],
          failure_successors: [],
          max_attempts: 3,
          on_exhausted: 'fail',
          concurrency_key: null,
          concurrency_limit: null,
        };
        const park = {
          body: {
            onScopeFailure: 'fail',
            nodes: [node],
            iterations: [
              { iteration: 0, input: '1', gated: false },
              { iteration: 1, input: '2', gated: false },
            ],
          },
        };
        await parker.query('begin');
        const parked = await parker.query<{ r: { status: string } }>(
          `select ${schema}.park_step($1, 1, 'p-worker', $2::jsonb) as r`,
          [id, JSON.stringify(park)],
        );
        expect(parked.rows[0]!.r.status).toBe('parked');
        // The run fails or is canceled meanwhile: cancel_open waits for the forEach's row.
        const cancel = canceler.query(`select ${schema}.cancel_open($1)`, [runId]);
        await sleep(300);
        await parker.query('commit');
        await cancel;
        const open = await db.executor.query<{ step_key: string; status: string }>(
          `select step_key, status from ${schema}.step_runs
            where run_id = $1 and status in ('pending', 'ready', 'running', 'waiting') order by step_key`,
          [runId],
        );
        // Old cancel_open: [x[0] ready, x[1] ready] — inserted after its snapshot, never canceled.
        expect(open.rows).toEqual([]);
        expect(await runningAttempts(runId)).toEqual([]);
      } finally {
        await end();
        await engine.stop();
      }
    },
    30_000,
  );

  it('an attempt claimed before location 0016 (its row written by the claim) ends on that row; the next is on its step run', async () => {
    const wf = defineWorkflow('legacy-attempt').step('a', { retry: { maxAttempts: 2 } }, () => 1);
    const engine = await startTestEngine(db.stores, [wf], { worker: false });
    try {
      const { run } = await engine.trigger(wf.id, {});
      const id = await stepRunId(run.id, 'a');
      const claim = () =>
        db.executor.query(`select * from ${schema}.claim_by_ids(array[$1], 'p-worker', 30000)`, [
          id,
        ]);
      const fail = (attempt: number, retryMs: number | null) =>
        db.executor.query(
          `select ${schema}.fail_step($1, $2, 'p-worker', 'failed', '{"message":"boom"}'::jsonb, $3)`,
          [id, attempt, retryMs],
        );
      const attempts = async () =>
        (await db.stores.runs.listStepRuns(run.environmentId, run.id))![0]!.attempts.map((a) => [
          a.number,
          a.status,
          a.workerId,
        ]);
      await claim();
      // what a claim of an earlier release left: the attempt's row, nothing of it on the step run
      await db.executor.query(
        `with s as (
           update ${schema}.step_runs
              set attempt_worker = null, attempt_started_at = null, attempt_event_id = null
            where id = $1 returning id, run_id, step_key
         )
         insert into ${schema}.attempt_rows (step_run_id, number, run_id, worker_id, status, step_key, event_id)
         select id, 1, run_id, 'p-worker', 'running', step_key, nextval('${schema}.run_events_id_seq') from s`,
        [id],
      );
      expect(await attempts()).toEqual([[1, 'running', 'p-worker']]);
      await fail(1, 0);
      // its row was updated, not written a second time
      expect(await attempts()).toEqual([[1, 'failed', 'p-worker']]);
      await claim();
      expect(await attempts()).toEqual([
        [1, 'failed', 'p-worker'],
        [2, 'running', 'p-worker'],
      ]);
      const rows = async () =>
        (
          await db.executor.query<{ n: number }>(
            `select count(*)::int as n from ${schema}.attempt_rows where step_run_id = $1`,
            [id],
          )
        ).rows[0]!.n;
      expect(await rows()).toBe(1);
      await fail(2, null);
      expect(await attempts()).toEqual([
        [1, 'failed', 'p-worker'],
        [2, 'failed', 'p-worker'],
      ]);
      expect(await rows()).toBe(2);
      const started = (await db.stores.runs.listRunEvents(run.environmentId, run.id))!
        .filter((e) => e.kind === 'step.started')
        .map((e) => e.attempt);
      expect(started).toEqual([1, 2]);
    } finally {
      await engine.stop();
    }
  });
});
