/**
 * Rerun over HTTP: the plan with fates and reasons, 201 with the new run and its lineage, a dry
 * run that writes nothing, the error matrix (400 body, 404 unknown or foreign run, 409 active or
 * wiped, 422 unknown step), and the key matrix (sibling environment and other organization 404,
 * bad keys 401).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS } from './support/databases.js';
import { call, openServerFixture, type ServerFixture } from './support/server-fixture.js';

const chain = defineWorkflow<number>('rr-chain')
  .step('a', (x) => x + 1)
  .step('b', { after: 'a' }, (x) => x * 2)
  .step('c', { after: 'b' }, (x) => ({ out: x }));

describe.each(BACKENDS)('rerun over HTTP on %s', (backend) => {
  let f: ServerFixture;
  let source: string;
  beforeAll(async () => {
    f = await openServerFixture(backend, [chain]);
    source = (await f.engine.trigger('rr-chain', 1)).run.id;
    expect((await f.engine.waitForRun(source)).status).toBe('succeeded');
  });
  afterAll(async () => {
    await f?.close();
  });

  const runCount = async () =>
    (await f.db.stores.runs.listRuns({ environmentId: f.environmentId, limit: 100 })).data.length;

  it('201: the new run with lineage, and the plan', async () => {
    const res = await call(f.app, 'POST', `/api/v1/runs/${source}/rerun`, f.auth, {
      fromStep: 'b',
    });
    expect(res.status).toBe(201);
    expect(res.body.run).toMatchObject({
      rerunOf: source,
      rerunFromStep: 'b',
      trigger: { kind: 'rerun', ref: source },
    });
    expect(res.body.plan).toMatchObject({
      fromStep: 'b',
      untilStep: null,
      targetUnit: 'b',
      counts: { rerun: 2, reuse: 1, skip: 0 },
    });
    expect(
      res.body.plan.nodes.map((n: { stepId: string; fate: string; reason: string | null }) => [
        n.stepId,
        n.fate,
        n.reason,
      ]),
    ).toEqual([
      ['a', 'reuse', null],
      ['b', 'rerun', 'target'],
      ['c', 'rerun', 'upstream_changed'],
    ]);
    const done = await f.engine.waitForRun(res.body.run.id);
    expect(done.status).toBe('succeeded');
    const got = await call(f.app, 'GET', `/api/v1/runs/${res.body.run.id}`, f.auth);
    expect(got.body).toMatchObject({ rerunOf: source, rerunFromStep: 'b' });
    const steps = await call(f.app, 'GET', `/api/v1/runs/${res.body.run.id}/steps`, f.auth);
    const a = steps.body.data.find((s: { stepKey: string }) => s.stepKey === 'a');
    expect(a.reusedFrom).toEqual({ runId: source, stepRunId: expect.stringMatching(/^sr_/) });
  });

  it('200 dryRun: the plan only, no run', async () => {
    const before = await runCount();
    const res = await call(f.app, 'POST', `/api/v1/runs/${source}/rerun`, f.auth, {
      fromStep: 'c',
      untilStep: 'c',
      version: 'current',
      dryRun: true,
    });
    expect(res.status).toBe(200);
    expect(res.body.run).toBeUndefined();
    expect(res.body.plan.counts).toEqual({ rerun: 1, reuse: 2, skip: 0 });
    expect(await runCount()).toBe(before);
  });

  it('422 unknown_step names the step; 400 for a bad body; 404 for an unknown run', async () => {
    const unknown = await call(f.app, 'POST', `/api/v1/runs/${source}/rerun`, f.auth, {
      fromStep: 'nope',
    });
    expect(unknown.status).toBe(422);
    expect(unknown.body.error.code).toBe('unknown_step');
    expect(unknown.body.error.message).toContain('`nope`');
    for (const body of [{}, { fromStep: 'a', extra: 1 }, { fromStep: 'a', version: 'latest' }]) {
      const bad = await call(f.app, 'POST', `/api/v1/runs/${source}/rerun`, f.auth, body);
      expect(bad.status).toBe(400);
    }
    const missing = await call(
      f.app,
      'POST',
      '/api/v1/runs/run_a001jh8k2m3n4p5q6r7s8t9v0w1x/rerun',
      f.auth,
      { fromStep: 'a' },
    );
    expect(missing.status).toBe(404);
    const malformed = await call(f.app, 'POST', '/api/v1/runs/xyz/rerun', f.auth, {
      fromStep: 'a',
    });
    expect(malformed.status).toBe(404);
  });

  it('key matrix: other environments get 404 and create nothing; bad keys get 401', async () => {
    const before = await runCount();
    for (const auth of [f.sibling.auth, f.foreign.auth]) {
      const res = await call(f.app, 'POST', `/api/v1/runs/${source}/rerun`, auth, {
        fromStep: 'a',
      });
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('not_found');
    }
    for (const caller of f.unauthorized) {
      const res = await call(f.app, 'POST', `/api/v1/runs/${source}/rerun`, caller.headers, {
        fromStep: 'a',
      });
      expect(res.status, caller.name).toBe(401);
    }
    expect(await runCount()).toBe(before);
  });

  it('is in the OpenAPI document', async () => {
    const doc = await call(f.app, 'GET', '/api/openapi.json', {});
    const op = doc.body.paths['/api/v1/runs/{runId}/rerun'].post;
    expect(op.operationId).toBe('rerunRun');
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['200', '201', '409', '422']));
  });
});

describe.each(BACKENDS)('rerun over HTTP without saved dataclips on %s', (backend) => {
  let f: ServerFixture;
  beforeAll(async () => {
    f = await openServerFixture(backend, [chain], { saveDataclips: false });
  });
  afterAll(async () => {
    await f?.close();
  });

  it('409 dataclips_wiped says which output is missing and why', async () => {
    const source = (await f.engine.trigger('rr-chain', 1)).run.id;
    expect((await f.engine.waitForRun(source)).status).toBe('succeeded');
    const res = await call(f.app, 'POST', `/api/v1/runs/${source}/rerun`, f.auth, {
      fromStep: 'c',
    });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('dataclips_wiped');
    expect(res.body.error.message).toMatch(/step `b`.*does not save dataclips/);
    expect(res.body.error.details).toMatchObject({ stepId: 'b', neededBy: 'c' });
  });
});
