/**
 * The codes a failed run carries, as a client sees them over the API: the step's attempts in
 * GET /api/v1/runs/{id}/steps and the run's `error` in GET /api/v1/runs/{id}. Each failure here
 * used to surface as `internal` or `invalid_output` (issue 8, "one error contract").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { ERROR_CODES } from '../src/core/error-codes.js';
import { defineWorkflow, TerminalError } from '../src/index.js';
import { BACKENDS } from './support/databases.js';
import { startTestEngine } from './support/engine.js';
import { bearer, call, openServerFixture, type ServerFixture } from './support/server-fixture.js';

const endless = defineWorkflow<number>('endless').while('loop', {
  condition: () => true,
  maxIterations: 2,
  body: (b) => b.step('tick', (n) => n),
});

const unanswered = defineWorkflow('unanswered')
  .approval('signoff', { timeout: 100 })
  .step('after', { after: 'signoff' }, () => 'approved');

const badItem = defineWorkflow('bad-item').forEach('each', {
  items: () => [1, 2],
  body: (b) =>
    b.step('check', (n) => {
      if (n === 2) throw new TerminalError('item 2 is not valid');
      return n;
    }),
});

const failingChild = defineWorkflow('failing-child').step('boom', () => {
  throw new TerminalError('the child cannot do it', { code: 'child_said_no' });
});
const parent = defineWorkflow('parent-of-failure').subWorkflow('kid', {
  workflow: 'failing-child',
});
const orphanParent = defineWorkflow('parent-of-nothing').subWorkflow('kid', {
  workflow: 'never-registered',
});

describe.each(BACKENDS)('error codes of failed runs, over the API, on %s', (backend) => {
  let f: ServerFixture;

  beforeAll(async () => {
    f = await openServerFixture(backend, [
      endless,
      unanswered,
      badItem,
      failingChild,
      parent,
      orphanParent,
    ]);
  });
  afterAll(async () => {
    await f?.close();
  });

  /** Trigger over the API, wait for the end, and read the run and its steps over the API. */
  async function failedRun(workflowId: string, input: unknown = null, auth = f.auth) {
    const started = await call(f.app, 'POST', `/api/v1/workflows/${workflowId}/runs`, auth, {
      input,
    });
    expect(started.status).toBe(201);
    const id = started.body.id as string;
    for (let i = 0; i < 300; i++) {
      const res = await call(f.app, 'GET', `/api/v1/runs/${id}`, auth);
      if (['succeeded', 'failed', 'canceled'].includes(res.body.status)) break;
      await sleep(20);
    }
    const run = (await call(f.app, 'GET', `/api/v1/runs/${id}`, auth)).body;
    const steps = (await call(f.app, 'GET', `/api/v1/runs/${id}/steps`, auth)).body.data as Array<{
      stepKey: string;
      status: string;
      error: { code?: string; terminal: boolean } | null;
      attempts: Array<{ error: { code?: string; terminal: boolean } | null }>;
    }>;
    return { run, steps, step: (key: string) => steps.find((s) => s.stepKey === key)! };
  }

  it('a `while` past maxIterations fails with loop_limit_exceeded (not invalid_output)', async () => {
    const { run, step } = await failedRun('endless', 0);
    expect(run.status).toBe('failed');
    expect(run.error).toMatchObject({
      stepKey: 'loop',
      code: 'loop_limit_exceeded',
      terminal: true,
    });
    expect(run.error.message).toContain('maxIterations');
    const loop = step('loop');
    expect(loop.status).toBe('failed');
    expect(loop.attempts.at(-1)!.error).toMatchObject({ code: 'loop_limit_exceeded' });
    expect(loop.error).toMatchObject({ code: 'loop_limit_exceeded', terminal: true });
    // two iterations ran before the bound
    expect(step('tick[1]').status).toBe('succeeded');
  });

  it('an approval that times out with no timeout edge fails with waitpoint_timed_out (not internal)', async () => {
    const { run, step } = await failedRun('unanswered');
    expect(run.status).toBe('failed');
    expect(run.error).toMatchObject({
      stepKey: 'signoff',
      code: 'waitpoint_timed_out',
      terminal: true,
    });
    expect(step('signoff').attempts.at(-1)!.error).toMatchObject({ code: 'waitpoint_timed_out' });
    expect(step('after').status).not.toBe('succeeded');
  });

  it('a loop whose body step failed fails with body_step_failed; the body step keeps its own code', async () => {
    const { run, step } = await failedRun('bad-item');
    expect(run.status).toBe('failed');
    expect(run.error).toMatchObject({ stepKey: 'each', code: 'body_step_failed' });
    expect(step('check[1]').attempts[0]!.error).toMatchObject({ code: 'terminal', terminal: true });
    expect(step('check[0]').status).toBe('succeeded');
  });

  it('a sub-workflow whose child failed fails with child_run_failed; the child keeps its code', async () => {
    const { run, step } = await failedRun('parent-of-failure');
    expect(run.status).toBe('failed');
    expect(run.error).toMatchObject({ stepKey: 'kid', code: 'child_run_failed' });
    expect(step('kid').attempts.at(-1)!.error).toMatchObject({ code: 'child_run_failed' });
    const children = (await call(f.app, 'GET', `/api/v1/runs?workflowId=failing-child`, f.auth))
      .body.data as Array<{ error: { code?: string } }>;
    expect(children[0]!.error).toMatchObject({ code: 'child_said_no' });
  });

  it('a sub-workflow of an unregistered workflow retries its start (unknown_workflow) until the run is canceled', async () => {
    const started = await call(
      f.app,
      'POST',
      '/api/v1/workflows/parent-of-nothing/runs',
      f.auth,
      {},
    );
    const id = started.body.id as string;
    let attempts: Array<{ error: { code?: string; terminal: boolean } | null }> = [];
    for (let i = 0; i < 200 && attempts.length < 2; i++) {
      await sleep(25);
      attempts = (await call(f.app, 'GET', `/api/v1/runs/${id}/steps`, f.auth)).body.data[0]
        .attempts;
    }
    expect(attempts.length).toBeGreaterThanOrEqual(2);
    expect(attempts[0]!.error).toMatchObject({ code: 'unknown_workflow', terminal: false });
    const run = (await call(f.app, 'GET', `/api/v1/runs/${id}`, f.auth)).body;
    expect(run.status).not.toBe('failed');
    const canceled = await call(f.app, 'POST', `/api/v1/runs/${id}/cancel`, f.auth, {});
    expect(canceled.status).toBe(200);
  });

  it('a step aborted by a worker shutdown records worker_shutdown and is requeued at once; past its budget the run fails with it', async () => {
    let entered = 0;
    const stuck = (id: string, maxAttempts: number) =>
      defineWorkflow(id).step('forever', { retry: { maxAttempts } }, async (_i, ctx) => {
        entered++;
        await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
        return 'aborted';
      });
    const workflows = [stuck('stuck-once', 1), stuck('stuck-twice', 2)];
    const engine = await startTestEngine(f.db.stores, workflows, {
      worker: { shutdownGraceMs: 100 },
    });
    const key = await f.db.stores.control.createApiKey(engine.environmentId, 'shutdown test');
    const auth = bearer(key.token);
    const once = await call(f.app, 'POST', '/api/v1/workflows/stuck-once/runs', auth, {});
    const twice = await call(f.app, 'POST', '/api/v1/workflows/stuck-twice/runs', auth, {});
    for (let i = 0; i < 200 && entered < 2; i++) await sleep(20);
    expect(entered).toBe(2);
    await engine.stop();

    const read = async (id: string) => ({
      run: (await call(f.app, 'GET', `/api/v1/runs/${id}`, auth)).body,
      step: (await call(f.app, 'GET', `/api/v1/runs/${id}/steps`, auth)).body.data[0],
    });
    const a = await read(once.body.id);
    expect(a.step.attempts[0].error).toMatchObject({ code: 'worker_shutdown', terminal: false });
    expect(a.step.attempts[0].error.message).toContain('shutting down');
    expect(a.run.status).toBe('failed');
    expect(a.run.error).toMatchObject({ stepKey: 'forever', code: 'worker_shutdown' });

    const b = await read(twice.body.id);
    expect(b.step.status).toBe('ready');
    expect(b.step.attempts[0].error).toMatchObject({ code: 'worker_shutdown', terminal: false });
    expect(b.run.status).not.toBe('failed');
    // requeued at once (no backoff): available now to the next worker
    const [row] = (
      await f.db.executor.query<{ due: boolean }>(
        `select available_at <= now() as due from ${f.db.stores.schemas.locations[0]!}.step_runs where run_id = $1`,
        [twice.body.id],
      )
    ).rows;
    expect(row?.due).toBe(true);
  });

  it('every code these runs carried is in the table, with the retryable flag the attempts show', () => {
    for (const code of [
      'loop_limit_exceeded',
      'waitpoint_timed_out',
      'body_step_failed',
      'child_run_failed',
      'terminal',
    ] as const)
      expect(ERROR_CODES[code].retryable).toBe(false);
    expect(ERROR_CODES.worker_shutdown.retryable).toBe(true);
  });
});
