/**
 * Steering runs over HTTP: cancel, resume a paused run (on its version or the current one),
 * complete an approval (schema, once only), list waitpoints — and the key matrix on each route:
 * the same environment acts, a sibling environment or another organization gets 404 and changes
 * nothing, a bad key gets 401.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS } from './support/databases.js';
import { call, openServerFixture, type ServerFixture } from './support/server-fixture.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const approvalWorkflow = defineWorkflow<string>('sign-off')
  .approval('review', { schema: z.object({ ok: z.boolean() }).strict() })
  .step('note', { after: 'review' }, (r) => ((r as { ok: boolean }).ok ? 'approved' : 'rejected'));

const pausingWorkflow = defineWorkflow<number>('fixable')
  .step('parse', { retry: { maxAttempts: 1 }, onExhausted: 'pause' }, (n): number => {
    throw new Error(`cannot parse ${n}`);
  })
  .step('use', { after: 'parse' }, (n) => n * 2);

/** The same steps with the bug fixed; and a version with another step set. */
const fixedWorkflow = defineWorkflow<number>('fixable')
  .step('parse', { retry: { maxAttempts: 1 }, onExhausted: 'pause' }, (n) => n + 0)
  .step('use', { after: 'parse' }, (n) => n * 2);
const reshapedWorkflow = defineWorkflow<number>('fixable')
  .step('parse', { retry: { maxAttempts: 1 }, onExhausted: 'pause' }, (n) => n + 0)
  .step('double', { after: 'parse' }, (n) => n * 2);

const holdWorkflow = defineWorkflow('hold').sleep('nap', { duration: '1h' });

describe.each(BACKENDS)('run control over HTTP on %s', (backend) => {
  let f: ServerFixture;
  beforeAll(async () => {
    f = await openServerFixture(backend, [approvalWorkflow, pausingWorkflow, holdWorkflow]);
  });
  afterAll(async () => {
    await f?.close();
  });

  const status = async (runId: string) =>
    (await f.db.stores.runs.getRun(f.environmentId, runId))?.status;
  const waitFor = async (runId: string, want: string) => {
    for (let i = 0; i < 400; i++) {
      if ((await status(runId)) === want) return;
      await sleep(25);
    }
    throw new Error(`run ${runId} never became ${want} (it is ${await status(runId)})`);
  };
  /** A parked run stays `running`; its waitpoint says it waits. */
  const waitpointOf = async (runId: string) => {
    for (let i = 0; i < 400; i++) {
      const [w] = await f.db.stores.runs.listWaitpoints(f.environmentId, runId);
      if (w?.status === 'waiting') return w;
      await sleep(25);
    }
    throw new Error(`run ${runId} never parked on a waitpoint`);
  };

  /** Every caller that must not act: 404 for other tenants, 401 for bad keys; nothing changes. */
  async function refusedToOthers(method: string, path: string, body?: unknown) {
    for (const other of [f.sibling, f.foreign]) {
      const res = await call(f.app, method, path, other.auth, body);
      expect(res.status, `${path} as ${other.environmentId}`).toBe(404);
      expect(res.body.error.code).toBe('not_found');
    }
    for (const caller of f.unauthorized) {
      const res = await call(f.app, method, path, caller.headers, body);
      expect(res.status, `${path} as ${caller.name}`).toBe(401);
      expect(res.body.error).toMatchObject({
        code: 'unauthorized',
        details: { reason: caller.reason },
      });
    }
  }

  it('cancels a run once: 200 with the run, then 409 run_not_active; others get 404/401 and change nothing', async () => {
    const { run } = await f.engine.trigger('hold', null);
    await waitpointOf(run.id);
    await refusedToOthers('POST', `/api/v1/runs/${run.id}/cancel`);
    // untouched: still parked on its waitpoint, so `waiting`
    expect(await status(run.id)).toBe('waiting');

    const res = await call(f.app, 'POST', `/api/v1/runs/${run.id}/cancel`, f.auth);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: run.id, status: 'canceled', workflowId: 'hold' });
    expect(res.body.finishedAt).not.toBeNull();
    // a cancel is not a failure: it says so (it said "The run failed.")
    expect(res.body.error).toEqual({ message: 'The run was canceled: canceled through the API' });
    expect(await status(run.id)).toBe('canceled');

    const again = await call(f.app, 'POST', `/api/v1/runs/${run.id}/cancel`, f.auth);
    expect(again.status).toBe(409);
    expect(again.body.error).toMatchObject({
      code: 'run_not_active',
      details: { runId: run.id, status: 'canceled' },
    });
    expect(again.body.error.message).toContain(run.id);

    for (const id of ['run_a0' + '0'.repeat(26), 'nope', 'wp_a0' + '0'.repeat(26)]) {
      const missing = await call(f.app, 'POST', `/api/v1/runs/${id}/cancel`, f.auth);
      expect(missing.status, id).toBe(404);
      expect(missing.body.error.message).toContain('GET /api/v1/runs');
    }
  });

  it('resumes a paused run: 409 run_not_paused before, version_mismatch for other steps, 200 on the fixed version', async () => {
    const { run } = await f.engine.trigger('fixable', 21);
    const notYet = await call(f.app, 'POST', `/api/v1/runs/${run.id}/resume`, f.auth, {});
    // Either still running or already paused: a race the test settles by waiting next.
    if (notYet.status === 409) expect(notYet.body.error.code).toBe('run_not_paused');
    await waitFor(run.id, 'paused');
    await refusedToOthers('POST', `/api/v1/runs/${run.id}/resume`, {});
    expect(await status(run.id)).toBe('paused');

    const badBody = await call(f.app, 'POST', `/api/v1/runs/${run.id}/resume`, f.auth, {
      version: 'latest',
    });
    expect(badBody.status).toBe(400);
    expect(badBody.body.error.code).toBe('bad_request');

    await f.engine.register(reshapedWorkflow);
    const mismatch = await call(f.app, 'POST', `/api/v1/runs/${run.id}/resume`, f.auth, {
      version: 'current',
    });
    expect(mismatch.status).toBe(409);
    expect(mismatch.body.error).toMatchObject({
      code: 'version_mismatch',
      details: { missing: ['use'], added: ['double'] },
    });
    expect(await status(run.id)).toBe('paused');

    await f.engine.register(fixedWorkflow);
    const resumed = await call(f.app, 'POST', `/api/v1/runs/${run.id}/resume`, f.auth, {
      version: 'current',
    });
    expect(resumed.status).toBe(200);
    expect(resumed.body.id).toBe(run.id);
    const done = await f.engine.waitForRun(run.id);
    expect(done.status).toBe('succeeded');

    const twice = await call(f.app, 'POST', `/api/v1/runs/${run.id}/resume`, f.auth);
    expect(twice.status).toBe(409);
    expect(twice.body.error).toMatchObject({
      code: 'run_not_paused',
      details: { status: 'succeeded' },
    });
    await f.engine.register(pausingWorkflow);
  });

  it('lists waitpoints and completes an approval: schema 422, once only 409, unknown 404, others 404/401', async () => {
    const { run } = await f.engine.trigger('sign-off', 'doc-1');
    await waitpointOf(run.id);
    const list = await call(f.app, 'GET', `/api/v1/runs/${run.id}/waitpoints`, f.auth);
    expect(list.status).toBe(200);
    expect(list.body.data).toHaveLength(1);
    const wp = list.body.data[0];
    expect(wp).toMatchObject({
      runId: run.id,
      stepKey: 'review',
      kind: 'approval',
      status: 'waiting',
      completedAt: null,
    });
    expect(wp.payloadSchema).toMatchObject({ type: 'object' });
    await refusedToOthers('GET', `/api/v1/runs/${run.id}/waitpoints`);
    const unknownRun = await call(
      f.app,
      'GET',
      `/api/v1/runs/run_a0${'0'.repeat(26)}/waitpoints`,
      f.auth,
    );
    expect(unknownRun.status).toBe(404);

    const path = `/api/v1/waitpoints/${wp.token}/complete`;
    await refusedToOthers('POST', path, { payload: { ok: true } });
    const invalid = await call(f.app, 'POST', path, f.auth, { payload: { ok: 'yes' } });
    expect(invalid.status).toBe(422);
    expect(invalid.body.error.code).toBe('invalid_payload');
    expect(invalid.body.error.message).toContain('review');
    const unknownField = await call(f.app, 'POST', path, f.auth, { payloads: { ok: true } });
    expect(unknownField.status).toBe(400);
    expect((await waitpointOf(run.id)).status).toBe('waiting');

    const ok = await call(f.app, 'POST', path, f.auth, { payload: { ok: true } });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ token: wp.token, status: 'completed', runId: run.id });
    expect(ok.body.payloadDataclipId).toMatch(/^dc_/);
    const again = await call(f.app, 'POST', path, f.auth, { payload: { ok: true } });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('waitpoint_not_waiting');
    expect(again.body.error.message).toContain(run.id);

    const done = await f.engine.waitForRun(run.id);
    expect(done.status).toBe('succeeded');

    for (const token of ['wp_a0' + '0'.repeat(26), 'garbage', run.id]) {
      const res = await call(f.app, 'POST', `/api/v1/waitpoints/${token}/complete`, f.auth, {
        payload: null,
      });
      expect(res.status, token).toBe(404);
      expect(res.body.error.code).toBe('not_found');
      expect(res.body.error.message).toContain('/waitpoints');
    }
  });

  it('a sleep is not completed by API (409), and cancel cancels its waitpoint', async () => {
    const { run } = await f.engine.trigger('hold', null);
    await waitpointOf(run.id);
    const [nap] = (await call(f.app, 'GET', `/api/v1/runs/${run.id}/waitpoints`, f.auth)).body.data;
    expect(nap).toMatchObject({ kind: 'sleep', status: 'waiting' });
    expect(nap.resumeAt).not.toBeNull();
    const res = await call(f.app, 'POST', `/api/v1/waitpoints/${nap.token}/complete`, f.auth, {});
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('waitpoint_not_waiting');
    await call(f.app, 'POST', `/api/v1/runs/${run.id}/cancel`, f.auth);
    const after = await call(f.app, 'GET', `/api/v1/runs/${run.id}/waitpoints`, f.auth);
    expect(after.body.data[0].status).toBe('canceled');
  });

  it('the routes are in the OpenAPI document', async () => {
    const doc = await call(f.app, 'GET', '/api/openapi.json', {});
    for (const p of [
      '/api/v1/runs/{runId}/cancel',
      '/api/v1/runs/{runId}/resume',
      '/api/v1/runs/{runId}/waitpoints',
      '/api/v1/runs/{runId}/events',
      '/api/v1/waitpoints/{token}/complete',
    ])
      expect(Object.keys(doc.body.paths)).toContain(p);
  });
});
