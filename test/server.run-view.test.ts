/**
 * What the dashboard's run and workflow pages read: a rerun's steps listed as a whole run (reused
 * steps with `reusedFrom`, state patches, durations), `GET /runs/{id}/state`, `GET /runs/counts`,
 * rerun from one iteration over HTTP, and a workflow's step hashes per version and drawing hints.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow, TerminalError } from '../src/index.js';
import { BACKENDS } from './support/databases.js';
import { call, openServerFixture, type ServerFixture } from './support/server-fixture.js';

const chain = defineWorkflow<number>('rv-chain')
  .step('a', (x: number, ctx) => {
    ctx.state.a = x;
    return x + 1;
  })
  .step('b', { after: 'a' }, (x: number) => x * 2)
  .step('c', { after: 'b' }, (x: number, ctx) => {
    ctx.state.c = x;
    return { out: x };
  })
  .step('d', { after: 'c' }, (x) => x);

const looped = defineWorkflow<number[]>('rv-loop')
  .router('route', {}, (xs: number[]) => (xs.length > 2 ? 'many' : 'few'))
  .forEach('each', {
    after: { step: 'route', branch: 'many' },
    items: (xs: number[]) => xs,
    body: (b) => b.step('sq', (n: number) => n * n),
  })
  .step('few', { after: { step: 'route', branch: 'few' } }, (xs) => xs)
  .step('report', { after: { step: 'each', on: 'always' } }, (rs) => rs);

const failing = defineWorkflow<number>('rv-fail').step('boom', () => {
  throw new TerminalError('always fails');
});

describe.each(BACKENDS)('the run view over HTTP on %s', (backend) => {
  let f: ServerFixture;
  let source: string;
  beforeAll(async () => {
    f = await openServerFixture(backend, [chain, looped as never, failing]);
    source = (await f.engine.trigger('rv-chain', 1)).run.id;
    expect((await f.engine.waitForRun(source)).status).toBe('succeeded');
  });
  afterAll(async () => {
    await f?.close();
  });

  type Step = {
    id: string;
    stepKey: string;
    status: string;
    reusedFrom: { runId: string; stepRunId: string } | null;
    statePatch: { set: Record<string, unknown> | null; delete: string[] | null } | null;
    attempts: Array<{ durationMs: number | null }>;
    durationMs: number | null;
    scopeKey: string | null;
    iteration: number | null;
  };

  it('a rerun lists every step: its own, and the ones it reused from the source', async () => {
    const sourceSteps = (await call(f.app, 'GET', `/api/v1/runs/${source}/steps`, f.auth)).body
      .data as Step[];
    expect(sourceSteps.find((s) => s.stepKey === 'a')).toMatchObject({
      reusedFrom: null,
      statePatch: { set: { a: 1 }, delete: null },
      scopeKey: null,
      iteration: null,
    });
    for (const s of sourceSteps) {
      expect(s.durationMs).toBeGreaterThanOrEqual(0);
      expect(s.attempts[0]!.durationMs).toBeGreaterThanOrEqual(0);
    }
    const res = await call(f.app, 'POST', `/api/v1/runs/${source}/rerun`, f.auth, {
      fromStep: 'd',
    });
    expect(res.status).toBe(201);
    const rerun = res.body.run.id as string;
    expect((await f.engine.waitForRun(rerun)).status).toBe('succeeded');
    const steps = (await call(f.app, 'GET', `/api/v1/runs/${rerun}/steps`, f.auth)).body
      .data as Step[];
    // A chain rerun from its last step writes rows for c (feeds d) and d only; a and b are
    // listed from the source run all the same.
    expect(steps.map((s) => s.stepKey).sort()).toEqual(['a', 'b', 'c', 'd']);
    const byKey = new Map(steps.map((s) => [s.stepKey, s]));
    const src = new Map(sourceSteps.map((s) => [s.stepKey, s]));
    for (const key of ['a', 'b', 'c']) {
      expect(byKey.get(key)).toMatchObject({
        status: 'succeeded',
        reusedFrom: { runId: source, stepRunId: src.get(key)!.id },
      });
    }
    expect(byKey.get('a')!.statePatch).toEqual({ set: { a: 1 }, delete: null });
    expect(byKey.get('c')!.statePatch).toEqual({ set: { c: 4 }, delete: null });
    expect(byKey.get('d')!.reusedFrom).toBeNull();

    const state = await call(f.app, 'GET', `/api/v1/runs/${rerun}/state`, f.auth);
    expect(state.status).toBe(200);
    expect(state.body).toEqual({
      runId: rerun,
      state: { a: 1, c: 4 },
      finalState: { out: 4 },
      finalDataclipId: expect.stringMatching(/^dc_/),
    });
  });

  it('GET /runs/{id}/state: 404 for an unknown or malformed run id', async () => {
    for (const id of ['run_a0zzzzzzzzzzzzzzzzzzzzzzzzzz', 'nope']) {
      const res = await call(f.app, 'GET', `/api/v1/runs/${id}/state`, f.auth);
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('not_found');
    }
    const foreign = await call(f.app, 'GET', `/api/v1/runs/${source}/state`, f.foreign.auth);
    expect(foreign.status).toBe(404);
  });

  it('GET /runs/counts: every status, filtered by workflow and time; 400 for bad filters', async () => {
    const failed = (await f.engine.trigger('rv-fail', 1)).run.id;
    expect((await f.engine.waitForRun(failed)).status).toBe('failed');
    const all = await call(f.app, 'GET', '/api/v1/runs/counts', f.auth);
    expect(all.status).toBe(200);
    expect(Object.keys(all.body.counts).sort()).toEqual(
      ['canceled', 'failed', 'paused', 'queued', 'running', 'succeeded', 'waiting'].sort(),
    );
    expect(all.body.counts.failed).toBeGreaterThanOrEqual(1);
    const chainOnly = await call(f.app, 'GET', '/api/v1/runs/counts?workflowId=rv-chain', f.auth);
    expect(chainOnly.body.counts.failed).toBe(0);
    expect(chainOnly.body.counts.succeeded).toBeGreaterThanOrEqual(2);
    const future = await call(
      f.app,
      'GET',
      '/api/v1/runs/counts?createdFrom=2999-01-01T00:00:00Z',
      f.auth,
    );
    expect(Object.values(future.body.counts).every((n) => n === 0)).toBe(true);
    for (const q of ['createdFrom=yesterday', 'workflowId=no%20spaces', 'limit=3']) {
      const bad = await call(f.app, 'GET', `/api/v1/runs/counts?${q}`, f.auth);
      expect(bad.status).toBe(400);
    }
    const swapped = await call(
      f.app,
      'GET',
      '/api/v1/runs/counts?createdFrom=2025-02-01T00:00:00Z&createdTo=2025-01-01T00:00:00Z',
      f.auth,
    );
    expect(swapped.status).toBe(400);
    expect(JSON.stringify(swapped.body)).toContain('swap them');
  });

  it('rerun from one iteration over HTTP; 422 names the step and the iterations that exist', async () => {
    const run = (await f.engine.trigger('rv-loop', [1, 2, 3])).run.id;
    expect((await f.engine.waitForRun(run)).status).toBe('succeeded');
    const res = await call(f.app, 'POST', `/api/v1/runs/${run}/rerun`, f.auth, {
      fromStep: 'sq[1]',
    });
    expect(res.status).toBe(201);
    expect(res.body.plan.iterations).toEqual({
      owner: 'each',
      kind: 'loop',
      target: 1,
      sourceCount: 3,
      reuse: [0],
      rerun: [1, 2],
      within: null,
    });
    const rerun = res.body.run.id as string;
    expect((await f.engine.waitForRun(rerun)).status).toBe('succeeded');
    const steps = (await call(f.app, 'GET', `/api/v1/runs/${rerun}/steps`, f.auth)).body
      .data as Step[];
    expect(steps.find((s) => s.stepKey === 'sq[0]')).toMatchObject({
      scopeKey: 'each',
      iteration: 0,
      reusedFrom: { runId: run },
    });
    expect(steps.find((s) => s.stepKey === 'sq[2]')).toMatchObject({ reusedFrom: null });
    const state = await call(f.app, 'GET', `/api/v1/runs/${rerun}/state`, f.auth);
    expect(state.body.finalState).toEqual([1, 4, 9]);

    const beyond = await call(f.app, 'POST', `/api/v1/runs/${run}/rerun`, f.auth, {
      fromStep: 'sq[99]',
    });
    expect(beyond.status).toBe(422);
    expect(beyond.body.error.code).toBe('unknown_step');
    expect(beyond.body.error.message).toMatch(/`each` ran 3 iterations.*from 0 to 2/);
    const malformed = await call(f.app, 'POST', `/api/v1/runs/${run}/rerun`, f.auth, {
      fromStep: 'sq[x]',
    });
    expect(malformed.status).toBe(422);
    expect(malformed.body.error.message).toContain('sq[x]');
    const wrongType = await call(f.app, 'POST', `/api/v1/runs/${run}/rerun`, f.auth, {
      fromStep: 3,
    });
    expect(wrongType.status).toBe(400);
  });

  it('workflow detail: step hashes per version, groups, router branches and edge kinds', async () => {
    const res = await call(f.app, 'GET', '/api/v1/workflows/rv-loop', f.auth);
    expect(res.status).toBe(200);
    const graph = res.body.graph as {
      nodes: Array<{
        id: string;
        hash: string;
        group: string | null;
        depth: number;
        branches?: string[];
      }>;
      edges: Array<{ from: string; to: string; kind: string }>;
    };
    const node = (id: string) => graph.nodes.find((n) => n.id === id)!;
    expect(node('sq')).toMatchObject({ group: 'each', depth: 1 });
    expect(node('each')).toMatchObject({ group: null, depth: 0 });
    expect(node('route').branches).toEqual(['many', 'few']);
    expect(graph.edges.map((e) => `${e.from}->${e.to}:${e.kind}`).sort()).toEqual(
      ['each->report:always', 'route->each:branch', 'route->few:branch'].sort(),
    );
    expect(res.body.versions).toHaveLength(1);
    expect(res.body.versions[0].stepHashes).toEqual(
      Object.fromEntries(graph.nodes.map((n) => [n.id, n.hash])),
    );
  });
});
