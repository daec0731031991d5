/**
 * The analytics mirror against a real ClickHouse (Debian's 18.16 here) and a real PostgreSQL with
 * wal_level = logical (a throwaway cluster), two locations in one run-ops database:
 * - runs created, updated (to their final status) and deleted in both locations reach ClickHouse
 *   as PostgreSQL has them, step runs and attempts too;
 * - ClickHouse stopped for a while: the replicator retries from its slot and catches up;
 * - a table of a location the replicator was not given is a clear error, not silent loss;
 * - a slot that is gone after progress was recorded is a clear error naming the rebuild.
 * The crash test (kill -9 mid-stream) is in analytics.crash.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import { Replicator, checkWalLevel } from '../src/analytics/replicator.js';
import { openAnalyticsFixture, type AnalyticsFixture } from './support/analytics-fixture.js';
import { CLICKHOUSE_ABSENT, clickhouseBinary } from './support/throwaway-clickhouse.js';
import { createPgExecutor } from '../src/store/pg-executor.js';
import { adminUrl } from './support/databases.js';
import { REPO_ROOT, runCli } from './support/cli-process.js';

const present = clickhouseBinary() !== undefined;
if (!present) console.warn(CLICKHOUSE_ABSENT);

const ok = defineWorkflow<{ n: number }>('ok')
  .step('a', (input) => ({ n: input.n + 1 }))
  .step('b', { after: 'a' }, (input) => ({ n: input.n * 2 }));
const bad = defineWorkflow<{ n: number }>('bad').step(
  'boom',
  { retry: { maxAttempts: 2, minDelay: 5 } },
  () => {
    throw new Error('boom');
  },
);

/** Poll until `check` passes (ClickHouse trails PostgreSQL by the replication lag). */
async function eventually(check: () => Promise<void>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

describe.skipIf(!present)('analytics mirror (ClickHouse + logical replication)', () => {
  let f: AnalyticsFixture;
  let replicator: Replicator;
  let running: Promise<void>;

  /** PostgreSQL's runs of both locations: id → status. */
  async function pgRuns(): Promise<Map<string, string>> {
    const rows = await f.executor.query<{ id: string; status: string }>(
      `select id, status from weft_loc_a0.runs union all select id, status from weft_loc_b1.runs`,
    );
    return new Map(rows.rows.map((r) => [r.id, r.status]));
  }
  async function chRuns(): Promise<Map<string, string>> {
    const rows = await f.clickhouse.query<{ id: string; status: string }>(
      `SELECT id, status FROM weft.runs FINAL WHERE deleted = 0`,
    );
    return new Map(rows.map((r) => [r.id, r.status]));
  }

  beforeAll(async () => {
    f = await openAnalyticsFixture([ok, bad]);
    replicator = new Replicator({
      clickhouse: f.clickhouse,
      source: f.source,
      flushIntervalMs: 100,
    });
    await replicator.setup();
    running = replicator.run();
    running.catch(() => {}); // asserted on where a test expects it to stop
  }, 120_000);
  afterAll(async () => {
    await replicator?.stop();
    await running?.catch(() => {});
    await f?.close();
  });

  it('runs created, finished and deleted in both locations reach ClickHouse with their final status', async () => {
    const ids: string[] = [];
    for (const [i, engine] of f.engines.entries()) {
      for (let n = 0; n < 6; n++) {
        const { run } = await engine.trigger(n % 3 === 2 ? 'bad' : 'ok', { n });
        ids.push(run.id);
        expect(run.id).toContain(`_${i === 0 ? 'a0' : 'b1'}`);
      }
    }
    for (const id of ids) await f.engines[0].waitForRun(id, { timeoutMs: 30_000 });
    // a run deleted in each location (its step runs and attempts cascade)
    const gone = [ids[0]!, ids[6]!];
    await f.executor.query(`delete from weft_loc_a0.runs where id = $1`, [gone[0]]);
    await f.executor.query(`delete from weft_loc_b1.runs where id = $1`, [gone[1]]);

    const expected = await pgRuns();
    expect(expected.size).toBe(10);
    expect([...expected.values()].filter((s) => s === 'failed')).toHaveLength(4);
    await eventually(async () => expect(await chRuns()).toEqual(expected));
    for (const id of gone) expect((await chRuns()).has(id)).toBe(false);

    // step runs and attempts: the same final rows as PostgreSQL, by location
    const pgSteps = await f.executor.query<{ id: string; status: string; attempt_count: number }>(
      `select id, status, attempt_count from weft_loc_a0.step_runs union all
       select id, status, attempt_count from weft_loc_b1.step_runs order by id`,
    );
    // the stored attempt rows (location 0016: the attempts that did not succeed; a step run's
    // succeeded attempt is its own row, counted by attempt_count above)
    const pgAttempts = await f.executor.query<{ n: string }>(
      `select ((select count(*) from weft_loc_a0.attempt_rows) + (select count(*) from weft_loc_b1.attempt_rows))::text as n`,
    );
    await eventually(async () => {
      const steps = await f.clickhouse.query<{ id: string; status: string; attempt_count: number }>(
        `SELECT id, status, attempt_count FROM weft.step_runs FINAL WHERE deleted = 0 ORDER BY id`,
      );
      expect(steps).toEqual(pgSteps.rows);
      const attempts = await f.clickhouse.query<{ n: string }>(
        `SELECT toString(count()) AS n FROM weft.attempts FINAL WHERE deleted = 0`,
      );
      expect(attempts[0]!.n).toBe(pgAttempts.rows[0]!.n);
    });
    // the failed runs' step made 2 attempts each, both failed
    const failedAttempts = await f.clickhouse.query<{ status: string; n: string }>(
      `SELECT status, toString(count()) AS n FROM weft.attempts FINAL WHERE deleted = 0 AND status = 'failed' GROUP BY status`,
    );
    expect(failedAttempts).toEqual([{ status: 'failed', n: '8' }]);
    expect(replicator.status.flushedLsn).not.toBeNull();
  }, 90_000);

  it('catches up after ClickHouse was down for a while', async () => {
    await f.clickhouseServer.stop();
    const ids: string[] = [];
    for (const engine of f.engines)
      for (let n = 0; n < 4; n++) ids.push((await engine.trigger('ok', { n })).run.id);
    for (const id of ids) await f.engines[0].waitForRun(id, { timeoutMs: 30_000 });
    // the replicator is failing against the stopped server, and has acknowledged nothing new
    await new Promise((r) => setTimeout(r, 1_500));
    expect(replicator.status.restarts).toBeGreaterThan(0);
    const slot = await f.executor.query<{ lag: string }>(
      `select pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text as lag from pg_replication_slots`,
    );
    expect(Number(slot.rows[0]!.lag)).toBeGreaterThan(0);
    await f.clickhouseServer.start();
    const expected = await pgRuns();
    await eventually(async () => expect(await chRuns()).toEqual(expected), 60_000);
    for (const id of ids) expect((await chRuns()).get(id)).toBe('succeeded');
  }, 120_000);

  it('a table of a location it was not given stops it with a clear error (nothing acknowledged past it)', async () => {
    // A third location, created by `weft migrate` (which co-publishes it, the mirror being in
    // use), while this replicator only knows a0 and b1.
    const migrated = await runCli(['migrate'], {
      cwd: REPO_ROOT,
      env: { DATABASE_URL: f.url, WEFT_LOCATIONS: 'a0,b1,c2' },
      timeoutMs: 60_000,
    });
    expect(migrated.stdout).toContain('analytics publication: weft_loc_c2.runs');
    expect(migrated.code).toBe(0);
    const published = await f.executor.query<{ t: string }>(
      `select tablename as t from pg_publication_tables where schemaname = 'weft_loc_c2' order by 1`,
    );
    expect(published.rows.map((r) => r.t)).toEqual(['attempt_rows', 'runs', 'step_runs']);
    const { createStores } = await import('../src/store/stores.js');
    const stores = createStores({
      control: f.executor,
      locationTags: ['a0', 'b1', 'c2'],
      defaultLocationTag: 'c2',
    });
    const { Engine } = await import('../src/engine/engine.js');
    const { silentLogger } = await import('../src/engine/logger.js');
    const engine = await Engine.start({
      stores,
      environmentId: f.environmentId,
      workflows: [ok],
      logger: silentLogger(),
      reaperIntervalMs: false,
      worker: false,
    });
    await engine.trigger('ok', { n: 1 });
    await engine.stop();
    await expect(running).rejects.toThrow(
      /sent table weft_loc_c2\.runs, which this replicator does not mirror .*restart `weft replicate` with WEFT_LOCATIONS listing it/,
    );
    // restarted with the third location: it resumes and mirrors the run
    replicator = new Replicator({
      clickhouse: f.clickhouse,
      source: {
        url: f.url,
        locations: [...f.source.locations, { tag: 'c2', schema: 'weft_loc_c2' }],
      },
      flushIntervalMs: 100,
    });
    await replicator.setup();
    running = replicator.run();
    running.catch(() => {}); // asserted on where a test expects it to stop
    await eventually(async () => {
      const rows = await f.clickhouse.query<{ n: string }>(
        `SELECT toString(count()) AS n FROM weft.runs FINAL WHERE location = 'c2' AND deleted = 0`,
      );
      expect(rows[0]!.n).toBe('1');
    });
  }, 90_000);

  it('a slot that is gone after progress was recorded is a clear error', async () => {
    await replicator.stop();
    await running.catch(() => {});
    // the walsender of the stopped stream may take a moment to leave the slot
    await eventually(async () => {
      await f.executor.query(
        `select pg_drop_replication_slot(slot_name) from pg_replication_slots`,
      );
    });
    const next = new Replicator({ clickhouse: f.clickhouse, source: f.source });
    await expect(next.setup()).rejects.toThrow(
      /replication slot "weft_analytics_weft_analytics" .* is gone, but ClickHouse holds changes up to .*weft replicate --rebuild/,
    );
    await next.stop();
    // --rebuild: copies again from PostgreSQL, the mirror equals PostgreSQL
    replicator = new Replicator({
      clickhouse: f.clickhouse,
      source: {
        url: f.url,
        locations: [...f.source.locations, { tag: 'c2', schema: 'weft_loc_c2' }],
      },
      rebuild: true,
      flushIntervalMs: 100,
    });
    await replicator.setup();
    running = replicator.run();
    running.catch(() => {}); // asserted on where a test expects it to stop
    const expected = await pgRuns();
    await eventually(async () => {
      const got = await chRuns();
      for (const [id, status] of expected) expect(got.get(id)).toBe(status);
    });
  }, 90_000);

  it('refuses a database without wal_level = logical, saying how to set it', async () => {
    const shared = createPgExecutor({ connectionString: adminUrl(), max: 1 });
    try {
      const level = (await shared.query<{ wal_level: string }>('show wal_level')).rows[0]!
        .wal_level;
      if (level === 'logical') return; // CI may run the shared server with it on
      await expect(checkWalLevel(shared, 'the shared server')).rejects.toThrow(
        /wal_level = replica; .*alter system set wal_level = logical.*restart PostgreSQL/,
      );
    } finally {
      await shared.close();
    }
  });
});
