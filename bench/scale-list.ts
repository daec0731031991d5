/**
 * Issue 9 bench: listing 1,000,000 runs spread over two locations in two PostgreSQL databases
 * (keyset merge) versus the same 1,000,000 runs in one table (keyset) versus OFFSET at the same
 * depth; and trigger latency with one location and with two (the organization cut over into a
 * location in the second database). Prints one JSON object (machine-readable) on stdout.
 *
 *   node --import tsx bench/scale-list.ts [--runs 1000000] [--depth 500000] [--reps 20] [--triggers 300]
 *
 * Pre-fill is a bulk `insert … select … from generate_series` straight into the run tables (ids
 * minted by each location's own mint_id, so they carry its tag); the databases are created and
 * dropped here (WEFT_BENCH_PG_URL, default postgres://postgres@127.0.0.1:5432/postgres).
 */
import { loadavg } from 'node:os';
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { Engine } from '../src/engine/engine.js';
import { cutoverOrganization } from '../src/engine/cutover.js';
import { silentLogger } from '../src/engine/logger.js';
import { triggerRun } from '../src/engine/trigger.js';
import { defineWorkflow } from '../src/index.js';
import { createPgExecutor } from '../src/store/pg-executor.js';
import { createStores } from '../src/store/stores.js';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const RUNS = arg('runs', 1_000_000);
const DEPTH = arg('depth', 500_000);
const REPS = arg('reps', 20);
const TRIGGERS = arg('triggers', 300);
const LIMIT = 50;
const ADMIN = process.env.WEFT_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function createDb(label: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `weft_bench_${label}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(ADMIN);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: ADMIN });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

/** min: the figure least disturbed by a loaded machine (other processes share its 2 cores). */
function stats(ms: number[]): { min: number; p50: number; p95: number; mean: number } {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return {
    min: round(s[0]!),
    p50: round(at(0.5)),
    p95: round(at(0.95)),
    mean: round(s.reduce((a, b) => a + b, 0) / s.length),
  };
}

async function time(reps: number, fn: () => Promise<unknown>): Promise<number[]> {
  await fn(); // warm (plans, caches)
  const out: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

const cursorOf = (t: string, id: string) =>
  Buffer.from(JSON.stringify([t, id])).toString('base64url');

async function main(): Promise<void> {
  const one = await createDb('a');
  const two = await createDb('b');
  const dbA = createPgExecutor({ connectionString: one.url, max: 4 });
  const dbB = createPgExecutor({ connectionString: two.url, max: 4 });
  try {
    // a0 and c2 (the one-table comparison) in database A, b1 in database B
    const stores = createStores({
      control: dbA,
      locations: [{ tag: 'a0' }, { tag: 'b1', executor: dbB }, { tag: 'c2' }],
      defaultLocationTag: 'a0',
    });
    await stores.migrate();
    const env = 'env_bench';
    const half = Math.floor(RUNS / 2);
    const fillStart = performance.now();
    // 4 runs share each created_at (equal timestamps are the keyset's hard case); a0 and b1
    // interleave in time (a cutover back and forth), c2 holds all of them in one table
    const fill = (db: typeof dbA, schema: string, n: number, offsetMs: number, step: number) =>
      db.query(
        `insert into ${schema}.runs (id, environment_id, workflow_id, version_id, status, trigger_kind, save_dataclips, created_at)
         select ${schema}.mint_id('run'), $1, 'wf', 'wfv_bench', 'succeeded', 'api', true,
                timestamptz '2026-01-01' + ((g / 4) * $3::int + $2::int) * interval '1 millisecond'
           from generate_series(1, $4::int) g`,
        [env, offsetMs, step, n],
      );
    await Promise.all([
      fill(dbA, 'weft_loc_a0', half, 0, 2),
      fill(dbB, 'weft_loc_b1', RUNS - half, 1, 2),
    ]);
    await fill(dbA, 'weft_loc_c2', RUNS, 0, 1);
    await Promise.all([dbA.query('analyze'), dbB.query('analyze')]);
    const fillMs = performance.now() - fillStart;

    const merged = (cursor?: string) =>
      stores.runs.listRuns({
        environmentId: env,
        limit: LIMIT,
        locations: ['a0', 'b1'],
        ...(cursor ? { cursor } : {}),
      });
    const single = (cursor?: string) =>
      stores.runs.listRuns({
        environmentId: env,
        limit: LIMIT,
        locations: ['c2'],
        ...(cursor ? { cursor } : {}),
      });
    const offsetSql = `select id, created_at from weft_loc_c2.runs where environment_id = $1
                        order by created_at desc, id desc offset $2 limit ${LIMIT}`;
    const keyOf = async (db: typeof dbA, schema: string, offset: number) => {
      const r = await db.query<{ t: string; id: string }>(
        `select to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as t, id
           from ${schema}.runs where environment_id = $1 order by created_at desc, id desc offset $2 limit 1`,
        [env, offset],
      );
      return cursorOf(r.rows[0]!.t, r.rows[0]!.id);
    };
    // the cursor at depth DEPTH: in the merge, half of it lies in a0 (the two interleave)
    const deepMerged = await keyOf(dbA, 'weft_loc_a0', Math.floor(DEPTH / 2));
    const deepSingle = await keyOf(dbA, 'weft_loc_c2', DEPTH);

    const list = {
      mergeFirst: stats(await time(REPS, () => merged())),
      mergeDeep: stats(await time(REPS, () => merged(deepMerged))),
      oneTableFirst: stats(await time(REPS, () => single())),
      oneTableDeep: stats(await time(REPS, () => single(deepSingle))),
      offsetFirst: stats(await time(REPS, () => dbA.query(offsetSql, [env, 0]))),
      offsetDeep: stats(await time(Math.min(REPS, 5), () => dbA.query(offsetSql, [env, DEPTH]))),
    };

    // trigger latency: one workflow, one step; the org in a0 (database A, with the control
    // plane), then cut over into b1 (database B)
    const wf = defineWorkflow<{ n: number }>('one').step('s', ({ n }) => n);
    const tenant = await stores.control.createTenant({
      organization: 'bench',
      project: 'bench',
      environment: 'bench',
    });
    const engine = await Engine.start({
      stores,
      environmentId: tenant.environmentId,
      workflows: [wf],
      worker: false,
      reaperIntervalMs: false,
      timerIntervalMs: false,
      scheduler: false,
      retentionIntervalMs: false,
      bulkRerunIntervalMs: false,
      logger: silentLogger(),
    });
    await engine.stop();
    const trigger = (n: number) =>
      triggerRun(stores, { environmentId: tenant.environmentId, workflowId: 'one', input: { n } });
    const counted = async (fn: () => Promise<unknown>) => {
      let n = 0;
      const wrap = (db: typeof dbA) => {
        const q = db.query.bind(db);
        (db as { query: typeof q }).query = ((sql: string, p?: readonly unknown[]) => {
          if (!sql.startsWith('select pg_notify(')) n++;
          return q(sql, p);
        }) as typeof q;
        return () => void ((db as { query: typeof q }).query = q);
      };
      const undo = [wrap(dbA), wrap(dbB)];
      await fn();
      undo.forEach((u) => u());
      return n;
    };
    const triggerOne = stats(await time(TRIGGERS, () => trigger(1)));
    const statementsOne = await counted(() => trigger(2));
    await cutoverOrganization(stores, tenant.organizationId, 'b1');
    await trigger(3);
    const triggerTwo = stats(await time(TRIGGERS, () => trigger(4)));
    const statementsTwo = await counted(() => trigger(5));

    process.stdout.write(
      JSON.stringify(
        {
          bench: 'issue9-scale-list',
          runs: RUNS,
          locations: { a0: half, b1: RUNS - half, oneTable: RUNS },
          depth: DEPTH,
          pageSize: LIMIT,
          reps: REPS,
          fillSeconds: Math.round(fillMs / 100) / 10,
          listMs: list,
          trigger: {
            oneLocationMs: triggerOne,
            twoLocationsMs: triggerTwo,
            statementsOneLocation: statementsOne,
            statementsTwoLocations: statementsTwo,
            n: TRIGGERS,
          },
          loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
          node: process.version,
          at: new Date().toISOString(),
        },
        null,
        2,
      ) + '\n',
    );
    await stores.close();
  } finally {
    await one.drop();
    await two.drop();
  }
}

await main();
