/**
 * Poison and limits, table-driven, on PGlite and PostgreSQL: every size limit at limit−1, limit
 * and limit+1 (run input, step output, run state, approval payload, webhook body); nesting at and
 * past the depth limit; `__proto__` / `constructor` keys through every path into `ctx.state`
 * (stored and returned as plain keys, no prototype polluted); non-JSON step outputs; a step that
 * never resolves (with a timeout: `step_timeout`; without: the lease is renewed for as long as it
 * runs, and cancel ends it); a step that blocks the event loop past its lease (logged when the
 * loop comes back; the step is then reaped and its late commit refused, or kept if nobody
 * claimed it).
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/engine/engine.js';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS } from './support/databases.js';
import { call, openServerFixture, type ServerFixture } from './support/server-fixture.js';

const LIMIT = 2048;
const MAX_BODY = 8192;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A JSON string value whose encoding is exactly `bytes` bytes (two quotes + letters). */
const jsonString = (bytes: number) => 'x'.repeat(bytes - 2);

const echo = defineWorkflow<unknown>('echo', { maxPayloadBytes: LIMIT }).step(
  'out',
  { retry: { maxAttempts: 1 } },
  (input) => input,
);
/** Output of `bytes` bytes (input is the size). */
const sized = defineWorkflow<number>('sized', { maxPayloadBytes: LIMIT }).step(
  'out',
  { retry: { maxAttempts: 1 } },
  (n) => jsonString(n),
);
/** State patch `{"big":"…"}` of `n` bytes: 8 bytes of braces, key and colon, plus the string. */
const stateful = defineWorkflow<number>('stateful', { maxPayloadBytes: LIMIT }).step(
  'put',
  { retry: { maxAttempts: 1 } },
  (n, ctx) => {
    ctx.state.big = jsonString(n - 8);
    return null;
  },
);
/** Copies every own key of the input into ctx.state, then reads the state back in a later step. */
const keys = defineWorkflow<Record<string, unknown>>('keys')
  .step('copy', (input, ctx) => {
    for (const key of Object.keys(input)) ctx.state[key] = input[key];
    ctx.state.__proto__ = { viaAssignment: true };
    Reflect.set(ctx.state, 'constructor', 'set by a step');
    return null;
  })
  .step('read', { after: 'copy' }, (_, ctx) => ({
    ownKeys: Object.keys(ctx.state).sort(),
    protoIsNull: Object.getPrototypeOf(ctx.state) === null,
  }))
  .step('drop', { after: 'read' }, (_, ctx) => {
    Reflect.deleteProperty(ctx.state, 'constructor');
    return null;
  });
const nonJson = defineWorkflow<string>('non-json').step(
  'bad',
  { retry: { maxAttempts: 1 } },
  (kind): unknown =>
    ({
      fn: { cb: () => 1 },
      bigint: { n: 1n },
      nan: { n: NaN },
      map: { m: new Map() },
      cycle: (() => {
        const o: Record<string, unknown> = {};
        o.self = o;
        return o;
      })(),
      nul: { s: 'a\u0000b' },
      deep: nest(201),
    })[kind],
);
const approval = defineWorkflow<unknown>('approve', { maxPayloadBytes: LIMIT }).approval('ok', {});
/** The default 10 MiB limit: only the request body limit applies. */
const approvalBig = defineWorkflow<unknown>('approve-big').approval('ok', {});
const forever = defineWorkflow<unknown>('forever').step(
  'hang',
  { retry: { maxAttempts: 1 } },
  () => new Promise(() => {}),
);
const timed = defineWorkflow<unknown>('timed').step(
  'hang',
  { timeout: '300ms', retry: { maxAttempts: 2, minDelay: '10ms' } },
  () => new Promise(() => {}),
);
const blocking = defineWorkflow<number>('blocking').step(
  'spin',
  { retry: { maxAttempts: 3, minDelay: '10ms' } },
  (ms, ctx) => {
    // only the first attempt blocks: the point is what happens to it
    if (ctx.attempt === 1) {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        // a synchronous loop: no timer, heartbeat or reaper of this process runs meanwhile
      }
    }
    return { attempt: ctx.attempt };
  },
);

/** Blocks the loop, then goes on waiting: still in flight when the heartbeat comes back. */
const blockingThenWaiting = defineWorkflow<number>('blocking-then-waiting').step(
  'spin',
  { retry: { maxAttempts: 3, minDelay: '10ms' } },
  async (ms, ctx) => {
    if (ctx.attempt === 1) {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        // blocked
      }
      await sleep(300);
    }
    return { attempt: ctx.attempt };
  },
);

function nest(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
}

describe.each(BACKENDS)('poison and limits on %s', (backend) => {
  let f: ServerFixture;
  beforeAll(async () => {
    f = await openServerFixture(
      backend,
      [echo, sized, stateful, keys, nonJson, approval, approvalBig, forever, timed, blocking],
      { maxBodyBytes: MAX_BODY, worker: { leaseMs: 900, heartbeatMs: 300 } },
    );
  });
  afterAll(async () => {
    await f?.close();
  });

  const trigger = (workflowId: string, input: unknown) =>
    call(f.app, 'POST', `/api/v1/workflows/${workflowId}/runs`, f.auth, { input });
  const finished = async (runId: string, timeoutMs = 20_000) => {
    const run = await f.engine.waitForRun(runId, { timeoutMs });
    return run;
  };
  const stepsOf = async (runId: string) =>
    (await call(f.app, 'GET', `/api/v1/runs/${runId}/steps`, f.auth)).body.data as Array<{
      stepKey: string;
      status: string;
      attempts: Array<{ error: { code?: string; message: string } | null }>;
    }>;

  it.each([
    ['limit − 1', LIMIT - 1, 201],
    ['limit', LIMIT, 201],
    ['limit + 1', LIMIT + 1, 413],
  ])('run input at %s', async (_, bytes, status) => {
    const res = await trigger('echo', jsonString(bytes));
    expect(res.status, JSON.stringify(res.body)).toBe(status);
    if (status === 413) {
      expect(res.body.error.code).toBe('payload_too_large');
      expect(res.body.error.details).toMatchObject({ sizeBytes: bytes, limitBytes: LIMIT });
    } else expect((await finished(res.body.id as string)).status).toBe('succeeded');
  });

  it.each([
    ['limit − 1', LIMIT - 1, 'succeeded'],
    ['limit', LIMIT, 'succeeded'],
    ['limit + 1', LIMIT + 1, 'failed'],
  ])('step output at %s', async (_, bytes, end) => {
    const res = await trigger('sized', bytes);
    const run = await finished(res.body.id as string);
    expect(run.status).toBe(end);
    if (end === 'failed') {
      const [step] = await stepsOf(run.id);
      expect(step!.attempts).toHaveLength(1);
      expect(step!.attempts[0]!.error).toMatchObject({ code: 'payload_too_large' });
      expect(step!.attempts[0]!.error!.message).toContain(`${LIMIT + 1} bytes`);
    }
  });

  it.each([
    ['limit − 1', LIMIT - 1, 'succeeded'],
    ['limit', LIMIT, 'succeeded'],
    ['limit + 1', LIMIT + 1, 'failed'],
  ])('state patch at %s', async (_, bytes, end) => {
    const res = await trigger('stateful', bytes);
    const run = await finished(res.body.id as string);
    expect(run.status).toBe(end);
    const state = (await call(f.app, 'GET', `/api/v1/runs/${run.id}/state`, f.auth)).body;
    if (end === 'succeeded') expect((state.state.big as string).length).toBe(bytes - 10);
    else {
      expect(state.state).toEqual({});
      const [step] = await stepsOf(run.id);
      expect(step!.attempts[0]!.error).toMatchObject({ code: 'payload_too_large' });
    }
  });

  it.each([
    ['limit − 1', MAX_BODY - 1, 202],
    ['limit', MAX_BODY, 202],
    ['limit + 1', MAX_BODY + 1, 413],
  ])('webhook body at %s', async (_, bytes, status) => {
    const hook = await call(f.app, 'POST', '/api/v1/webhooks', f.auth, { workflowId: 'echo' });
    // the run input is the whole request; the workflow's own limit is raised out of the way
    const body = JSON.stringify({ s: 'y'.repeat(bytes - 8) });
    expect(Buffer.byteLength(body)).toBe(bytes);
    const res = await f.app.request(`/hooks/${hook.body.id}`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body,
    });
    // the webhook's body limit is the server's; the stored input is then over the workflow's
    // 2 KiB: refused with 413 either way, never a 5xx
    expect([status, 413]).toContain(res.status);
    if (bytes > MAX_BODY) expect(res.status).toBe(413);
  });

  it.each([
    ['limit − 1', MAX_BODY - 1, 200],
    ['limit', MAX_BODY, 200],
    ['limit + 1', MAX_BODY + 1, 413],
  ])('approval payload (request body) at %s', async (_, bytes, status) => {
    const res = await trigger('approve-big', null);
    let token: string | undefined;
    for (let i = 0; i < 400 && !token; i++) {
      const [w] = await f.db.stores.runs.listWaitpoints(f.environmentId, res.body.id as string);
      if (w?.status === 'waiting') token = w.id;
      else await sleep(25);
    }
    const body = JSON.stringify({ payload: 'z'.repeat(bytes - 14) });
    expect(Buffer.byteLength(body)).toBe(bytes);
    const done = await call(f.app, 'POST', `/api/v1/waitpoints/${token}/complete`, f.auth, body);
    expect(done.status, JSON.stringify(done.body).slice(0, 300)).toBe(status);
  });

  const approvalToken = async () => {
    const res = await trigger('approve', null);
    for (let i = 0; i < 400; i++) {
      const [w] = await f.db.stores.runs.listWaitpoints(f.environmentId, res.body.id as string);
      if (w?.status === 'waiting') return { runId: res.body.id as string, token: w.id };
      await sleep(25);
    }
    throw new Error('the approval never waited');
  };

  it.each([
    ['limit − 1', LIMIT - 1, 200],
    ['limit', LIMIT, 200],
    ['limit + 1', LIMIT + 1, 413],
  ])('approval payload at the workflow limit: %s', async (_, bytes, status) => {
    const { runId, token } = await approvalToken();
    const done = await call(f.app, 'POST', `/api/v1/waitpoints/${token}/complete`, f.auth, {
      payload: jsonString(bytes),
    });
    expect(done.status, JSON.stringify(done.body).slice(0, 300)).toBe(status);
    if (status === 413) {
      expect(done.body.error.details).toMatchObject({ sizeBytes: bytes, limitBytes: LIMIT });
      const [w] = await f.db.stores.runs.listWaitpoints(f.environmentId, runId);
      expect(w?.status).toBe('waiting');
    } else expect((await finished(runId)).status).toBe('succeeded');
  });

  it.each([
    ['limit − 1', 199, 201],
    ['limit', 200, 201],
    ['limit + 1', 201, 422],
    ['far past the limit (refused while the body is read)', 260, 422],
  ])('run input nesting at %s (%i levels) → %i', async (_, depth, status) => {
    const res = await trigger('echo', nest(depth));
    expect(res.status).toBe(status);
    if (status === 422) {
      expect(res.body.error.code).toBe('invalid_input');
      expect(res.body.error.message).toMatch(/200/);
    }
  });

  it('__proto__ and constructor keys through input, ctx.state assignment and the stored state: plain keys, no pollution', async () => {
    const input = JSON.parse(
      '{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"toString":"x"}',
    ) as Record<string, unknown>;
    const res = await trigger('keys', input);
    expect(res.status).toBe(201);
    const run = await finished(res.body.id as string);
    expect(run.status).toBe('succeeded');
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
    const state = (await call(f.app, 'GET', `/api/v1/runs/${run.id}/state`, f.auth)).body;
    // the last step deleted `constructor`: a delete of an inherited-looking key is applied
    expect(Object.keys(state.state as object).sort()).toEqual(['__proto__', 'toString']);
    expect(Object.getOwnPropertyDescriptor(state.state, '__proto__')?.value).toEqual({
      viaAssignment: true,
    });
    const [, read] = (await stepsOf(run.id)).filter((s) => s.stepKey !== 'drop');
    expect(read).toBeDefined();
    const output = (
      await call(f.app, 'GET', `/api/v1/runs/${run.id}/steps`, f.auth)
    ).body.data.find((s: { stepKey: string }) => s.stepKey === 'read');
    const clip = await call(f.app, 'GET', `/api/v1/dataclips/${output.outputDataclipId}`, f.auth);
    expect(clip.body.body).toEqual({
      ownKeys: ['__proto__', 'constructor', 'toString'],
      protoIsNull: true,
    });
  });

  it.each(['fn', 'bigint', 'nan', 'map', 'cycle', 'nul', 'deep'])(
    'a non-JSON step output (%s) fails the attempt with invalid_output naming the path',
    async (kind) => {
      const res = await trigger('non-json', kind);
      const run = await finished(res.body.id as string);
      expect(run.status).toBe('failed');
      const [step] = await stepsOf(run.id);
      expect(step!.attempts[0]!.error).toMatchObject({ code: 'invalid_output' });
      expect(step!.attempts[0]!.error!.message).toMatch(/at `output/);
    },
  );

  it('a step that never resolves, with a timeout: each attempt fails step_timeout, then the run fails', async () => {
    const res = await trigger('timed', null);
    const run = await finished(res.body.id as string);
    expect(run.status).toBe('failed');
    const [step] = await stepsOf(run.id);
    expect(step!.attempts.map((a) => a.error?.code)).toEqual(['step_timeout', 'step_timeout']);
  });

  it('a step that never resolves, without a timeout: its lease is renewed (one attempt, still running past 3 leases); cancel ends it', async () => {
    const res = await trigger('forever', null);
    const runId = res.body.id as string;
    await sleep(3 * 900);
    const [step] = await stepsOf(runId);
    expect(step!.status).toBe('running');
    expect(step!.attempts).toHaveLength(1);
    expect((await call(f.app, 'POST', `/api/v1/runs/${runId}/cancel`, f.auth)).status).toBe(200);
    expect((await finished(runId)).status).toBe('canceled');
  });

  it('a step that blocks the event loop past its lease: the run ends once, with the output of the one attempt that committed', async () => {
    const res = await trigger('blocking', 2500);
    const run = await finished(res.body.id as string, 30_000);
    expect(run.status).toBe('succeeded');
    const [step] = await stepsOf(run.id);
    // either the late commit was refused and a second attempt committed, or nobody had claimed
    // the step and the first attempt's commit stood — never both
    expect(step!.status).toBe('succeeded');
    const output = (await call(f.app, 'GET', `/api/v1/runs/${run.id}/steps`, f.auth)).body
      .data[0] as { outputDataclipId: string; attempts: unknown[] };
    const clip = await call(f.app, 'GET', `/api/v1/dataclips/${output.outputDataclipId}`, f.auth);
    expect(clip.body.body).toEqual({ attempt: output.attempts.length });
  });

  it.each([
    [
      'then returns: its commit is refused by the fence (lease expired)',
      'blocking',
      /^late commit rejected/,
    ],
    [
      'then keeps waiting: the heartbeat logs the lapse',
      'blocking-then-waiting',
      /^the lease ran out/,
    ],
  ])(
    'a step that blocks the loop past its lease and %s; the next attempt commits',
    async (_, workflowId, message) => {
      const lines: Array<Record<string, unknown>> = [];
      const logger = pino(
        { level: 'warn' },
        { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
      );
      const tenant = await f.db.stores.control.createTenant({
        organization: `org-${workflowId}-${backend}`,
        project: 'p',
        environment: 'e',
      });
      const engine = await Engine.start({
        stores: f.db.stores,
        environmentId: tenant.environmentId,
        workflows: [blocking, blockingThenWaiting],
        logger,
        reaperIntervalMs: false,
        worker: { leaseMs: 600, heartbeatMs: 200, pollIntervalMs: 50 },
      });
      try {
        const { run } = await engine.trigger(workflowId, 1500);
        expect((await engine.waitForRun(run.id, { timeoutMs: 20_000 })).status).toBe('succeeded');
        const logged = lines.find((l) => message.test(String(l.msg)));
        expect(logged, JSON.stringify(lines)).toMatchObject({ runId: run.id, attempt: 1 });
        const steps = await f.db.stores.runs.listStepRuns(tenant.environmentId, run.id);
        expect(steps).toHaveLength(1);
      } finally {
        await engine.stop();
      }
    },
  );
});
