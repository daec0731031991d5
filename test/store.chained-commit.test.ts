/**
 * The chained commit (store/runs/chain-commit.ts), on both databases: a chained step is committed
 * and its successor claimed by one statement of the store's own instead of the complete_step call;
 * what it writes and answers is what complete_step's chain path wrote and answered; when the
 * successor's row is not what the plan promised, the statement changes nothing and complete_step
 * commits; a fenced attempt stays fenced; and (PostgreSQL, two sessions) when the successor changes
 * while the statement runs, the statement is rolled back whole (WF001) and complete_step commits.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { compileWorkflow } from '../src/core/graph.js';
import { defineWorkflow } from '../src/index.js';
import type { Executor } from '../src/store/executor.js';
import type { CommitPayload } from '../src/store/runs/queue.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';
import { startTestEngine } from './support/engine.js';
import { createStoreRun } from './support/store-runs.js';

const CHAINED = /^with succ as/;

/** Count the statements sent on an executor while `fn` runs, by whether they are chained commits. */
async function counting<T>(
  x: Executor,
  fn: () => Promise<T>,
): Promise<{ value: T; chained: number; completeStep: number }> {
  const original = x.query;
  let chained = 0;
  let completeStep = 0;
  x.query = ((sql: string, params?: readonly unknown[]) => {
    if (CHAINED.test(sql)) chained++;
    if (sql.includes('.complete_step(')) completeStep++;
    return original.call(x, sql, params);
  }) as Executor['query'];
  try {
    return { value: await fn(), chained, completeStep };
  } finally {
    x.query = original;
  }
}

describe.each(BACKENDS)('the chained commit on %s', (backend) => {
  let db: TestDatabase;
  let environmentId: string;
  let schema: string;
  const compiled = compileWorkflow(
    defineWorkflow('pair')
      .step('a', () => ({ n: 1, z: 'last', a: 'first' }))
      .step('b', { after: 'a' }, (x) => x),
  );

  beforeAll(async () => {
    db = await openTestDatabase(backend);
    schema = db.stores.schemas.locations[0]!;
    ({ environmentId } = await db.stores.control.createTenant({
      organization: 'o',
      project: 'p',
      environment: 'chained',
    }));
  });
  afterAll(async () => {
    await db?.close();
  });

  const locDb = () => [...db.stores.runs.locations.values()][0]!.db;

  /** A run of `pair` with its first step claimed by worker w1 (no engine: the test commits). */
  async function claimedRun() {
    const run = await createStoreRun(db.stores, environmentId, compiled);
    const claims = await db.stores.runs.claimSteps('w1', [environmentId], ['pair'], 10, 60_000);
    const claim = claims.find((c) => c.runId === run.id)!;
    expect(claim.stepKey).toBe('a');
    return { run, claim };
  }

  const commitOf = (output: string): CommitPayload => ({
    outputText: output,
    stateSet: null,
    stateDelete: null,
    live: ['b'],
    dead: [],
    claimNext: true,
    takesSuccessor: true,
    leaseMs: 60_000,
  });

  const stepRows = async (runId: string) =>
    (
      await locDb().query<{ step_key: string; status: string; attempt_count: number }>(
        `select step_key, status, attempt_count from ${schema}.step_runs where run_id = $1 order by step_key`,
        [runId],
      )
    ).rows.map((r) => `${r.step_key} ${r.status} ${r.attempt_count}`);
  const outputs = async (runId: string) =>
    (
      await locDb().query<{ n: number }>(
        `select count(*)::int as n from ${schema}.dataclips where run_id = $1 and kind = 'output'`,
        [runId],
      )
    ).rows[0]!.n;

  it('a chain commits with one chained statement per step, events and inputs as before', async () => {
    const wf = defineWorkflow<number>('chain4')
      .step('s1', (x: number) => ({ v: x + 1, b: [1, 2], a: 'x' }))
      .step('s2', { after: 's1' }, (x: { v: number }) => x.v + 1)
      .step('s3', { after: 's2' }, (x: number) => x * 10)
      .step('s4', { after: 's3' }, (x: number) => `done ${x}`);
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const { value: done, chained } = await counting(locDb(), async () => {
        const { run } = await engine.trigger('chain4', 1);
        return engine.waitForRun(run.id, { timeoutMs: 30_000 });
      });
      expect(done.status).toBe('succeeded');
      // s1 → s2, s2 → s3, s3 → s4 by the chained statement; s4 (no successor) by complete_step
      expect(chained).toBe(3);
      expect(await stepRows(done.id)).toEqual([
        's1 succeeded 1',
        's2 succeeded 1',
        's3 succeeded 1',
        's4 succeeded 1',
      ]);
      expect(await outputs(done.id)).toBe(4);
      // the event log: each step's success before its successor's start, ids in order
      const events = (await db.stores.runs.listRunEvents(engine.environmentId, done.id))!;
      expect(events.map((e) => `${e.kind}${e.stepKey ? ` ${e.stepKey}` : ''}`)).toEqual([
        'run.created',
        'step.started s1',
        'step.succeeded s1',
        'step.started s2',
        'step.succeeded s2',
        'step.started s3',
        'step.succeeded s3',
        'step.started s4',
        'step.succeeded s4',
        'run.succeeded',
      ]);
      const ids = events.map((e) => Number(e.id));
      expect([...ids].sort((p, q) => p - q)).toEqual(ids);
      // each step got its parent's output as the database stored it (jsonb: keys reordered)
      const inputs = await locDb().query<{ step_key: string; body: unknown }>(
        `select s.step_key, d.body from ${schema}.step_runs s join ${schema}.dataclips d on d.id = s.input_dataclip_id
          where s.run_id = $1 order by s.step_key`,
        [done.id],
      );
      expect(inputs.rows.map((r) => [r.step_key, r.body])).toEqual([
        ['s1', 1],
        ['s2', { a: 'x', b: [1, 2], v: 2 }],
        ['s3', 3],
        ['s4', 30],
      ]);
    } finally {
      await engine.stop();
    }
  });

  it('answers the claimed successor with its input as stored, attempt 1, the run state', async () => {
    const { run, claim } = await claimedRun();
    const {
      value: r,
      chained,
      completeStep,
    } = await counting(locDb(), () =>
      db.stores.runs.completeStep(claim, 'w1', commitOf('{"n":1,"z":"last","a":"first"}')),
    );
    expect([chained, completeStep]).toEqual([1, 0]);
    expect(r.status).toBe('committed');
    if (r.status !== 'committed') return;
    expect(r.runStatus).toBe('running');
    expect(r.next).toMatchObject({
      runId: run.id,
      stepKey: 'b',
      stepId: 'b',
      attempt: 1,
      maxAttempts: claim.maxAttempts,
      input: { a: 'first', n: 1, z: 'last' },
      state: {},
      versionId: claim.versionId,
      environmentId,
    });
    expect(Object.keys(r.next!.input as object)).toEqual(['a', 'n', 'z']);
    expect(await stepRows(run.id)).toEqual(['a succeeded 1', 'b running 1']);
    expect(await outputs(run.id)).toBe(1);
  });

  it('a successor the row says is not eligible: nothing is written by it, complete_step commits', async () => {
    const { run, claim } = await claimedRun();
    // the row disagrees with the plan (a concurrency limit the plan does not know)
    await locDb().query(
      `update ${schema}.step_runs set concurrency_key = 'limited' where run_id = $1 and step_key = 'b'`,
      [run.id],
    );
    const {
      value: r,
      chained,
      completeStep,
    } = await counting(locDb(), () => db.stores.runs.completeStep(claim, 'w1', commitOf('2')));
    expect([chained, completeStep]).toEqual([1, 1]);
    expect(r).toMatchObject({ status: 'committed', runStatus: 'running', next: null });
    // propagate made b ready and left it to claim_steps (the limit)
    expect(await stepRows(run.id)).toEqual(['a succeeded 1', 'b ready 0']);
    expect(await outputs(run.id)).toBe(1);
  });

  it('a fenced attempt (its lease ran out) changes nothing and answers fenced', async () => {
    const { run, claim } = await claimedRun();
    await locDb().query(
      `update ${schema}.step_runs set lease_expires_at = now() - interval '1 second' where id = $1`,
      [claim.stepRunId],
    );
    const {
      value: r,
      chained,
      completeStep,
    } = await counting(locDb(), () => db.stores.runs.completeStep(claim, 'w1', commitOf('3')));
    expect([chained, completeStep]).toEqual([1, 0]);
    expect(r).toEqual({ status: 'fenced' });
    expect(await stepRows(run.id)).toEqual(['a running 1', 'b pending 0']);
    expect(await outputs(run.id)).toBe(0);
  });

  it.runIf(backend === 'postgres')(
    'a successor changed while the statement runs: rolled back whole (WF001), complete_step commits',
    async () => {
      const { run, claim } = await claimedRun();
      const b = (
        await locDb().query<{ id: string }>(
          `select id from ${schema}.step_runs where run_id = $1 and step_key = 'b'`,
          [run.id],
        )
      ).rows[0]!.id;
      // another session changes b and holds its row until the chained statement has read b as
      // eligible and fenced a; then it commits, and the statement's claim finds b changed
      const other = new pg.Client({ connectionString: db.url });
      await other.connect();
      try {
        await other.query('begin');
        // as a cancel of b's scope would: b leaves `pending`
        await other.query(`update ${schema}.step_runs set status = 'canceled' where id = $1`, [b]);
        const committing = counting(locDb(), () =>
          db.stores.runs.completeStep(claim, 'w1', commitOf('4')),
        );
        // the statement is blocked on b's row lock (pg_locks shows it waiting)
        for (let i = 0; i < 200; i++) {
          const waiting = await other.query<{ n: number }>(
            `select count(*)::int as n from pg_stat_activity
              where datname = current_database() and wait_event_type = 'Lock' and query like 'with succ as%'`,
          );
          if (waiting.rows[0]!.n > 0) break;
          await new Promise((r) => setTimeout(r, 10));
        }
        await other.query('commit');
        const { value: r, chained, completeStep } = await committing;
        expect([chained, completeStep]).toEqual([1, 1]);
        // complete_step saw b as it is now (canceled: nothing left to run) and ended the run; a
        // statement that kept its fence without the claim would leave the run running forever
        expect(r).toEqual({ status: 'committed', runStatus: 'succeeded', next: null });
        expect(await stepRows(run.id)).toEqual(['a succeeded 1', 'b canceled 0']);
        expect((await db.stores.runs.getRun(environmentId, run.id))!.status).toBe('succeeded');
        // the rolled-back statement left no output behind: one, complete_step's
        expect(await outputs(run.id)).toBe(1);
      } finally {
        await other.end();
      }
    },
  );
});
