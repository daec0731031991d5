/**
 * Without ClickHouse, /api/v1/metrics/* is answered by the run tables (PostgreSQL and PGlite):
 * counts per status and bucket, failure rate, and nearest-rank percentiles that match a hand
 * computation over the same rows; read scope; bad parameters are 400s.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS } from './support/databases.js';
import { bearer, call, openServerFixture, type ServerFixture } from './support/server-fixture.js';

const ok = defineWorkflow<{ n: number }>('ok')
  .step('a', (input) => input)
  .step('b', { after: 'a' }, (input) => input);
const bad = defineWorkflow<{ n: number }>('bad').step('boom', { retry: { maxAttempts: 1 } }, () => {
  throw new Error('boom');
});

describe.each(BACKENDS)('run metrics from the run tables on %s', (backend) => {
  let f: ServerFixture;

  beforeAll(async () => {
    f = await openServerFixture(backend, [ok, bad]);
    const ids: string[] = [];
    for (let n = 0; n < 12; n++)
      ids.push((await f.engine.trigger(n % 3 === 0 ? 'bad' : 'ok', { n })).run.id);
    for (const id of ids) await f.engine.waitForRun(id, { timeoutMs: 30_000 });
  }, 60_000);
  afterAll(async () => {
    await f?.close();
  });

  it('runs per status over time, and the failure rate per workflow', async () => {
    const res = await call(f.app, 'GET', '/api/v1/metrics/runs?bucket=day', f.auth);
    expect(res.status).toBe(200);
    expect(res.body.source).toBe('postgres');
    const byStatus = Object.fromEntries(
      res.body.data.map((r: { status: string; count: number }) => [r.status, r.count]),
    );
    expect(byStatus).toEqual({ failed: 4, succeeded: 8 });
    const rate = await call(f.app, 'GET', '/api/v1/metrics/failure-rate', f.auth);
    expect(rate.body.data).toEqual([
      { workflowId: 'bad', finished: 4, failed: 4, failureRate: 1 },
      { workflowId: 'ok', finished: 8, failed: 0, failureRate: 0 },
    ]);
    // another environment sees none of them
    const sibling = await call(f.app, 'GET', '/api/v1/metrics/failure-rate', f.sibling.auth);
    expect(sibling.body.data).toEqual([]);
  });

  it('percentiles are the nearest rank of the rows', async () => {
    const schema = f.db.stores.schemas.locations[0]!;
    const rows = await f.db.executor.query<{ step_id: string; d: string }>(
      `select step_id, ((extract(epoch from finished_at) - extract(epoch from started_at)) * 1000000)::bigint::text as d
         from ${schema}.step_runs where workflow_id = 'ok' and finished_at is not null and started_at is not null`,
    );
    const res = await call(f.app, 'GET', '/api/v1/metrics/step-durations?workflowId=ok', f.auth);
    expect(res.status).toBe(200);
    const expected = ['a', 'b'].map((stepId) => {
      const v = rows.rows
        .filter((r) => r.step_id === stepId)
        .map((r) => Number(r.d))
        .sort((x, y) => x - y);
      const rank = (p: number) => v[Math.ceil((p * v.length) / 100) - 1]! / 1000;
      return {
        workflowId: 'ok',
        stepId,
        count: v.length,
        p50Ms: rank(50),
        p95Ms: rank(95),
        p99Ms: rank(99),
      };
    });
    expect(res.body.data).toEqual(expected);
    expect(expected[0]!.count).toBe(8);
    for (const path of ['durations', 'queue-wait']) {
      const r = await call(f.app, 'GET', `/api/v1/metrics/${path}`, f.auth);
      expect(r.status).toBe(200);
      expect(
        r.body.data.map((x: { workflowId: string; count: number }) => [x.workflowId, x.count]),
      ).toEqual([
        ['bad', 4],
        ['ok', 8],
      ]);
    }
  });

  it('time ranges, read scope and bad parameters', async () => {
    const future = await call(
      f.app,
      'GET',
      '/api/v1/metrics/durations?from=2999-01-01T00:00:00Z',
      f.auth,
    );
    expect(future.body.data).toEqual([]);
    const key = await f.db.stores.control.createApiKey(f.environmentId, 'reader', ['read']);
    const read = await call(f.app, 'GET', '/api/v1/metrics/queue-wait', bearer(key.token));
    expect(read.status).toBe(200);
    const bucket = await call(f.app, 'GET', '/api/v1/metrics/runs?bucket=year', f.auth);
    expect(bucket.status).toBe(400);
    expect(JSON.stringify(bucket.body)).toMatch(/bucket/);
    const unknown = await call(f.app, 'GET', '/api/v1/metrics/durations?limit=3', f.auth);
    expect(unknown.status).toBe(400);
  });
});
