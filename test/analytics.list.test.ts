/**
 * ClickHouse answers what PostgreSQL answers: the runs list (every page and cursor) and every
 * /api/v1/metrics endpoint, on random filters (fast-check), over runs of two locations with
 * spread creation times (microseconds included), several workflows and every final status; through
 * the HTTP API, one app per source over the same stores.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import { Replicator } from '../src/analytics/replicator.js';
import { ClickhouseRunAnalytics } from '../src/analytics/run-analytics.js';
import { createApp, type ServerApp } from '../src/server/index.js';
import { silentLogger } from '../src/engine/logger.js';
import { openAnalyticsFixture, type AnalyticsFixture } from './support/analytics-fixture.js';
import { CLICKHOUSE_ABSENT, clickhouseBinary } from './support/throwaway-clickhouse.js';
import { bearer, call } from './support/server-fixture.js';

const present = clickhouseBinary() !== undefined;
if (!present) console.warn(CLICKHOUSE_ABSENT);

const ok = defineWorkflow<{ n: number }>('ok')
  .step('a', (input) => ({ n: input.n + 1 }))
  .step('b', { after: 'a' }, (input) => ({ n: input.n * 2 }));
const bad = defineWorkflow<{ n: number }>('bad').step('boom', { retry: { maxAttempts: 1 } }, () => {
  throw new Error('boom');
});

const STATUSES = ['queued', 'running', 'waiting', 'paused', 'succeeded', 'failed', 'canceled'];
const T0 = Date.parse('2026-03-01T00:00:00Z');
const SPAN_MS = 3 * 86_400_000;

describe.skipIf(!present)('ClickHouse answers = PostgreSQL answers', () => {
  let f: AnalyticsFixture;
  let replicator: Replicator;
  let running: Promise<void>;
  let pgApp: ServerApp;
  let chApp: ServerApp;
  let auth: Record<string, string>;

  beforeAll(async () => {
    f = await openAnalyticsFixture([ok, bad]);
    const ids: string[] = [];
    for (const engine of f.engines)
      for (let n = 0; n < 40; n++)
        ids.push((await engine.trigger(n % 4 === 3 ? 'bad' : 'ok', { n })).run.id);
    for (const id of ids) await f.engines[0].waitForRun(id, { timeoutMs: 60_000 });
    // Spread creation over three days at microsecond resolution (some runs share an instant),
    // and start/finish times after it, so buckets, ranges and percentiles have shape.
    for (const schema of ['weft_loc_a0', 'weft_loc_b1']) {
      await f.executor.query(
        `update ${schema}.runs set
           created_at = to_timestamp(${T0 / 1000}) + ((abs(hashtext(id)) % ${SPAN_MS / 1000}) * interval '1 second')
                        + (case when abs(hashtext(id)) % 7 = 0 then 0 else (abs(hashtext(id || 'u')) % 1000000) end) * interval '1 microsecond'`,
      );
      await f.executor.query(
        `update ${schema}.runs set started_at = created_at + (abs(hashtext(id || 's')) % 5000) * interval '1 millisecond' + interval '7 microseconds'
          where started_at is not null`,
      );
      await f.executor.query(
        `update ${schema}.runs set finished_at = started_at + (abs(hashtext(id || 'f')) % 90000) * interval '1 millisecond'
          where finished_at is not null`,
      );
      // every status: a third of the runs get another one
      await f.executor.query(
        `update ${schema}.runs set status = (array['queued', 'running', 'waiting', 'paused', 'succeeded', 'failed', 'canceled'])[1 + abs(hashtext(id || 'p')) % 7]
          where abs(hashtext(id || 'x')) % 3 = 0`,
      );
    }
    const key = await f.stores[0].control.createApiKey(f.environmentId, 'analytics test');
    auth = bearer(key.token);
    pgApp = createApp({ stores: f.stores[0], logger: silentLogger(), dashboard: false });
    chApp = createApp({
      stores: f.stores[0],
      logger: silentLogger(),
      dashboard: false,
      analytics: new ClickhouseRunAnalytics(f.clickhouse),
      runsListFrom: 'analytics',
    });
    replicator = new Replicator({
      clickhouse: f.clickhouse,
      source: f.source,
      flushIntervalMs: 100,
    });
    await replicator.setup();
    running = replicator.run();
    running.catch(() => {});
    // caught up: every run's current row is in ClickHouse
    const deadline = Date.now() + 60_000;
    for (;;) {
      const pg = await f.executor.query<{ n: string; s: string }>(
        `select count(*)::text as n, sum(length(status) + floor(extract(epoch from created_at))::bigint % 1000)::text as s
           from (select * from weft_loc_a0.runs union all select * from weft_loc_b1.runs) r`,
      );
      const ch = await f.clickhouse.query<{ n: string; s: string }>(
        `SELECT toString(count()) AS n, toString(sum(length(status) + intDiv(created_us, 1000000) % 1000)) AS s
           FROM weft.runs FINAL WHERE deleted = 0`,
      );
      if (ch[0]!.n === pg.rows[0]!.n && ch[0]!.s === pg.rows[0]!.s) break;
      if (Date.now() > deadline) throw new Error('the mirror did not catch up');
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 180_000);
  afterAll(async () => {
    await replicator?.stop();
    await running?.catch(() => {});
    await f?.close();
  });

  const isoAt = (frac: number) => {
    const us = Math.floor(frac * (SPAN_MS + 86_400_000) * 1000) + (T0 - 43_200_000) * 1000;
    const ms = Math.floor(us / 1000);
    return `${new Date(ms).toISOString().slice(0, 23)}${String(us % 1000).padStart(3, '0')}Z`;
  };
  const filters = fc.record(
    {
      workflowId: fc.constantFrom('ok', 'bad', 'nope'),
      status: fc.subarray(STATUSES, { minLength: 1, maxLength: 3 }),
      from: fc.double({ min: 0, max: 1, noNaN: true }),
      width: fc.double({ min: 0.05, max: 1, noNaN: true }),
    },
    { requiredKeys: [] },
  );

  function qs(params: Array<[string, string]>): string {
    return params.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
  }

  it('the runs list: every page and cursor, on random filters', async () => {
    let compared = 0;
    await fc.assert(
      fc.asyncProperty(filters, fc.integer({ min: 1, max: 40 }), async (flt, limit) => {
        const params: Array<[string, string]> = [['limit', String(limit)]];
        if (flt.workflowId) params.push(['workflowId', flt.workflowId]);
        for (const s of flt.status ?? []) params.push(['status', s]);
        if (flt.from !== undefined) params.push(['createdFrom', isoAt(flt.from)]);
        if (flt.from !== undefined && flt.width !== undefined)
          params.push(['createdTo', isoAt(Math.min(1, flt.from + flt.width))]);
        let cursor: string | null = null;
        for (let page = 0; page < 200; page++) {
          const path: string = `/api/v1/runs?${qs(params)}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
          const [a, b]: Array<Awaited<ReturnType<typeof call>>> = await Promise.all([
            call(pgApp, 'GET', path, auth),
            call(chApp, 'GET', path, auth),
          ]);
          expect(a!.status).toBe(200);
          expect(b!.body).toEqual(a!.body);
          compared += a!.body.data.length;
          cursor = a!.body.nextCursor;
          if (cursor === null) break;
        }
      }),
      // seeded, so the filters drawn are the same on every run (the rows still vary with the ids);
      // 80 draws compare a few hundred rows (a narrow draw of 40 once compared only 38)
      { numRuns: 80, seed: 20261129 },
    );
    expect(compared).toBeGreaterThan(50);
    // both locations are in the lists compared
    const all = await call(chApp, 'GET', '/api/v1/runs?limit=100', auth);
    const tags = new Set(all.body.data.map((r: { id: string }) => r.id.slice(4, 6)));
    expect(tags).toEqual(new Set(['a0', 'b1']));
  }, 120_000);

  it('every metrics endpoint, on random filters', async () => {
    let nonEmpty = 0;
    await fc.assert(
      fc.asyncProperty(
        filters,
        fc.constantFrom('runs', 'failure-rate', 'durations', 'step-durations', 'queue-wait'),
        fc.constantFrom('minute', 'hour', 'day'),
        async (flt, endpoint, bucket) => {
          const params: Array<[string, string]> = [];
          if (flt.workflowId) params.push(['workflowId', flt.workflowId]);
          if (flt.from !== undefined) params.push(['from', isoAt(flt.from)]);
          if (flt.from !== undefined && flt.width !== undefined)
            params.push(['to', isoAt(Math.min(1, flt.from + flt.width))]);
          if (endpoint === 'runs') params.push(['bucket', bucket]);
          const path = `/api/v1/metrics/${endpoint}?${qs(params)}`;
          const [a, b] = await Promise.all([
            call(pgApp, 'GET', path, auth),
            call(chApp, 'GET', path, auth),
          ]);
          expect(a.status).toBe(200);
          expect(a.body.source).toBe('postgres');
          expect(b.body.source).toBe('clickhouse');
          expect(b.body.data).toEqual(a.body.data);
          if (a.body.data.length > 0) nonEmpty++;
        },
      ),
      { numRuns: 60 },
    );
    expect(nonEmpty).toBeGreaterThan(5);
  }, 120_000);

  it('percentiles are nearest-rank over both locations (checked by hand on one workflow)', async () => {
    const res = await call(pgApp, 'GET', '/api/v1/metrics/durations?workflowId=ok', auth);
    const rows = await f.executor.query<{ d: string }>(
      `select ((extract(epoch from finished_at) - extract(epoch from started_at)) * 1000000)::bigint::text as d
         from (select * from weft_loc_a0.runs union all select * from weft_loc_b1.runs) r
        where workflow_id = 'ok' and finished_at is not null and started_at is not null`,
    );
    const sorted = rows.rows.map((r) => Number(r.d)).sort((x, y) => x - y);
    const rank = (p: number) => sorted[Math.ceil((p * sorted.length) / 100) - 1]! / 1000;
    expect(res.body.data).toEqual([
      { workflowId: 'ok', count: sorted.length, p50Ms: rank(50), p95Ms: rank(95), p99Ms: rank(99) },
    ]);
    const ch = await call(chApp, 'GET', '/api/v1/metrics/durations?workflowId=ok', auth);
    expect(ch.body.data).toEqual(res.body.data);
    expect(sorted.length).toBeGreaterThan(40);
  });

  it('bad filters are a 400 naming the parameter, on both sources', async () => {
    for (const app of [pgApp, chApp]) {
      const res = await call(app, 'GET', '/api/v1/metrics/runs?bucket=week', auth);
      expect(res.status).toBe(400);
      expect(JSON.stringify(res.body)).toContain('bucket');
      const swapped = await call(
        app,
        'GET',
        '/api/v1/metrics/durations?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z',
        auth,
      );
      expect(swapped.status).toBe(400);
      expect(JSON.stringify(swapped.body)).toContain('swap');
      const cursor = await call(app, 'GET', '/api/v1/runs?status=failed&cursor=bm9wZQ', auth);
      expect(cursor.status).toBe(422);
    }
  });
});
