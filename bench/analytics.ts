/**
 * Issue 12 bench: the analytics mirror.
 *
 * 1. 1,000,000 runs (two locations, 500,000 each, 20 workflows, 10 % failed, created over 30 days)
 *    and 2,000,000 step runs (`charge`, `notify`), written by SQL into a throwaway PostgreSQL
 *    cluster (wal_level = logical), then copied into a throwaway ClickHouse by `weft replicate`'s
 *    first copy (timed).
 * 2. The same queries through both sources (PostgresRunAnalytics, ClickhouseRunAnalytics; each
 *    answer checked equal): a filtered runs list (workflow + status + last 7 days, 50 rows) and
 *    per-step duration percentiles (p50/p95/p99 per workflow and step, all 2M step runs; and one
 *    workflow over 7 days). Median of 5 after one warm-up.
 * 3. Replication lag under the fan-out load (1,000 runs × 3 steps, a worker of concurrency 25):
 *    sampled every 100 ms while it runs (seconds since the oldest commit not in ClickHouse; WAL
 *    bytes behind), and the catch-up time after the last run ended.
 *
 * Output: one JSON object per figure on stdout, and appended to bench/results/analytics.jsonl.
 *   node --import tsx bench/analytics.ts [--runs 1000000] [--fanout 1000]
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { Clickhouse } from '../src/analytics/clickhouse.js';
import { Replicator } from '../src/analytics/replicator.js';
import {
  ClickhouseRunAnalytics,
  PostgresRunAnalytics,
  type RunAnalytics,
} from '../src/analytics/run-analytics.js';
import { defineWorkflow, Engine, createStores } from '../src/index.js';
import { silentLogger } from '../src/engine/logger.js';
import { createPgExecutor } from '../src/store/pg-executor.js';
import { ThrowawayClickhouse } from '../test/support/throwaway-clickhouse.js';
import { ThrowawayCluster } from '../test/support/throwaway-cluster.js';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const RUNS = arg('runs', 1_000_000);
const FANOUT = arg('fanout', 1_000);
const TAGS = ['a0', 'b1'];
const OUT = new URL('./results/analytics.jsonl', import.meta.url);

function emit(figure: Record<string, unknown>): void {
  const line = JSON.stringify({ at: new Date().toISOString(), loadavg: loadavg(), ...figure });
  console.log(line);
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  appendFileSync(OUT, `${line}\n`);
}

async function timed<T>(fn: () => Promise<T>, reps = 5): Promise<{ ms: number[]; value: T }> {
  let value = await fn(); // warm-up
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    value = await fn();
    ms.push(performance.now() - t);
  }
  return { ms: ms.sort((a, b) => a - b), value };
}
const median = (xs: number[]) => xs[Math.floor(xs.length / 2)]!;
const r1 = (x: number) => Math.round(x * 10) / 10;

const cluster = await ThrowawayCluster.create({
  settings: ['wal_level = logical', 'shared_buffers = 256MB', 'max_wal_size = 4GB'],
});
const chServer = await ThrowawayClickhouse.create();
try {
  const url = await cluster.createDatabase('weft_bench');
  const db = createPgExecutor({ connectionString: url, max: 10 });
  const stores = createStores({ control: db, locationTags: TAGS });
  await stores.migrate();
  const { environmentId: env } = await stores.control.createTenant(
    { organization: 'bench', project: 'bench', environment: 'prod' },
    { saveDataclips: false },
  );
  const t0 = Date.now() - 30 * 86_400_000;
  const tFill = performance.now();
  for (const [i, tag] of TAGS.entries()) {
    const s = `weft_loc_${tag}`;
    const n = RUNS / TAGS.length;
    // g = i, i+2, i+4, …: the two locations interleave in time
    await db.query(
      `insert into ${s}.runs (id, environment_id, workflow_id, version_id, status, trigger_kind, save_dataclips,
                              created_at, started_at, finished_at, updated_at)
       select 'run_${tag}' || '0000000000' || lpad(g::text, 16, '0'), $1, 'wf' || (g % 20), 'v1',
              case when g % 10 = 0 then 'failed' else 'succeeded' end, 'api', false,
              c, c + (g % 977) * interval '1 ms', c + (g % 977 + 50 + g % 9001) * interval '1 ms', c
         from (select g, to_timestamp($2::double precision / 1000) + g * ($3::double precision / $4) * interval '1 ms' as c
                 from generate_series($5::int, $6::int, 2) g) x`,
      [env, t0, 30 * 86_400_000, RUNS, i, 2 * n - 2 + i],
    );
    await db.query(
      `insert into ${s}.step_runs (id, run_id, environment_id, workflow_id, step_id, step_key, status, max_attempts,
                                   attempt_count, created_at, started_at, finished_at)
       select 'sr_${tag}' || '0000000000' || lpad(r.g::text, 15, '0') || k.k, r.id, r.environment_id, r.workflow_id,
              k.step, k.step, 'succeeded', 3, 1, r.created_at,
              r.started_at + k.k * interval '10 ms',
              r.started_at + k.k * interval '10 ms' + ((r.g * (k.k + 7)) % 3001) * interval '1 ms' + interval '3 microseconds'
         from (select id, environment_id, workflow_id, created_at, started_at, substr(id, 17)::bigint as g from ${s}.runs) r
        cross join (values (0, 'charge'), (1, 'notify')) as k(k, step)`,
    );
    await db.query(`analyze ${s}.runs`);
    await db.query(`analyze ${s}.step_runs`);
  }
  emit({
    bench: 'analytics.fill',
    runs: RUNS,
    stepRuns: RUNS * 2,
    seconds: r1((performance.now() - tFill) / 1000),
  });

  const clickhouse = await Clickhouse.connect({ url: chServer.url });
  const source = { url, locations: TAGS.map((tag) => ({ tag, schema: `weft_loc_${tag}` })) };
  const replicator = new Replicator({ clickhouse, source, batchRows: 5_000 });
  const tCopy = performance.now();
  await replicator.setup();
  emit({
    bench: 'analytics.first_copy',
    rows: RUNS * 3,
    seconds: r1((performance.now() - tCopy) / 1000),
    clickhouse: await clickhouse.version(),
  });

  const pgA: RunAnalytics = new PostgresRunAnalytics(stores.runs);
  const chA: RunAnalytics = new ClickhouseRunAnalytics(clickhouse);
  const week = new Date(Date.now() - 7 * 86_400_000).toISOString();
  const queries: Array<[string, (a: RunAnalytics) => Promise<unknown>]> = [
    [
      'list: workflow wf3, status failed, last 7 days, 50 rows',
      (a) =>
        a.listRuns({
          environmentId: env,
          workflowId: 'wf3',
          statuses: ['failed'],
          createdFrom: week,
          limit: 50,
        }),
    ],
    [
      'list: status failed, no other filter, 50 rows',
      (a) => a.listRuns({ environmentId: env, statuses: ['failed'], limit: 50 }),
    ],
    [
      'step p50/p95/p99 per workflow and step, all 2M step runs',
      (a) => a.stepDurations({ environmentId: env }),
    ],
    [
      'step p50/p95/p99, workflow wf3, last 7 days',
      (a) => a.stepDurations({ environmentId: env, workflowId: 'wf3', from: week }),
    ],
    ['failure rate per workflow, all runs', (a) => a.failureRate({ environmentId: env })],
  ];
  for (const [name, q] of queries) {
    const pg = await timed(() => q(pgA));
    const ch = await timed(() => q(chA));
    const same = JSON.stringify(pg.value) === JSON.stringify(ch.value);
    emit({
      bench: 'analytics.query',
      query: name,
      runs: RUNS,
      postgresMs: r1(median(pg.ms)),
      clickhouseMs: r1(median(ch.ms)),
      postgresAllMs: pg.ms.map(r1),
      clickhouseAllMs: ch.ms.map(r1),
      sameAnswer: same,
    });
  }

  // 3. lag under the fan-out load, replicator streaming
  const running = replicator.run();
  running.catch((e) => console.error(e));
  const wf = defineWorkflow<{ n: number }>('fan')
    .step('a', (x) => x)
    .step('b', (x) => x)
    .step('c', (x) => x);
  const engine = await Engine.start({
    stores,
    environmentId: env,
    workflows: [wf],
    logger: silentLogger(),
    reaperIntervalMs: false,
    worker: { concurrency: 25, pollIntervalMs: 50 },
  });
  const samples: Array<{ s: number; bytes: number }> = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const b = await db.query<{ lag: string }>(
        `select pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text as lag from pg_replication_slots`,
      );
      samples.push({ s: replicator.status.lagSeconds, bytes: Number(b.rows[0]?.lag ?? 0) });
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const tLoad = performance.now();
  const ids: string[] = [];
  for (let n = 0; n < FANOUT; n++) ids.push((await engine.trigger('fan', { n })).run.id);
  for (const id of ids) await engine.waitForRun(id, { timeoutMs: 600_000 });
  const loadS = (performance.now() - tLoad) / 1000;
  const tEnd = performance.now();
  for (;;) {
    const rows = await clickhouse.query<{ n: string }>(
      `SELECT toString(count()) AS n FROM weft.runs FINAL WHERE workflow_id = 'fan' AND status = 'succeeded' AND deleted = 0`,
    );
    if (Number(rows[0]!.n) === FANOUT) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const catchUpMs = performance.now() - tEnd;
  sampling = false;
  await sampler;
  const lagS = samples.map((x) => x.s).sort((a, b) => a - b);
  const lagB = samples.map((x) => x.bytes).sort((a, b) => a - b);
  emit({
    bench: 'analytics.lag_under_fanout',
    runs: FANOUT,
    stepsPerRun: 3,
    workerConcurrency: 25,
    loadSeconds: r1(loadS),
    stepsPerSecond: r1((FANOUT * 3) / loadS),
    lagSecondsP50: r1(median(lagS) * 1000) / 1000,
    lagSecondsP95: r1(lagS[Math.floor(lagS.length * 0.95)]! * 1000) / 1000,
    lagSecondsMax: r1(lagS[lagS.length - 1]! * 1000) / 1000,
    lagBytesP95: lagB[Math.floor(lagB.length * 0.95)],
    lagBytesMax: lagB[lagB.length - 1],
    catchUpAfterLastRunMs: r1(catchUpMs),
    samples: samples.length,
    rowsWritten: replicator.status.rowsWritten,
    batches: replicator.status.batches,
  });
  await engine.stop();
  await replicator.stop();
  await running.catch(() => {});
  await clickhouse.close();
  await stores.close();
} finally {
  await chServer.destroy();
  await cluster.destroy();
}
