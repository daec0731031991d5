/**
 * Run status `waiting` (issue 7: a run whose steps all wait said `running`, and
 * `GET /runs?status=waiting` was always empty), on PGlite and PostgreSQL: a run is `waiting`
 * while every open step of it waits (approval, sleep, child run) and `running` as soon as one is
 * ready or executing; both transitions are run events, so the event stream shows them.
 *
 * Catches: the status never set, set while a sibling branch still runs, not set back when the
 * waitpoint completes (a run that says `waiting` while it executes, or never finishes), and a run
 * left `running` by two branches committing at once (the sweep).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import type { Engine } from '../src/engine/engine.js';
import type { RunStatus } from '../src/store/rows.js';
import { mintRunScopedId } from '../src/core/ids.js';
import {
  BACKENDS,
  finalStateOf,
  openTestDatabase,
  type TestDatabase,
} from './support/databases.js';
import { startTestEngine } from './support/engine.js';
import { call, openServerFixture, type ServerFixture } from './support/server-fixture.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const approve = defineWorkflow('approve-then-step')
  .step('prepare', () => 1)
  .approval('ok', { after: 'prepare' })
  .step('ship', { after: 'ok' }, () => 'shipped');

/** One branch waits on an approval while the other still works for a while. */
let releaseSlow: () => void = () => {};
const mixed = defineWorkflow('approval-beside-slow-step')
  .approval('ok', {})
  .step('slow', async () => {
    await new Promise<void>((resolve) => (releaseSlow = resolve));
    return 'slow done';
  })
  .step('join', { after: ['ok', 'slow'] }, () => 'joined');

const napping = defineWorkflow('naps')
  .sleep('nap', { duration: 400 })
  .step('after', { after: 'nap' }, () => 1);

/** A step held open beside a long sleep: the race test completes the step itself. */
let releaseHeld: () => void = () => {};
const heldBesideNap = defineWorkflow('held-beside-nap')
  .step('held', async () => {
    await new Promise<void>((resolve) => (releaseHeld = resolve));
    return 'from the worker';
  })
  .sleep('nap', { duration: 3_600_000 });

const childWaits = defineWorkflow('child-waits').approval('child-ok', {});
const parent = defineWorkflow('parent-of-waiting-child').subWorkflow('call', {
  workflow: 'child-waits',
});

describe.each(BACKENDS)('run status waiting on %s', (backend) => {
  let db: TestDatabase;
  let engine: Engine;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
    engine = await startTestEngine(db.stores, [approve, mixed, napping, childWaits, parent]);
  });
  afterAll(async () => {
    await engine?.stop();
    await db?.close();
  });

  const statusOf = async (runId: string) =>
    (await db.stores.runs.getRun(engine.environmentId, runId))!.status;
  const until = async (runId: string, status: RunStatus) => {
    for (let i = 0; i < 200; i++) {
      if ((await statusOf(runId)) === status) return;
      await sleep(25);
    }
    throw new Error(`run ${runId} never became ${status}; it is ${await statusOf(runId)}`);
  };
  const kinds = async (runId: string) =>
    (await db.stores.runs.listRunEvents(engine.environmentId, runId))!
      .map((e) => e.kind)
      .filter((k) => k.startsWith('run.') || k.startsWith('waitpoint.'));
  const waitpointOf = async (runId: string) => {
    for (let i = 0; i < 200; i++) {
      const w = (await db.stores.runs.listWaitpoints(engine.environmentId, runId)).find(
        (x) => x.status === 'waiting',
      );
      if (w) return w;
      await sleep(25);
    }
    throw new Error(`run ${runId} has no waiting waitpoint`);
  };

  it('an approval: waiting, listed by status, running again when completed, then succeeded', async () => {
    const { run } = await engine.trigger('approve-then-step', null);
    await until(run.id, 'waiting');
    const listed = await db.stores.runs.listRuns({
      environmentId: engine.environmentId,
      statuses: ['waiting'],
      limit: 100,
    });
    expect(listed.data.map((r) => r.id)).toContain(run.id);
    const running = await db.stores.runs.listRuns({
      environmentId: engine.environmentId,
      statuses: ['running'],
      limit: 100,
    });
    expect(running.data.map((r) => r.id)).not.toContain(run.id);
    await engine.completeWaitpoint((await waitpointOf(run.id)).id, null);
    const done = await engine.waitForRun(run.id);
    expect(done.status).toBe('succeeded');
    expect(await kinds(run.id)).toEqual([
      'run.created',
      'run.waiting',
      'run.running',
      'waitpoint.completed',
      'run.succeeded',
    ]);
  });

  it('a branch still executing keeps the run running; it waits once that branch is done', async () => {
    const { run } = await engine.trigger('approval-beside-slow-step', null);
    await waitpointOf(run.id);
    for (
      let i = 0;
      i < 200 &&
      (await db.stores.runs.listStepRuns(engine.environmentId, run.id))!.every(
        (s) => s.stepKey !== 'slow' || s.status !== 'running',
      );
      i++
    )
      await sleep(25);
    await sleep(100);
    expect(await statusOf(run.id)).toBe('running');
    releaseSlow();
    await until(run.id, 'waiting');
    await engine.completeWaitpoint((await waitpointOf(run.id)).id, null);
    expect((await engine.waitForRun(run.id)).status).toBe('succeeded');
  });

  it('a sleep: waiting until the timer wakes it, then succeeded', async () => {
    const { run } = await engine.trigger('naps', null);
    await until(run.id, 'waiting');
    expect((await engine.waitForRun(run.id)).status).toBe('succeeded');
    expect(await kinds(run.id)).toEqual([
      'run.created',
      'run.waiting',
      'run.running',
      'waitpoint.completed',
      'run.succeeded',
    ]);
  });

  it('a child run: the child waits on its approval, the parent waits on the child', async () => {
    const { run } = await engine.trigger('parent-of-waiting-child', null);
    await until(run.id, 'waiting');
    const child = (
      await db.stores.runs.listRuns({
        environmentId: engine.environmentId,
        workflowId: 'child-waits',
        limit: 10,
      })
    ).data.find((r) => r.parentRunId === run.id)!;
    await until(child.id, 'waiting');
    await engine.completeWaitpoint((await waitpointOf(child.id)).id, 'ok');
    expect((await engine.waitForRun(child.id)).status).toBe('succeeded');
    expect((await engine.waitForRun(run.id)).status).toBe('succeeded');
    expect(await kinds(run.id)).toEqual([
      'run.created',
      'run.waiting',
      'run.running',
      'run.succeeded',
    ]);
  });

  it('the sweep settles a run left running although every open step waits', async () => {
    const { run } = await engine.trigger('approve-then-step', null);
    await until(run.id, 'waiting');
    // what a lost race leaves behind: the status written by a commit that did not see the park
    const loc = db.stores.schemas.locations[0]!;
    await db.executor.query(`update ${loc}.runs set status = 'running' where id = $1`, [run.id]);
    await db.executor.query(
      `update ${loc}.waitpoints set created_at = now() - interval '2 seconds' where run_id = $1`,
      [run.id],
    );
    await until(run.id, 'waiting'); // the engine's timer (every 50 ms) runs the sweep
    await engine.completeWaitpoint((await waitpointOf(run.id)).id, null);
    expect((await engine.waitForRun(run.id)).status).toBe('succeeded');
  });
});

// PostgreSQL only: the race needs two connections (PGlite runs one transaction at a time).
describe('run status waiting, a race on postgres', () => {
  let db: TestDatabase;
  let engine: Engine;
  let t1: pg.Client;
  beforeAll(async () => {
    db = await openTestDatabase('postgres');
    engine = await startTestEngine(db.stores, [heldBesideNap]);
    t1 = new pg.Client({ connectionString: db.url });
    await t1.connect();
  });
  afterAll(async () => {
    releaseHeld();
    await t1?.query('rollback').catch(() => {});
    await t1?.end();
    await engine?.stop();
    await db?.close();
  });

  // CI's fuzz run left a run `waiting` for good with every step run ended: a commit (T1) marked
  // the run waiting (the settle trigger) while a sleep fired (T0). T0's wake saw the run still
  // `running`, so it left it alone; the claim of the woken step saw `running` too; the step's
  // commit then found the run `waiting` and did not end it. Here T1 is held open, by hand, right
  // after its settle trigger ran (SET CONSTRAINTS … IMMEDIATE), while the timer fires the sleep.
  it('a sleep that fires while a commit marks the run waiting: the run still ends', async () => {
    const loc = db.stores.schemas.locations[0]!;
    const { run } = await engine.trigger('held-beside-nap', null);
    let held: { id: string; attempt_count: number; lease_owner: string } | undefined;
    let napWaitpoint: string | undefined;
    for (let i = 0; i < 400 && (!held || !napWaitpoint); i++) {
      held = (
        await db.executor.query<{ id: string; attempt_count: number; lease_owner: string }>(
          `select id, attempt_count, lease_owner from ${loc}.step_runs
            where run_id = $1 and step_key = 'held' and status = 'running'`,
          [run.id],
        )
      ).rows[0];
      napWaitpoint = (
        await db.executor.query<{ id: string }>(
          `select id from ${loc}.waitpoints where run_id = $1 and status = 'waiting'`,
          [run.id],
        )
      ).rows[0]?.id;
      if (!held || !napWaitpoint) await sleep(25);
    }
    expect(held, 'the held step runs').toBeDefined();
    expect(napWaitpoint, 'the sleep waits').toBeDefined();

    // T1: the worker's commit of `held`, the same function, its deferred trigger run now
    await t1.query('begin');
    const tag = run.id.slice(4, 6);
    const committed = await t1.query<{ r: { status: string } }>(
      `select ${loc}.complete_step($1, $2, $3, $4, $5, null, '{}', '{}', '{}', false, 30000) as r`,
      [held!.id, held!.attempt_count, held!.lease_owner, '"from T1"', mintRunScopedId('dc', tag)],
    );
    expect(committed.rows[0]!.r.status).toBe('committed');
    await t1.query('set constraints all immediate');
    const inT1 = await t1.query<{ status: string }>(
      `select status from ${loc}.runs where id = $1`,
      [run.id],
    );
    expect(inT1.rows[0]!.status, 'T1 has marked the run waiting').toBe('waiting');

    // T0: the sleep is due now; the engine's timer (every 50 ms) fires it while T1 is open
    await db.executor.query(`update ${loc}.waitpoints set resume_at = now() where id = $1`, [
      napWaitpoint,
    ]);
    await sleep(1_000);
    await t1.query('commit');

    const done = await engine.waitForRun(run.id, { timeoutMs: 15_000 });
    expect(done.status).toBe('succeeded');
    expect(await finalStateOf(db, engine.environmentId, run.id)).toEqual({
      held: 'from T1',
      nap: null,
    });
  });
});

describe.each(BACKENDS)('run status waiting over HTTP on %s', (backend) => {
  let f: ServerFixture;
  beforeAll(async () => {
    f = await openServerFixture(backend, [approve]);
  });
  afterAll(async () => {
    await f?.close();
  });

  it('GET /runs?status=waiting finds it, GET /runs/{id} says waiting, the event stream shows it', async () => {
    const created = await call(
      f.app,
      'POST',
      '/api/v1/workflows/approve-then-step/runs',
      f.auth,
      {},
    );
    const runId = created.body.id as string;
    let listed: string[] = [];
    for (let i = 0; i < 200 && !listed.includes(runId); i++) {
      await sleep(25);
      listed = (await call(f.app, 'GET', '/api/v1/runs?status=waiting', f.auth)).body.data.map(
        (r: { id: string }) => r.id,
      );
    }
    expect(listed).toContain(runId);
    expect((await call(f.app, 'GET', `/api/v1/runs/${runId}`, f.auth)).body.status).toBe('waiting');
    const [w] = (await call(f.app, 'GET', `/api/v1/runs/${runId}/waitpoints`, f.auth)).body.data;
    expect(w).toMatchObject({ kind: 'approval', stepKey: 'ok', status: 'waiting' });
    await call(f.app, 'POST', `/api/v1/waitpoints/${w.token}/complete`, f.auth, {});
    await f.engine.waitForRun(runId);
    const res = await f.app.request(`/api/v1/runs/${runId}/events`, { headers: f.auth });
    const text = await res.text();
    const events = text
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => (JSON.parse(l.slice(6)) as { kind: string }).kind)
      .filter((k) => k.startsWith('run.'));
    expect(events).toEqual(['run.created', 'run.waiting', 'run.running', 'run.succeeded']);
  });
});
