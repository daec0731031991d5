import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';
import { startTestEngine } from './support/engine.js';

describe.each(BACKENDS)('final state on %s', (backend) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
  });
  afterAll(async () => {
    await db?.close();
  });

  const dataclipKinds = async (runId: string) => {
    const rows = await db.executor.query<{ kind: string; n: number; wiped: number }>(
      `select kind, count(*)::int as n, count(wiped_at)::int as wiped from weft_loc_a0.dataclips where run_id = $1 group by kind order by kind`,
      [runId],
    );
    return Object.fromEntries(rows.rows.map((r) => [r.kind, { n: r.n, wiped: r.wiped }]));
  };

  it('one leaf: the run points at that step output, and no dataclip is written for the final state', async () => {
    const wf = defineWorkflow<number>('one-leaf')
      .step('a', (n) => n + 1)
      .step('b', { after: 'a' }, (n) => ({ total: n * 10 }));
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const done = await engine.waitForRun((await engine.trigger('one-leaf', 4)).run.id);
      const steps = (await db.stores.runs.listStepRuns(engine.environmentId, done.id))!;
      const leaf = steps.find((s) => s.stepKey === 'b')!;
      expect(done.finalDataclipId).toBe(leaf.outputDataclipId);
      expect(await dataclipKinds(done.id)).toEqual({
        input: { n: 1, wiped: 0 },
        output: { n: 2, wiped: 0 },
      });
      expect(
        (await db.stores.runs.getDataclip(engine.environmentId, done.finalDataclipId!))?.body,
      ).toEqual({ total: 50 });
    } finally {
      await engine.stop();
    }
  });

  it('several leaves: one merged dataclip keyed by step', async () => {
    const wf = defineWorkflow<number>('many-leaves')
      .step('src', (n) => n)
      .step('left', { after: 'src' }, (n) => n - 1)
      .step('right', { after: 'src' }, (n) => ({ plus: n + 1 }));
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const done = await engine.waitForRun((await engine.trigger('many-leaves', 7)).run.id);
      expect(await dataclipKinds(done.id)).toEqual({
        final: { n: 1, wiped: 0 },
        input: { n: 1, wiped: 0 },
        output: { n: 3, wiped: 0 },
      });
      const final = await db.stores.runs.getDataclip(engine.environmentId, done.finalDataclipId!);
      expect(final).toMatchObject({ kind: 'final', body: { left: 6, right: { plus: 8 } } });
    } finally {
      await engine.stop();
    }
  });

  it('saveDataclips off: the run works, and when it ends no body is kept (metadata stays, marked wiped)', async () => {
    const wf = defineWorkflow<{ secret: string }>('no-save')
      .step('read', ({ secret }) => secret.toUpperCase())
      .step('use', { after: 'read' }, (s) => `${s}!`)
      .step('also', { after: 'read' }, (s) => s.length);
    const engine = await startTestEngine(db.stores, [wf], { saveDataclips: false });
    try {
      const done = await engine.waitForRun(
        (await engine.trigger('no-save', { secret: 'pin-1234' })).run.id,
      );
      expect(done.status).toBe('succeeded');
      expect(done.saveDataclips).toBe(false);
      expect(await dataclipKinds(done.id)).toEqual({
        final: { n: 1, wiped: 1 },
        input: { n: 1, wiped: 1 },
        output: { n: 3, wiped: 3 },
      });
      const bodies = await db.executor.query<{ n: number }>(
        `select count(*)::int as n from weft_loc_a0.dataclips where run_id = $1 and body is not null`,
        [done.id],
      );
      expect(bodies.rows[0]!.n).toBe(0);
      const final = await db.stores.runs.getDataclip(engine.environmentId, done.finalDataclipId!);
      expect(final?.body).toBeNull();
      expect(final?.wipedAt).not.toBeNull();
      // the step outputs still flowed between steps while the run was live
      const steps = (await db.stores.runs.listStepRuns(engine.environmentId, done.id))!;
      expect(steps.every((s) => s.status === 'succeeded')).toBe(true);
    } finally {
      await engine.stop();
    }
  });
});
