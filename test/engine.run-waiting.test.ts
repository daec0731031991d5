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
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import type { Engine } from '../src/engine/engine.js';
import type { RunStatus } from '../src/store/rows.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';
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
