/**
 * A sub-workflow step parks on its child run while the child ends: the parent must wake, however
 * the two transactions interleave (PostgreSQL only: PGlite runs one transaction at a time).
 *
 * CI left a parent `waiting` for good (test/engine.input-schema.test.ts): the parent's park (T1)
 * inserted its waitpoint while the child's last commit (T2) ran finish_run. T2 looked for the
 * waitpoint before T1 committed and found none; the parent, right after its park, looked for the
 * child's end before T2 committed and found none. Nobody woke it. Here both transactions are
 * held open by hand in exactly that order.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintRunScopedId } from '../src/core/ids.js';
import type { Engine } from '../src/engine/engine.js';
import { triggerRun } from '../src/engine/trigger.js';
import { defineWorkflow } from '../src/index.js';
import { openTestDatabase, type TestDatabase } from './support/databases.js';
import { startTestEngine } from './support/engine.js';

const child = defineWorkflow('race-child').step('only', () => 1);
const parent = defineWorkflow('race-parent').subWorkflow('call', { workflow: 'race-child' });

describe('a child run that ends while its parent parks, on postgres', () => {
  let db: TestDatabase;
  let engine: Engine;
  const clients: pg.Client[] = [];
  beforeAll(async () => {
    db = await openTestDatabase('postgres');
    // no worker: the test plays the parent's worker and the child's commit itself
    engine = await startTestEngine(db.stores, [child, parent], {
      worker: false,
      reaperIntervalMs: false,
    });
    for (let i = 0; i < 2; i++) {
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      clients.push(c);
    }
  });
  afterAll(async () => {
    for (const c of clients) {
      await c.query('rollback').catch(() => {});
      await c.end();
    }
    await engine?.stop();
    await db?.close();
  });

  /** A parent run whose sub-workflow step is claimed by hand, and its child run, started. */
  async function parentWithChild(n: number) {
    const { run } = await engine.trigger('race-parent', { n });
    // an earlier test's parent step, woken and ready again, may be claimed beside it: left alone
    const claims = await db.stores.runs.claimSteps(
      'race-worker',
      [engine.environmentId],
      ['race-parent'],
      10,
      30_000,
    );
    const claim = claims.find((c) => c.runId === run.id);
    if (!claim) throw new Error(`the step of run ${run.id} was not claimed`);
    const { run: childRun } = await triggerRun(db.stores, {
      environmentId: engine.environmentId,
      workflowId: 'race-child',
      input: { n },
      trigger: { kind: 'child', ref: run.id },
      parent: { runId: run.id, stepRunId: claim.stepRunId },
    });
    return { run, claim, childRun };
  }

  it('the park sees the child end, or the child end sees the park: the parent wakes', async () => {
    const [t1, t2] = clients as [pg.Client, pg.Client];
    const loc = db.stores.schemas.locations[0]!;
    const { run, claim, childRun } = await parentWithChild(1);

    // T1: the parent's park, the same function the store calls, not yet committed
    await t1.query('begin');
    const waitpointId = mintRunScopedId('wp', run.id.slice(4, 6));
    const parked = await t1.query<{ r: { status: string } }>(
      `select ${loc}.park_step($1, $2, $3, $4::jsonb) as r`,
      [
        claim.stepRunId,
        claim.attempt,
        'race-worker',
        JSON.stringify({
          waitpoint: { id: waitpointId, kind: 'child_run', childRunId: childRun.id },
        }),
      ],
    );
    expect(parked.rows[0]!.r.status).toBe('parked');

    // T2: the child's end, begun while T1 is open (it waits for T1's row lock, or used to not)
    await t2.query('begin');
    const ending = t2.query(`select ${loc}.finish_run($1, 'succeeded', null)`, [childRun.id]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await t1.query('commit');
    // the parent's worker, right after its park committed, looks for a child that already ended
    await db.stores.runs.wakeParentIfChildEnded(claim.stepRunId, childRun.id);
    await ending;
    await t2.query('commit');

    const step = await db.executor.query<{ status: string }>(
      `select status from ${loc}.step_runs where id = $1`,
      [claim.stepRunId],
    );
    const waitpoint = await db.executor.query<{ status: string }>(
      `select status from ${loc}.waitpoints where id = $1`,
      [waitpointId],
    );
    expect(
      { step: step.rows[0]?.status, waitpoint: waitpoint.rows[0]?.status },
      'the parent step is ready to read its child result',
    ).toEqual({ step: 'ready', waitpoint: 'completed' });
  });

  it('a child that ended before the park: the park itself readies the step', async () => {
    const loc = db.stores.schemas.locations[0]!;
    const { run, claim, childRun } = await parentWithChild(2);
    await db.executor.query(`select ${loc}.finish_run($1, 'succeeded', null)`, [childRun.id]);
    // the worker parks and dies before any follow-up: the park alone must leave the step ready
    const parked = await db.stores.runs.parkStep(claim, 'race-worker', {
      waitpoint: { kind: 'child_run', childRunId: childRun.id },
    });
    expect(parked).not.toBe('fenced');
    const step = await db.executor.query<{ status: string }>(
      `select status from ${loc}.step_runs where id = $1`,
      [claim.stepRunId],
    );
    expect(step.rows[0]?.status).toBe('ready');
    const runRow = await db.executor.query<{ status: string }>(
      `select status from ${loc}.runs where id = $1`,
      [run.id],
    );
    expect(runRow.rows[0]?.status, 'the parent run is not left waiting').not.toBe('waiting');
  });
});
