/**
 * POST /api/v1/workflows/{workflowId}/runs: created, deduplicated, conflicting, and every way a
 * request can be refused — each refusal checked to have written nothing.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH } from '../src/core/json.js';
import { defineWorkflow } from '../src/index.js';
import { DEFAULT_MAX_BODY_BYTES } from '../src/server/index.js';
import { BACKENDS } from './support/databases.js';
import {
  allRunIds,
  call,
  openServerFixture,
  type ServerFixture,
} from './support/server-fixture.js';

const add = defineWorkflow<{ a: number; b: number }>('add').step('sum', ({ a, b }) => a + b);
const tiny = defineWorkflow<unknown>('tiny', { maxPayloadBytes: 1024 }).step('echo', (x) => x);

const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);

describe.each(BACKENDS)('triggering runs over HTTP on %s', (backend) => {
  let f: ServerFixture;
  let before: string[];

  beforeAll(async () => {
    f = await openServerFixture(backend, [add, tiny]);
  });
  afterAll(async () => {
    await f?.close();
  });
  beforeEach(async () => {
    before = await allRunIds(f.db, f.environmentId);
  });

  const trigger = (body?: unknown, headers = f.auth, workflowId = 'add') =>
    call(f.app, 'POST', `/api/v1/workflows/${workflowId}/runs`, headers, body);

  /** The request was refused with this status and code, and no run was written. */
  async function expectRefused(
    res: Awaited<ReturnType<typeof trigger>>,
    status: number,
    code: string,
  ) {
    expect({ status: res.status, code: res.body?.error?.code }).toEqual({ status, code });
    expect(typeof res.body.error.message).toBe('string');
    expect(await allRunIds(f.db, f.environmentId)).toEqual(before);
  }

  it('creates a run (201, Location) that executes, with the input stored as given', async () => {
    const res = await trigger({ input: { a: 2, b: 40 } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      workflowId: 'add',
      deduplicated: false,
      trigger: { kind: 'api', ref: f.keyId },
      idempotencyKey: null,
      rerunOf: null,
    });
    expect(res.body.id).toMatch(/^run_/);
    expect(['queued', 'running']).toContain(res.body.status);
    expect(res.headers.get('location')).toBe(`/api/v1/runs/${res.body.id}`);
    const version = await f.db.stores.control.currentVersion(f.environmentId, 'add');
    expect(res.body.versionId).toBe(version!.id);
    // Acknowledged means committed: the row is there, and the run completes.
    const stored = await f.db.stores.runs.getRun(f.environmentId, res.body.id);
    expect(stored?.inputDataclipId).toBe(res.body.inputDataclipId);
    const input = await f.db.stores.runs.getDataclip(f.environmentId, res.body.inputDataclipId);
    expect(input?.body).toEqual({ a: 2, b: 40 });
    const done = await f.engine.waitForRun(res.body.id);
    const final = await f.db.stores.runs.getDataclip(f.environmentId, done.finalDataclipId!);
    expect(final?.body).toBe(42);
  });

  it('accepts no body, an empty body with or without a content type, and {}: the input is null', async () => {
    const echo = defineWorkflow<unknown>('echo-input').step('echo', (x) => ({ got: x }));
    await f.engine.register(echo);
    const token = { authorization: f.auth.authorization! };
    const requests: RequestInit[] = [
      { method: 'POST', headers: token },
      { method: 'POST', headers: { ...token, 'content-type': 'application/json' } },
      { method: 'POST', headers: token, body: '' },
      { method: 'POST', headers: { ...token, 'content-type': 'application/json' }, body: '' },
      { method: 'POST', headers: { ...token, 'content-type': 'application/json' }, body: '{}' },
    ];
    for (const init of requests) {
      const res = await f.app.request('/api/v1/workflows/echo-input/runs', init);
      const body = (await res.json()) as { inputDataclipId: string };
      expect(res.status).toBe(201);
      const input = await f.db.stores.runs.getDataclip(f.environmentId, body.inputDataclipId);
      expect(input?.body).toBeNull();
    }
  });

  it('returns the same run with 200 and deduplicated: true for a repeated idempotency key', async () => {
    const body = { input: { a: 1, b: 1 }, idempotencyKey: 'order-1', idempotencyKeyTTL: 60_000 };
    const first = await trigger(body);
    expect(first.status).toBe(201);
    const again = await trigger(body);
    expect(again.status).toBe(200);
    expect(again.body.deduplicated).toBe(true);
    expect(again.body.id).toBe(first.body.id);
    expect(again.body.idempotencyKey).toBe('order-1');
    expect(again.headers.get('location')).toBeNull();
    const created = (await allRunIds(f.db, f.environmentId)).filter((id) => !before.includes(id));
    expect(created).toEqual([first.body.id]);
  });

  it('creates exactly one run for concurrent identical triggers', async () => {
    const body = { input: { a: 5, b: 5 }, idempotencyKey: 'concurrent' };
    const results = await Promise.all(Array.from({ length: 8 }, () => trigger(body)));
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 201]);
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expect((await allRunIds(f.db, f.environmentId)).length).toBe(before.length + 1);
  });

  it('50 concurrent triggers for each of 20 keys over HTTP: exactly 20 runs, never a 5xx', async () => {
    const calls = Array.from({ length: 20 }, (_, k) =>
      Array.from({ length: 50 }, () =>
        trigger({ input: { a: k, b: 0 }, idempotencyKey: `race-${k}` }),
      ),
    ).flat();
    const results = await Promise.all(calls);
    expect(results.filter((r) => r.status >= 500)).toEqual([]);
    expect(results.filter((r) => r.status === 201)).toHaveLength(20);
    expect(results.filter((r) => r.status === 200)).toHaveLength(980);
    expect(new Set(results.map((r) => r.body.id)).size).toBe(20);
    const created = (await allRunIds(f.db, f.environmentId)).filter((id) => !before.includes(id));
    expect(created).toHaveLength(20);
  });

  it('answers 409 for the same key with a different input, naming the existing run', async () => {
    const first = await trigger({ input: { a: 1, b: 2 }, idempotencyKey: 'order-2' });
    before = await allRunIds(f.db, f.environmentId);
    const res = await trigger({ input: { a: 1, b: 3 }, idempotencyKey: 'order-2' });
    await expectRefused(res, 409, 'idempotency_conflict');
    expect(res.body.error.details.runId).toBe(first.body.id);
    expect(res.body.error.message).toContain(first.body.id);
  });

  it('answers 404 unknown_workflow with the registered ids', async () => {
    const res = await trigger({ input: 1 }, f.auth, 'no-such-workflow');
    await expectRefused(res, 404, 'unknown_workflow');
    expect(res.body.error.details.known).toEqual(expect.arrayContaining(['add', 'tiny']));
    expect(res.body.error.message).toContain('no-such-workflow');
  });

  it('answers 404 for a workflow id that cannot exist (too long, a space, a slash)', async () => {
    for (const id of ['x'.repeat(101), '%20lead', 'a%2Fb']) {
      const res = await trigger({ input: 1 }, f.auth, id);
      await expectRefused(res, 404, 'unknown_workflow');
    }
  });

  it('answers 422 naming `workflowId` for a workflow id with a NUL byte', async () => {
    const res = await trigger({ input: 1 }, f.auth, 'bad%00id');
    await expectRefused(res, 422, 'invalid_input');
    expect(res.body.error.message).toContain('`workflowId`');
  });

  it.each([
    ['malformed JSON', '{"input": ', /not valid JSON/],
    ['trailing garbage', '{"input": 1} x', /not valid JSON/],
    ['an unknown field', { input: 1, idempotencykey: 'typo' }, /unknown field `idempotencykey`/],
    ['an array body', [1, 2], /expected object/],
    ['a string body', '"hello"', /expected object/],
    ['a numeric idempotency key', { idempotencyKey: 5 }, /idempotencyKey/],
    ['an empty idempotency key', { idempotencyKey: '' }, /idempotencyKey/],
    ['a 256-character idempotency key', { idempotencyKey: 'k'.repeat(256) }, /idempotencyKey/],
    ['a TTL under a second', { idempotencyKey: 'k', idempotencyKeyTTL: 999 }, /idempotencyKeyTTL/],
    [
      'a TTL over 30 days',
      { idempotencyKey: 'k', idempotencyKeyTTL: 31 * 86_400_000 },
      /idempotencyKeyTTL/,
    ],
    ['a fractional TTL', { idempotencyKey: 'k', idempotencyKeyTTL: 1500.5 }, /idempotencyKeyTTL/],
  ])('answers 400 for %s', async (_name, body, message) => {
    const res = await trigger(body);
    await expectRefused(res, 400, 'bad_request');
    expect(res.body.error.message).toMatch(message);
  });

  it('answers 400 for a body that is not UTF-8', async () => {
    const res = await f.app.request('/api/v1/workflows/add/runs', {
      method: 'POST',
      headers: f.auth,
      body: new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/UTF-8/);
    expect(await allRunIds(f.db, f.environmentId)).toEqual(before);
  });

  it('answers 415 for a body that is not sent as JSON', async () => {
    for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', undefined]) {
      const headers: Record<string, string> = { authorization: f.auth.authorization! };
      if (contentType) headers['content-type'] = contentType;
      const res = await f.app.request('/api/v1/workflows/add/runs', {
        method: 'POST',
        headers,
        body: '{"input":1}',
      });
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect({ contentType, status: res.status, code: body.error.code }).toEqual({
        contentType,
        status: 415,
        code: 'unsupported_media_type',
      });
      expect(body.error.message).toContain('application/json');
    }
    expect(await allRunIds(f.db, f.environmentId)).toEqual(before);
  });

  it.each([
    ['a NUL character', '{"input": {"name": "a\\u0000b"}}', /\\u0000/],
    ['a lone surrogate', '{"input": "\\ud800"}', /surrogate/],
    [
      `nesting just past the run input limit (${MAX_JSON_DEPTH + 2} levels)`,
      `{"input": ${nested(MAX_JSON_DEPTH + 2)}}`,
      /deeper than/,
    ],
    ['10,000 levels of nesting', `{"input": ${nested(10_000)}}`, /levels deep/],
    [
      '10,000 levels of nesting that is not even valid JSON',
      `{"input": ${'['.repeat(10_000)}`,
      /levels deep/,
    ],
  ])('answers 422 invalid_input for %s', async (_name, body, message) => {
    const res = await trigger(body);
    await expectRefused(res, 422, 'invalid_input');
    expect(res.body.error.message).toMatch(message);
  });

  it('accepts nesting up to the limit', async () => {
    const res = await trigger(`{"input": ${nested(MAX_JSON_DEPTH)}}`);
    expect(res.status).toBe(201);
  });

  describe('payload limits (413, nothing written)', () => {
    it('refuses a body over the default limit by its actual bytes', async () => {
      const body = JSON.stringify({ input: 'x'.repeat(DEFAULT_MAX_BODY_BYTES) });
      const res = await trigger(body);
      await expectRefused(res, 413, 'payload_too_large');
      expect(res.body.error.details.limitBytes).toBe(DEFAULT_MAX_BODY_BYTES);
    });

    it('refuses a body whose Content-Length declares more than the limit, before reading it', async () => {
      const res = await trigger('{"input": 1}', {
        ...f.auth,
        'content-length': String(DEFAULT_MAX_BODY_BYTES + 1),
      });
      await expectRefused(res, 413, 'payload_too_large');
      expect(res.body.error.message).toContain(`declares ${DEFAULT_MAX_BODY_BYTES + 1} bytes`);
      expect(res.headers.get('connection')).toBe('close');
    });

    it('refuses a streamed body (no Content-Length) once it passes the limit', async () => {
      const chunk = new TextEncoder().encode('x'.repeat(1024 * 1024));
      let sent = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent === 0) controller.enqueue(new TextEncoder().encode('{"input":"'));
          sent++;
          if (sent > 64)
            controller.close(); // 64 MiB if nobody stops reading
          else controller.enqueue(chunk);
        },
      });
      const res = await f.app.request('/api/v1/workflows/add/runs', {
        method: 'POST',
        headers: f.auth,
        body: stream,
        duplex: 'half',
      } as RequestInit);
      expect(res.status).toBe(413);
      expect(sent).toBeLessThan(20); // the read stopped soon after the limit
      expect(await allRunIds(f.db, f.environmentId)).toEqual(before);
    });

    it('refuses an input within the body limit but over the workflow’s maxPayloadBytes', async () => {
      const res = await trigger({ input: 'y'.repeat(2000) }, f.auth, 'tiny');
      await expectRefused(res, 413, 'payload_too_large');
      expect(res.body.error.details).toMatchObject({ limitBytes: 1024 });
    });

    it('refuses an input over the default 10 MiB run input limit that fits the body limit', async () => {
      const res = await trigger({ input: 'z'.repeat(10 * 1024 * 1024 + 1024) });
      await expectRefused(res, 413, 'payload_too_large');
      expect(res.body.error.details).toMatchObject({ limitBytes: 10 * 1024 * 1024 });
    });
  });
});

describe.each(BACKENDS)('a configured body limit on %s', (backend) => {
  let f: ServerFixture;
  beforeAll(async () => {
    f = await openServerFixture(backend, [add], { worker: false, maxBodyBytes: 1024 });
  });
  afterAll(async () => {
    await f?.close();
  });

  it('applies maxBodyBytes', async () => {
    const small = await call(f.app, 'POST', '/api/v1/workflows/add/runs', f.auth, {
      input: 'a'.repeat(900),
    });
    expect(small.status).toBe(201);
    const big = await call(f.app, 'POST', '/api/v1/workflows/add/runs', f.auth, {
      input: 'a'.repeat(1100),
    });
    expect(big.status).toBe(413);
    expect(big.body.error.details.limitBytes).toBe(1024);
    expect(await allRunIds(f.db, f.environmentId)).toEqual([small.body.id]);
  });
});
