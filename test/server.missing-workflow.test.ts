/**
 * A missing workflow is the same answer on every route: 404 `unknown_workflow`, naming the id in
 * the message and in `details.workflowId` (issue 8, "one error contract"). Before, the workflow
 * detail answered `not_found` while trigger, schedules and webhooks answered `unknown_workflow`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineWorkflow, TerminalError } from '../src/index.js';
import { BACKENDS } from './support/databases.js';
import { call, openServerFixture, type ServerFixture } from './support/server-fixture.js';

const report = defineWorkflow('report').step('make', () => 'made');
const gone = defineWorkflow('gone').step('s', () => null);
const orphanFailed = defineWorkflow('orphan-failed').step('s', () => {
  throw new TerminalError('fails on purpose');
});
const orphanPaused = defineWorkflow('orphan-paused').step(
  's',
  { retry: { maxAttempts: 1 }, onExhausted: 'pause' },
  () => {
    throw new Error('pauses on purpose');
  },
);

const YEARLY = '0 0 1 1 *';

describe.each(BACKENDS)('a missing workflow on every route, on %s', (backend) => {
  let f: ServerFixture;
  let control: string;

  beforeAll(async () => {
    f = await openServerFixture(backend, [report, gone, orphanFailed, orphanPaused]);
    control = f.db.stores.schemas.control;
  });
  afterAll(async () => {
    await f?.close();
  });

  /** 404 unknown_workflow naming the id: the one answer for a workflow that is not there. */
  function expectUnknownWorkflow(
    res: {
      status: number;
      body: { error?: { code: string; message: string; details?: Record<string, unknown> } };
    },
    workflowId: string,
    options: { listsKnown?: boolean } = {},
  ) {
    expect({ status: res.status, code: res.body.error?.code }).toEqual({
      status: 404,
      code: 'unknown_workflow',
    });
    expect(res.body.error!.message).toContain(workflowId);
    expect(res.body.error!.details).toMatchObject({ workflowId });
    if (options.listsKnown !== false)
      expect(res.body.error!.details!.known).toEqual(expect.arrayContaining(['report']));
  }

  async function waitForStatus(runId: string, statuses: string[]) {
    for (let i = 0; i < 300; i++) {
      const run = (await call(f.app, 'GET', `/api/v1/runs/${runId}`, f.auth)).body;
      if (statuses.includes(run.status)) return run;
      await sleep(20);
    }
    throw new Error(`run ${runId} did not reach ${statuses.join('/')}`);
  }

  it('POST /api/v1/workflows/{id}/runs (trigger)', async () => {
    const res = await call(f.app, 'POST', '/api/v1/workflows/nope/runs', f.auth, { input: 1 });
    expectUnknownWorkflow(res, 'nope');
    const malformed = await call(f.app, 'POST', '/api/v1/workflows/a%20b/runs', f.auth, {});
    expectUnknownWorkflow(malformed, 'a b', { listsKnown: false });
  });

  it('GET /api/v1/workflows/{id} (workflow detail)', async () => {
    const res = await call(f.app, 'GET', '/api/v1/workflows/nope', f.auth);
    expectUnknownWorkflow(res, 'nope');
    // an id that cannot be a workflow id: the same code, the same shape
    const malformed = await call(f.app, 'GET', '/api/v1/workflows/a%20b', f.auth);
    expectUnknownWorkflow(malformed, 'a b', { listsKnown: false });
  });

  it('POST /api/v1/schedules and PATCH /api/v1/schedules/{id}', async () => {
    const created = await call(f.app, 'POST', '/api/v1/schedules', f.auth, {
      workflowId: 'nope',
      cron: YEARLY,
    });
    expectUnknownWorkflow(created, 'nope');
    const malformed = await call(f.app, 'POST', '/api/v1/schedules', f.auth, {
      workflowId: 'a b',
      cron: YEARLY,
    });
    expectUnknownWorkflow(malformed, 'a b');
    const ok = await call(f.app, 'POST', '/api/v1/schedules', f.auth, {
      workflowId: 'report',
      cron: YEARLY,
    });
    expect(ok.status).toBe(201);
    const patched = await call(f.app, 'PATCH', `/api/v1/schedules/${ok.body.id}`, f.auth, {
      workflowId: 'nope',
    });
    expectUnknownWorkflow(patched, 'nope');
  });

  it('POST /api/v1/webhooks, and POST /hooks/{id} once its workflow is gone', async () => {
    const created = await call(f.app, 'POST', '/api/v1/webhooks', f.auth, { workflowId: 'nope' });
    expectUnknownWorkflow(created, 'nope');
    const malformed = await call(f.app, 'POST', '/api/v1/webhooks', f.auth, { workflowId: 'a b' });
    expectUnknownWorkflow(malformed, 'a b');
    const hook = await call(f.app, 'POST', '/api/v1/webhooks', f.auth, { workflowId: 'gone' });
    expect(hook.status).toBe(201);
    // The workflow leaves the environment (deleted directly: there is no API for it).
    await f.db.executor.query(
      `delete from ${control}.workflows where environment_id = $1 and id = 'gone'`,
      [f.environmentId],
    );
    const res = await call(
      f.app,
      'POST',
      hook.body.path,
      { 'content-type': 'application/json' },
      {
        x: 1,
      },
    );
    // the sender may not see the environment's workflows: no `known` list for it
    expectUnknownWorkflow(res, 'gone', { listsKnown: false });
    expect(res.body.error.details.known).toBeUndefined();
  });

  it('POST /api/v1/bulk-reruns with an unknown filter.workflowId', async () => {
    const res = await call(f.app, 'POST', '/api/v1/bulk-reruns', f.auth, {
      filter: { workflowId: 'nope' },
      dryRun: true,
    });
    expectUnknownWorkflow(res, 'nope');
    // an id no workflow can have: the same answer
    const malformed = await call(f.app, 'POST', '/api/v1/bulk-reruns', f.auth, {
      filter: { workflowId: 'a b' },
      dryRun: true,
    });
    expectUnknownWorkflow(malformed, 'a b');
  });

  it('rerun, resume and bulk rerun on version "current" of a workflow with no current version', async () => {
    const failed = await call(f.app, 'POST', '/api/v1/workflows/orphan-failed/runs', f.auth, {});
    const paused = await call(f.app, 'POST', '/api/v1/workflows/orphan-paused/runs', f.auth, {});
    await waitForStatus(failed.body.id, ['failed']);
    await waitForStatus(paused.body.id, ['paused']);
    // The workflows lose their current version (no API does this; a damaged or hand-edited
    // control plane can), then the control store's 2 s cache of current versions runs out.
    await f.db.executor.query(
      `update ${control}.workflows set current_version_id = null
        where environment_id = $1 and id in ('orphan-failed', 'orphan-paused')`,
      [f.environmentId],
    );
    await sleep(2_100);

    const rerun = await call(f.app, 'POST', `/api/v1/runs/${failed.body.id}/rerun`, f.auth, {
      fromStep: 's',
      version: 'current',
    });
    expectUnknownWorkflow(rerun, 'orphan-failed');
    expect(rerun.body.error.message).toContain('version "original"');

    const resume = await call(f.app, 'POST', `/api/v1/runs/${paused.body.id}/resume`, f.auth, {
      version: 'current',
    });
    expectUnknownWorkflow(resume, 'orphan-paused');

    const trigger = await call(f.app, 'POST', '/api/v1/workflows/orphan-failed/runs', f.auth, {});
    expectUnknownWorkflow(trigger, 'orphan-failed');

    const bulk = await call(f.app, 'POST', '/api/v1/bulk-reruns', f.auth, {
      filter: { workflowId: 'orphan-failed' },
      version: 'current',
      dryRun: true,
    });
    expect(bulk.status).toBe(200);
    expect(bulk.body.summary.problems[0]).toMatchObject({
      runId: failed.body.id,
      code: 'unknown_workflow',
    });

    // on its own version the same run still reruns
    const original = await call(f.app, 'POST', `/api/v1/runs/${failed.body.id}/rerun`, f.auth, {
      fromStep: 's',
      dryRun: true,
    });
    expect(original.status).toBe(200);
  });
});
