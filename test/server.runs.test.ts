/**
 * Reading runs over HTTP: keyset paging (each run exactly once, in (createdAt desc, id desc)
 * order, ties and microseconds included), filters, one run with its summary, its step runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TerminalError, defineWorkflow } from '../src/index.js';
import { BACKENDS } from './support/databases.js';
import { call, openServerFixture, type ServerFixture } from './support/server-fixture.js';

const pad = (n: number, width: number) => String(n).padStart(width, '0');

describe.each(BACKENDS)('listing runs on %s', (backend) => {
  let f: ServerFixture;
  /** The 45 runs with the created_at each was given, in the order the API must return them. */
  let expected: Array<{ id: string; createdAt: string }>;

  beforeAll(async () => {
    const noop = defineWorkflow<unknown>('noop').step('s', () => null);
    const other = defineWorkflow<unknown>('other').step('s', () => null);
    // No worker: the runs stay queued, and their rows are ours to arrange.
    f = await openServerFixture(backend, [noop, other], { worker: false });
    const ids: string[] = [];
    for (let i = 0; i < 45; i++) {
      const res = await call(f.app, 'POST', '/api/v1/workflows/noop/runs', f.auth, { input: i });
      expect(res.status).toBe(201);
      ids.push(res.body.id);
    }
    // Three shapes of created_at: 15 runs a microsecond apart inside one millisecond (the API
    // shows them all with the same createdAt), 20 runs sharing one instant (ordered by id only),
    // and 10 runs 100 ms apart. Page boundaries (every 10) fall inside the first two groups.
    const times = ids.map((_, i) =>
      i < 15
        ? `2025-03-01T12:00:00.0000${pad(i, 2)}Z`
        : i < 35
          ? '2025-03-01T12:00:01.000000Z'
          : `2025-03-01T12:00:02.${pad((i - 35) * 100, 3)}000Z`,
    );
    const schema = f.db.stores.schemas.locations[0]!;
    await f.db.executor.query(
      `update ${schema}.runs r set created_at = t.created_at
         from unnest($1::text[], $2::timestamptz[]) as t(id, created_at) where r.id = t.id`,
      [ids, times],
    );
    expected = ids
      .map((id, i) => ({ id, createdAt: times[i]! }))
      .sort((a, b) =>
        a.createdAt !== b.createdAt ? (a.createdAt < b.createdAt ? 1 : -1) : a.id < b.id ? 1 : -1,
      );
  });
  afterAll(async () => {
    await f?.close();
  });

  async function pages(query: string, start: string | null = null): Promise<string[][]> {
    const out: string[][] = [];
    let cursor: string | null = start;
    for (let guard = 0; guard < 50; guard++) {
      const res = await call(
        f.app,
        'GET',
        `/api/v1/runs?${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        f.auth,
      );
      expect(res.status).toBe(200);
      out.push(res.body.data.map((r: { id: string }) => r.id));
      cursor = res.body.nextCursor;
      if (cursor === null) return out;
    }
    throw new Error('paging did not end');
  }

  it('pages through 45 runs 10 at a time, each exactly once, newest first', async () => {
    const got = await pages('limit=10');
    expect(got.map((p) => p.length)).toEqual([10, 10, 10, 10, 5]);
    expect(got.flat()).toEqual(expected.map((r) => r.id));
  });

  it('is not disturbed by runs created while paging', async () => {
    const first = await call(f.app, 'GET', '/api/v1/runs?limit=10', f.auth);
    const newer = await call(f.app, 'POST', '/api/v1/workflows/noop/runs', f.auth, {});
    try {
      expect(newer.status).toBe(201);
      const rest = await pages('limit=10', first.body.nextCursor);
      const seen = [...first.body.data.map((r: { id: string }) => r.id), ...rest.flat()];
      expect(seen).toEqual(expected.map((r) => r.id));
      expect(seen).not.toContain(newer.body.id);
    } finally {
      // The other tests see the 45 runs only.
      await f.db.executor.query(
        `delete from ${f.db.stores.schemas.locations[0]!}.runs where id = $1`,
        [newer.body.id],
      );
    }
  });

  it('defaults to 20 per page and accepts 1 and 100', async () => {
    expect((await call(f.app, 'GET', '/api/v1/runs', f.auth)).body.data).toHaveLength(20);
    expect((await call(f.app, 'GET', '/api/v1/runs?limit=1', f.auth)).body.data).toHaveLength(1);
    const all = await call(f.app, 'GET', '/api/v1/runs?limit=100', f.auth);
    expect(all.body.data).toHaveLength(45);
    expect(all.body.nextCursor).toBeNull();
  });

  it('returns run summaries with the documented fields', async () => {
    const res = await call(f.app, 'GET', '/api/v1/runs?limit=1', f.auth);
    const run = res.body.data[0];
    expect(Object.keys(run).sort()).toEqual(
      [
        'createdAt',
        'error',
        'finalDataclipId',
        'finishedAt',
        'id',
        'idempotencyKey',
        'inputDataclipId',
        'parentRunId',
        'rerunFromStep',
        'rerunOf',
        'startedAt',
        'status',
        'trigger',
        'updatedAt',
        'versionId',
        'workflowId',
      ].sort(),
    );
    expect(run).toMatchObject({
      id: expected[0]!.id,
      status: 'queued',
      workflowId: 'noop',
      trigger: { kind: 'api' },
    });
    expect(run.createdAt).toBe('2025-03-01T12:00:02.900Z');
  });

  it('filters by createdFrom (inclusive) and createdTo (exclusive)', async () => {
    const from = '2025-03-01T12:00:01.000Z';
    const to = '2025-03-01T12:00:02.500Z';
    const got = await pages(
      `limit=7&createdFrom=${encodeURIComponent(from)}&createdTo=${encodeURIComponent(to)}`,
    );
    expect(got.flat()).toEqual(
      expected
        .filter(
          (r) =>
            r.createdAt >= '2025-03-01T12:00:01.000000Z' &&
            r.createdAt < '2025-03-01T12:00:02.500000Z',
        )
        .map((r) => r.id),
    );
    expect(got.flat()).toHaveLength(25);
    // An offset is honoured: 13:00:01+01:00 is 12:00:01Z.
    const offset = await call(
      f.app,
      'GET',
      `/api/v1/runs?limit=100&createdTo=${encodeURIComponent('2025-03-01T13:00:01+01:00')}`,
      f.auth,
    );
    expect(offset.body.data).toHaveLength(15);
  });

  it('filters by workflowId and status', async () => {
    const other = await call(f.app, 'POST', '/api/v1/workflows/other/runs', f.auth, {});
    try {
      const onlyOther = await call(f.app, 'GET', '/api/v1/runs?workflowId=other', f.auth);
      expect(onlyOther.body.data.map((r: { id: string }) => r.id)).toEqual([other.body.id]);
      const noop = await pages('workflowId=noop&limit=50');
      expect(noop.flat()).toHaveLength(45);
      expect(
        (await call(f.app, 'GET', '/api/v1/runs?status=queued&limit=100', f.auth)).body.data,
      ).toHaveLength(46);
      expect(
        (await call(f.app, 'GET', '/api/v1/runs?status=succeeded', f.auth)).body.data,
      ).toHaveLength(0);
      expect(
        (await call(f.app, 'GET', '/api/v1/runs?status=succeeded&status=queued&limit=100', f.auth))
          .body.data,
      ).toHaveLength(46);
      expect(
        (await call(f.app, 'GET', '/api/v1/runs?workflowId=unknown-one', f.auth)).body,
      ).toEqual({ data: [], nextCursor: null });
    } finally {
      await f.db.executor.query(
        `delete from ${f.db.stores.schemas.locations[0]!}.runs where id = $1`,
        [other.body.id],
      );
    }
  });

  it.each([
    ['limit=0', /`limit`/],
    ['limit=101', /`limit`/],
    ['limit=ten', /`limit`/],
    ['limit=2.5', /`limit`/],
    ['status=done', /`status\[0\]`.*queued/],
    ['status=queued&status=nope', /`status\[1\]`/],
    ['createdFrom=yesterday', /`createdFrom`.*ISO 8601/],
    ['createdFrom=2025-02-30T00:00:00Z', /`createdFrom`/],
    ['createdTo=0000-01-01T00:00:00Z', /year 0000/],
    ['createdFrom=2025-03-02T00:00:00Z&createdTo=2025-03-01T00:00:00Z', /after createdTo/],
    ['statuses=failed', /unknown field `statuses`/],
  ])('answers 400 for %s', async (query, message) => {
    const res = await call(f.app, 'GET', `/api/v1/runs?${query}`, f.auth);
    expect({ status: res.status, code: res.body.error.code }).toEqual({
      status: 400,
      code: 'bad_request',
    });
    expect(res.body.error.message).toMatch(message);
    expect(res.body.error.details.where).toBe('query');
  });

  it('answers 422 invalid_input naming the field for a NUL in a query parameter', async () => {
    for (const query of ['workflowId=has%00nul', 'cursor=%00']) {
      const res = await call(f.app, 'GET', `/api/v1/runs?${query}`, f.auth);
      expect({ status: res.status, code: res.body.error.code }).toEqual({
        status: 422,
        code: 'invalid_input',
      });
      expect(res.body.error.message).toContain(`\`${query.split('=')[0]}\``);
    }
  });

  it('answers 422 invalid_cursor for cursors it did not issue, including crafted ones', async () => {
    const crafted = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    for (const cursor of [
      'not-a-cursor',
      crafted(['2025-13-45T99:99:99.000000Z', 'run_a001m7y9khy4p46aqpyr3ef2m5es']),
      crafted(['0000-01-01T00:00:00.000000Z', 'run_a001m7y9khy4p46aqpyr3ef2m5es']),
      crafted(['2025-03-01T12:00:00.000000Z', 'run_\u0000']),
      crafted({ t: 1 }),
    ]) {
      const res = await call(
        f.app,
        'GET',
        `/api/v1/runs?cursor=${encodeURIComponent(cursor)}`,
        f.auth,
      );
      expect({ cursor, status: res.status, code: res.body.error.code }).toEqual({
        cursor,
        status: 422,
        code: 'invalid_cursor',
      });
    }
  });
});

describe.each(BACKENDS)('one run and its steps on %s', (backend) => {
  let f: ServerFixture;

  const pipeline = defineWorkflow<{ n: number }>('pipeline')
    .step('double', ({ n }) => n * 2)
    .step('left', { after: 'double' }, (x) => x + 1)
    .step('right', { after: 'double' }, (x) => x - 1)
    .step('never', { after: { step: 'double', when: (x) => x < 0 } }, () => 'pruned');
  const flaky = defineWorkflow<unknown>('flaky').step(
    'charge',
    { retry: { maxAttempts: 2, minDelay: 5, maxDelay: 10 } },
    (): string => {
      throw new TerminalError('card declined');
    },
  );
  const retried = defineWorkflow<unknown>('retried').step(
    'call',
    { retry: { maxAttempts: 3, minDelay: 5, maxDelay: 10 } },
    (_input, ctx) => {
      if (ctx.attempt < 3) throw new Error(`flake ${ctx.attempt}`);
      return 'ok';
    },
  );

  beforeAll(async () => {
    f = await openServerFixture(backend, [pipeline, flaky, retried]);
  });
  afterAll(async () => {
    await f?.close();
  });

  async function runToEnd(workflowId: string, input: unknown): Promise<string> {
    const res = await call(f.app, 'POST', `/api/v1/workflows/${workflowId}/runs`, f.auth, {
      input,
    });
    expect(res.status).toBe(201);
    await f.engine.waitForRun(res.body.id);
    return res.body.id;
  }

  it('shows a succeeded run with its dataclips, timestamps and step counts', async () => {
    const runId = await runToEnd('pipeline', { n: 5 });
    const res = await call(f.app, 'GET', `/api/v1/runs/${runId}`, f.auth);
    expect(res.status).toBe(200);
    const stored = await f.db.stores.runs.getRun(f.environmentId, runId);
    expect(res.body).toMatchObject({
      id: runId,
      status: 'succeeded',
      workflowId: 'pipeline',
      trigger: { kind: 'api', ref: f.keyId },
      inputDataclipId: stored!.inputDataclipId,
      finalDataclipId: stored!.finalDataclipId,
      rerunOf: null,
      rerunFromStep: null,
      parentRunId: null,
      error: null,
      createdAt: stored!.createdAt,
      startedAt: stored!.startedAt,
      finishedAt: stored!.finishedAt,
      steps: {
        total: 4,
        byStatus: {
          succeeded: 3,
          pruned: 1,
          pending: 0,
          ready: 0,
          running: 0,
          waiting: 0,
          failed: 0,
          canceled: 0,
        },
      },
    });
    expect(res.headers.get('cache-control')).toBe('no-store');
    const final = await call(f.app, 'GET', `/api/v1/dataclips/${res.body.finalDataclipId}`, f.auth);
    expect(final.body).toMatchObject({ kind: 'final', body: { left: 11, right: 9 } });
  });

  it('lists step runs with attempts and dataclip ids that resolve', async () => {
    const runId = await runToEnd('pipeline', { n: 1 });
    const res = await call(f.app, 'GET', `/api/v1/runs/${runId}/steps`, f.auth);
    expect(res.status).toBe(200);
    const byKey = Object.fromEntries(res.body.data.map((s: { stepKey: string }) => [s.stepKey, s]));
    expect(Object.keys(byKey).sort()).toEqual(['double', 'left', 'never', 'right']);
    expect(byKey.double).toMatchObject({
      stepId: 'double',
      status: 'succeeded',
      attemptCount: 1,
      maxAttempts: 3,
      error: null,
      reusedFrom: null,
    });
    expect(byKey.double.attempts).toEqual([
      expect.objectContaining({
        number: 1,
        status: 'succeeded',
        error: null,
        workerId: expect.any(String),
      }),
    ]);
    expect(byKey.never).toMatchObject({ status: 'pruned', attempts: [], outputDataclipId: null });
    // A child's input is its parent's output, by reference; both resolve through the API.
    expect(byKey.left.inputDataclipId).toBe(byKey.double.outputDataclipId);
    const out = await call(
      f.app,
      'GET',
      `/api/v1/dataclips/${byKey.left.outputDataclipId}`,
      f.auth,
    );
    expect(out.body).toMatchObject({ kind: 'output', body: 3, runId });
  });

  it('shows a failed run’s error, and each failed attempt’s error', async () => {
    const runId = await runToEnd('flaky', null);
    const run = await call(f.app, 'GET', `/api/v1/runs/${runId}`, f.auth);
    expect(run.body).toMatchObject({
      status: 'failed',
      finalDataclipId: null,
      error: {
        stepKey: 'charge',
        error: { name: 'TerminalError', message: 'card declined', terminal: true },
      },
      steps: { total: 1, byStatus: { failed: 1 } },
    });
    const steps = await call(f.app, 'GET', `/api/v1/runs/${runId}/steps`, f.auth);
    const [charge] = steps.body.data;
    expect(charge).toMatchObject({
      status: 'failed',
      attemptCount: 1,
      error: { message: 'card declined', terminal: true },
    });
    expect(charge.attempts).toEqual([
      expect.objectContaining({
        number: 1,
        status: 'failed',
        error: expect.objectContaining({ message: 'card declined' }),
      }),
    ]);
  });

  it('lists every attempt of a retried step in order', async () => {
    const runId = await runToEnd('retried', null);
    const steps = await call(f.app, 'GET', `/api/v1/runs/${runId}/steps`, f.auth);
    const [step] = steps.body.data;
    expect(step.attemptCount).toBe(3);
    expect(
      step.attempts.map(
        (a: { number: number; status: string; error: { message: string } | null }) => [
          a.number,
          a.status,
          a.error?.message ?? null,
        ],
      ),
    ).toEqual([
      [1, 'failed', 'flake 1'],
      [2, 'failed', 'flake 2'],
      [3, 'succeeded', null],
    ]);
  });

  it('answers 422 naming `runId` for an id with a NUL byte, on the run and on its steps', async () => {
    for (const path of ['/api/v1/runs/run_a0%00', '/api/v1/runs/run_a0%00/steps']) {
      const res = await call(f.app, 'GET', path, f.auth);
      expect({ path, status: res.status, code: res.body.error.code }).toEqual({
        path,
        status: 422,
        code: 'invalid_input',
      });
      expect(res.body.error.message).toContain('`runId`');
    }
  });

  it.each([
    ['a malformed id', 'nope'],
    ['a dataclip id', 'dc_a001m7y9khy4p46aqpyr3ef2m5et'],
    ['a well-formed id that does not exist', 'run_a001m7y9khy4p46aqpyr3ef2m5es'],
    ['an id of an unknown location', 'run_zz01m7y9khy4p46aqpyr3ef2m5es'],
  ])('answers 404 for %s, on the run and on its steps', async (_name, id) => {
    for (const path of [`/api/v1/runs/${id}`, `/api/v1/runs/${id}/steps`]) {
      const res = await call(f.app, 'GET', path, f.auth);
      expect({ path, status: res.status, code: res.body.error.code }).toEqual({
        path,
        status: 404,
        code: 'not_found',
      });
      expect(res.body.error.message).toContain('GET /api/v1/runs');
    }
  });
});
