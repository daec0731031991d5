/**
 * The hot path's writes (issue 8, location migrations 0010 and 0016), on PGlite and PostgreSQL: a
 * chained step that patches no state writes no event row and no attempt row (its attempt, its
 * `step.started` and its `step.succeeded` are on its step run, which the `attempts` view and the
 * event log read); the event log still lists every event once, in order, with the
 * same payloads; a step that patches state still logs its `step.succeeded` row with the patch
 * (reruns replay it); and no foreign key is left inside a location.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rerunRun } from '../src/engine/rerun.js';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';
import { startTestEngine } from './support/engine.js';

describe.each(BACKENDS)('hot path writes on %s', (backend) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
  });
  afterAll(async () => {
    await db?.close();
  });

  const loc = () => [...db.stores.runs.locations.values()][0]!;

  it('a chained step writes no event row and no attempt row; the event log and attempts read the same', async () => {
    const wf = defineWorkflow<number>('hot-chain')
      .step('a', (x: number) => x + 1)
      .step('b', { after: 'a' }, (x: number) => x + 1)
      .step('c', { after: 'b' }, (x: number, ctx) => {
        ctx.state.done = x;
        return x + 1;
      });
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const { run } = await engine.trigger('hot-chain', 1);
      const done = await engine.waitForRun(run.id, { timeoutMs: 30_000 });
      expect(done.status).toBe('succeeded');
      const { db: x, schema } = loc();

      // event rows: run.created, c's step.succeeded (it patched state), run.succeeded — not a
      // step.started per attempt nor a step.succeeded for a and b
      const rows = await x.query<{ kind: string; step_key: string | null }>(
        `select kind, step_key from ${schema}.run_events where run_id = $1 order by id`,
        [run.id],
      );
      expect(rows.rows.map((r) => `${r.kind}${r.step_key ? ` ${r.step_key}` : ''}`)).toEqual([
        'run.created',
        'step.succeeded c',
        'run.succeeded',
      ]);

      // no attempt row at all (location 0016): each attempt is on its step run, and the view reads
      // it (and its success) from there
      const raw = await x.query<{ n: number }>(
        `select count(*)::int as n from ${schema}.attempt_rows a where a.run_id = $1`,
        [run.id],
      );
      expect(raw.rows[0]!.n).toBe(0);
      const view = await x.query<{ step_key: string; status: string; same: boolean }>(
        `select a.step_key, a.status, a.finished_at = s.finished_at as same
           from ${schema}.attempts a join ${schema}.step_runs s on s.id = a.step_run_id
          where a.run_id = $1 order by a.step_key`,
        [run.id],
      );
      expect(view.rows).toEqual([
        { step_key: 'a', status: 'succeeded', same: true },
        { step_key: 'b', status: 'succeeded', same: true },
        { step_key: 'c', status: 'succeeded', same: true },
      ]);

      // the event log: every event once, in order, with the payloads a run_events row had
      const events = (await db.stores.runs.listRunEvents(engine.environmentId, run.id))!;
      expect(events.map((e) => `${e.kind}${e.stepKey ? ` ${e.stepKey}` : ''}`)).toEqual([
        'run.created',
        'step.started a',
        'step.succeeded a',
        'step.started b',
        'step.succeeded b',
        'step.started c',
        'step.succeeded c',
        'run.succeeded',
      ]);
      const ids = events.map((e) => Number(e.id));
      expect([...ids].sort((p, q) => p - q)).toEqual(ids);
      expect(new Set(ids).size).toBe(ids.length);
      const outputs = await x.query<{ step_key: string; output_dataclip_id: string }>(
        `select step_key, output_dataclip_id from ${schema}.step_runs where run_id = $1`,
        [run.id],
      );
      const outputOf = new Map(outputs.rows.map((r) => [r.step_key, r.output_dataclip_id]));
      const succeededA = events.find((e) => e.kind === 'step.succeeded' && e.stepKey === 'a')!;
      expect(succeededA.attempt).toBe(1);
      expect(succeededA.data).toEqual({ outputDataclipId: outputOf.get('a'), statePatch: null });
      const startedB = events.find((e) => e.kind === 'step.started' && e.stepKey === 'b')!;
      expect(startedB.attempt).toBe(1);
      expect(Object.keys(startedB.data as object)).toEqual(['worker']);
      const succeededC = events.find((e) => e.kind === 'step.succeeded' && e.stepKey === 'c')!;
      expect(succeededC.data).toEqual({
        outputDataclipId: outputOf.get('c'),
        statePatch: { set: { done: 3 }, delete: null },
      });

      // a cursor in the middle returns exactly the rest
      const rest = (await db.stores.runs.listRunEvents(engine.environmentId, run.id, ids[3]))!;
      expect(rest.map((e) => e.id)).toEqual(events.slice(4).map((e) => e.id));
    } finally {
      await engine.stop();
    }
  });

  it('a reused rerun row whose successor ran earlier says so (successor_ran), not by listing itself', async () => {
    // a → b → d and a → c. Rerun from c: a is materialized (c's parent), b is not (it ran, and
    // its successor d ran), d is (a leaf). a records that a successor ran (b, in the source)
    // instead of listing itself among its successors; the final state is c and d. (Here c also
    // ran, so the final state alone would not catch finish_run ignoring successor_ran: the row
    // assertion does the checking.)
    const wf = defineWorkflow<number>('hot-rerun')
      .step('a', (x: number) => x + 1)
      .step('b', { after: 'a' }, (x: number) => x * 10)
      .step('d', { after: 'b' }, (x: number) => x + 5)
      .step('c', { after: 'a' }, (x: number) => x - 1);
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const { run: source } = await engine.trigger('hot-rerun', 1);
      expect((await engine.waitForRun(source.id, { timeoutMs: 30_000 })).status).toBe('succeeded');
      const { run } = await rerunRun(db.stores, engine.environmentId, source.id, {
        fromStep: 'c',
      });
      const done = await engine.waitForRun(run!.id, { timeoutMs: 30_000 });
      expect(done.status).toBe('succeeded');
      const { db: x, schema } = loc();
      const rows = await x.query<{
        step_key: string;
        successors: string[];
        successor_ran: boolean;
      }>(
        `select step_key, successors, successor_ran from ${schema}.step_runs
          where run_id = $1 order by step_key`,
        [run!.id],
      );
      expect(rows.rows).toEqual([
        { step_key: 'a', successors: ['c'], successor_ran: true },
        { step_key: 'c', successors: [], successor_ran: false },
        { step_key: 'd', successors: [], successor_ran: false },
      ]);
      const final = await db.stores.runs.getDataclip(engine.environmentId, done.finalDataclipId!);
      expect(final?.body).toEqual({ c: 1, d: 25 });
    } finally {
      await engine.stop();
    }
  });

  it('no foreign key inside a location (references are written from the parent row)', async () => {
    const { db: x, schema } = loc();
    const fks = await x.query<{ n: number }>(
      `select count(*)::int as n from pg_constraint c join pg_namespace n on n.oid = c.connamespace
        where n.nspname = $1 and c.contype = 'f'`,
      [schema.replace(/"/g, '')],
    );
    expect(fks.rows[0]!.n).toBe(0);
  });
});
