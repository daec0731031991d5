/**
 * Two transactions commit the last two open branches of a run at the same time. Each must not
 * conclude "the other is still running": the second waits on the run row lock taken by
 * finish_if_done and then sees the first committed, so exactly one of them ends the run.
 * Without the lock this test leaves the run `running` forever (both commits see the other open).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileWorkflow } from '../src/core/graph.js';
import { defineWorkflow } from '../src/index.js';
import { openTestDatabase, type TestDatabase } from './support/databases.js';
import { createStoreRun } from './support/store-runs.js';

describe('finishing the last branches concurrently (PostgreSQL)', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await openTestDatabase('postgres');
  });
  afterAll(async () => {
    await db?.close();
  });

  it('ends the run exactly once when two branches commit at the same time', async () => {
    const wf = defineWorkflow('two-leaves')
      .step('root', () => 1)
      .step('left', { after: 'root' }, () => 'l')
      .step('right', { after: 'root' }, () => 'r');
    const compiled = compileWorkflow(wf);
    const { environmentId } = await db.stores.control.createTenant({
      organization: 'o',
      project: 'p',
      environment: 'race',
    });
    const run = await createStoreRun(db.stores, environmentId, compiled);
    const runs = db.stores.runs;
    const [root] = await runs.claimSteps('w', [environmentId], ['two-leaves'], 1, 60_000);
    await runs.completeStep(root!, 'w', {
      outputText: '1',
      stateSet: null,
      stateDelete: null,
      live: ['left', 'right'],
      dead: [],
      claimNext: false,
      leaseMs: 60_000,
    });
    const branches = await runs.claimSteps('w', [environmentId], ['two-leaves'], 2, 60_000);
    expect(branches.map((b) => b.stepKey).sort()).toEqual(['left', 'right']);

    const commitSql = `select weft_loc_a0.complete_step($1, $2, 'w', $3, $4, null, null, '{}', '{}', false, 60000) as r`;
    const a = new pg.Client({ connectionString: db.url });
    const b = new pg.Client({ connectionString: db.url });
    await Promise.all([a.connect(), b.connect()]);
    try {
      await a.query('begin');
      await a.query(commitSql, [
        branches[0]!.stepRunId,
        branches[0]!.attempt,
        '"x"',
        `dc_a0${'0'.repeat(25)}1`,
      ]);
      // b commits the other branch while a's transaction is still open
      const bDone = b.query(commitSql, [
        branches[1]!.stepRunId,
        branches[1]!.attempt,
        '"y"',
        `dc_a0${'0'.repeat(25)}2`,
      ]);
      const raced = await Promise.race([
        bDone.then(() => 'b finished first'),
        new Promise((r) => setTimeout(() => r('b waits'), 300)),
      ]);
      expect(raced).toBe('b waits'); // blocked on the run row lock
      await a.query('commit');
      const result = (await bDone).rows[0].r as { runStatus: string };
      expect(result.runStatus).toBe('succeeded');
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
    const done = await runs.getRun(environmentId, run.id);
    expect(done?.status).toBe('succeeded');
    const final = await runs.getDataclip(environmentId, done!.finalDataclipId!);
    expect(final?.body).toEqual({
      left: branches[0]!.stepKey === 'left' ? 'x' : 'y',
      right: branches[0]!.stepKey === 'right' ? 'x' : 'y',
    });
    const ended = await db.executor.query<{ n: number }>(
      `select count(*)::int as n from weft_loc_a0.run_events where run_id = $1 and kind like 'run.%' and kind <> 'run.created'`,
      [run.id],
    );
    expect(ended.rows[0]!.n).toBe(1);
  });
});
