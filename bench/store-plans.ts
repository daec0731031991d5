/**
 * Two query plans of the store, measured on tables filled with generate_series (issue 8):
 *
 * 1. The runs list filtered by status at --runs runs (default 256,000): one page of 50 through
 *    named prepared statements, as the server sends it. After five executions PostgreSQL may
 *    switch a named statement to a generic plan; so each shape is executed 12 times and the
 *    median of executions 7–12 reported, before (status = any($2::text[]), index
 *    runs_env_created only) and after (one `status = $n` branch per status over the index
 *    runs_env_status_created, location migration 0008; RunStore.listRuns).
 * 2. The successor lookup of a chained step (propagate) at step 5,000 of a --chain-step chain
 *    (default 10,000): EXPLAIN (ANALYZE, BUFFERS) of the old and the new statement, each with the
 *    generic plan PL/pgSQL settles on (plan_cache_mode = force_generic_plan), in a transaction
 *    that is rolled back.
 *
 *   node --import tsx bench/store-plans.ts [--runs 256000] [--chain 10000]
 *
 * Needs a PostgreSQL at WEFT_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres);
 * creates a database of its own and drops it at the end. Prints a JSON summary on stdout.
 */
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import pg from 'pg';
import { createPgExecutor } from '../src/store/pg-executor.js';
import { createStores } from '../src/store/stores.js';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const RUNS = arg('runs', 256_000);
const CHAIN = arg('chain', 10_000);
const ADMIN = process.env.WEFT_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const LOC = 'weft_loc_a0';
const ENV = 'env_bench';

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

async function main(): Promise<void> {
  const name = `weft_bench_plans_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN });
  await admin.connect();
  await admin.query(`create database ${name}`);
  const url = new URL(ADMIN);
  url.pathname = `/${name}`;
  const executor = createPgExecutor({ connectionString: url.toString(), max: 2 });
  const stores = createStores({ control: executor });
  const client = new pg.Client({ connectionString: url.toString() });
  const out: Record<string, unknown> = { runs: RUNS, chain: CHAIN, loadavgStart: loadavg() };
  try {
    await stores.migrate();
    await client.connect();

    // ── 1. filtered runs list ──────────────────────────────────────────────────────────────
    await client.query(
      `insert into ${LOC}.runs (id, environment_id, workflow_id, version_id, status, trigger_kind, save_dataclips,
                                created_at, started_at, finished_at)
       select 'run_a0' || lpad(i::text, 26, '0'), $1, 'wf' || (i % 8), 'wfv_bench',
              case when i <= 400 and i % 4 = 0 then 'canceled' when i % 100 = 0 then 'failed' when i % 500 = 1 then 'running' else 'succeeded' end,
              'api', true, t, t, t + interval '1 second'
         from generate_series(1, $2::int) i, lateral (select now() - ($2::int - i) * interval '1 second' as t) x`,
      [ENV, RUNS],
    );
    await client.query(`analyze ${LOC}.runs`);
    const cols = `id, environment_id, workflow_id, version_id, status, trigger_kind, trigger_ref, input_dataclip_id,
      final_dataclip_id, save_dataclips, idempotency_key, rerun_of, rerun_from_step, parent_run_id, error,
      created_at, started_at, finished_at, updated_at`;
    // The statement RunStore.listRuns sent before (one `status = any(...)` filter).
    const oldList = `select ${cols}, to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as created_key
       from ${LOC}.runs where environment_id = $1 and status = any($2::text[])
      order by created_at desc, id desc limit $3`;
    const timeNamed = async (label: string, text: string, values: unknown[]) => {
      const ms: number[] = [];
      for (let i = 0; i < 12; i++) {
        const t0 = performance.now();
        await client.query({ name: label, text, values });
        ms.push(performance.now() - t0);
      }
      return {
        first: ms[0],
        medianGeneric: median(ms.slice(6)),
        all: ms.map((x) => +x.toFixed(2)),
      };
    };
    await client.query(`drop index if exists ${LOC}.runs_env_status_created`);
    out.listBefore = {
      failed: await timeNamed('old_failed', oldList, [ENV, ['failed'], 51]),
      running: await timeNamed('old_running', oldList, [ENV, ['running'], 51]),
      failedOrRunning: await timeNamed('old_two', oldList, [ENV, ['failed', 'running'], 51]),
      // 100 canceled runs, all among the oldest 400: the walk reads the whole environment
      canceled: await timeNamed('old_canceled', oldList, [ENV, ['canceled'], 51]),
    };
    await client.query(
      `create index runs_env_status_created on ${LOC}.runs (environment_id, status, created_at desc, id desc)`,
    );
    await client.query(`analyze ${LOC}.runs`);
    const viaStore = async (statuses: Array<'failed' | 'running' | 'canceled'>) => {
      const ms: number[] = [];
      for (let i = 0; i < 12; i++) {
        const t0 = performance.now();
        const page = await stores.runs.listRuns({ environmentId: ENV, statuses, limit: 50 });
        ms.push(performance.now() - t0);
        if (page.data.length === 0) throw new Error('expected runs in the page, got none');
      }
      return {
        first: ms[0],
        medianGeneric: median(ms.slice(6)),
        all: ms.map((x) => +x.toFixed(2)),
      };
    };
    out.listAfter = {
      failed: await viaStore(['failed']),
      running: await viaStore(['running']),
      failedOrRunning: await viaStore(['failed', 'running']),
      canceled: await viaStore(['canceled']),
    };

    const explainGeneric = async (text: string, args: string) => {
      await client.query('begin');
      try {
        await client.query(`set local plan_cache_mode = force_generic_plan`);
        await client.query(`prepare plan_probe as ${text}`);
        const plan = await client.query<{ 'QUERY PLAN': string }>(
          `explain (analyze, buffers, costs off) execute plan_probe${args}`,
        );
        return plan.rows.map((r) => r['QUERY PLAN']);
      } finally {
        await client.query('rollback');
        await client.query(`deallocate all`);
      }
    };
    await client.query(`drop index ${LOC}.runs_env_status_created`);
    out.listPlanBefore = await explainGeneric(oldList, `('${ENV}', '{canceled}', 51)`);
    await client.query(
      `create index runs_env_status_created on ${LOC}.runs (environment_id, status, created_at desc, id desc)`,
    );
    out.listPlanAfter = await explainGeneric(
      `select ${cols} from ${LOC}.runs where environment_id = $1 and status = $2::text
        order by created_at desc, id desc limit $3`,
      `('${ENV}', 'canceled', 51)`,
    );

    // ── 2. the chain's successor lookup ────────────────────────────────────────────────────
    const mid = Math.floor(CHAIN / 2);
    await client.query(`analyze ${LOC}.step_runs`);
    await client.query(
      `insert into ${LOC}.runs (id, environment_id, workflow_id, version_id, status, trigger_kind, save_dataclips)
       values ('run_chain', $1, 'chain', 'wfv_bench', 'running', 'api', true)`,
      [ENV],
    );
    await client.query(
      `insert into ${LOC}.step_runs (id, run_id, environment_id, workflow_id, step_id, step_key, status,
                                     pending_parents, parents, successors, max_attempts)
       select 'sr_' || lpad(i::text, 26, '0'), 'run_chain', $1, 'chain', 's' || i, 's' || i,
              case when i < $3::int then 'succeeded' when i = $3::int then 'running' else 'pending' end,
              case when i > $3::int then 1 else 0 end,
              case when i = 0 then '{}'::text[] else array['s' || (i - 1)] end,
              case when i = $2::int - 1 then '{}'::text[] else array['s' || (i + 1)] end, 1
         from generate_series(0, $2::int - 1) i`,
      [ENV, CHAIN, mid],
    );
    // No ANALYZE after the insert: as in production, where createRun writes a whole chain in one
    // statement and autovacuum has not analyzed it when its steps run (the statistics describe
    // the table before the run: here, empty).
    const from = `s${mid}`;
    const live = [`s${mid + 1}`];
    // The decrement of 0.1's propagate, as written there (its `d` subquery is the scan).
    const oldUpdate = `update ${LOC}.step_runs u
         set pending_parents = u.pending_parents - 1,
             live_from = case when u.step_key = any($3) then array_append(u.live_from, $2::text) else u.live_from end,
             status = case when f.take then 'running' when f.direct then 'ready' else u.status end,
             input_dataclip_id = case when f.direct then $5 else u.input_dataclip_id end
        from (select d.id, d.direct,
                     d.direct and $6::text is not null and d.concurrency_key is null
                       and row_number() over (partition by d.direct and d.concurrency_key is null order by d.id) = 1 as take
                from (select sr.id, sr.concurrency_key,
                             (sr.step_key = any($3) and sr.pending_parents = 1 and cardinality(sr.parents) = 1
                              and $5::text is not null) as direct
                        from ${LOC}.step_runs sr
                       where sr.run_id = $1 and sr.step_key = any($3 || $4) and sr.status = 'pending') d) f
       where u.id = f.id`;
    // The new shape (src/store/sql/location/propagate.sql): per successor key, the row by
    // (run_id, step_key) alone (no status condition, so no partial index qualifies), then the
    // decrement by primary key.
    const newLookup = `select sr.id, sr.status, sr.pending_parents, cardinality(sr.parents) as n_parents, sr.concurrency_key
        from ${LOC}.step_runs sr where sr.run_id = $1 and sr.step_key = $2`;
    const newUpdate = `update ${LOC}.step_runs u
         set pending_parents = u.pending_parents - 1,
             live_from = case when $2 then array_append(u.live_from, $3::text) else u.live_from end,
             status = case when $4 then 'ready' else u.status end,
             input_dataclip_id = case when $4 then $5 else u.input_dataclip_id end
       where u.id = $1 and u.status = 'pending'
       returning u.status, u.pending_parents`;
    const explain = async (label: string, text: string, args: string) => {
      await client.query('begin');
      try {
        await client.query(`set local plan_cache_mode = force_generic_plan`);
        await client.query(`prepare ${label} as ${text}`);
        const plan = await client.query<{ 'QUERY PLAN': string }>(
          `explain (analyze, buffers, costs off) execute ${label}${args}`,
        );
        return plan.rows.map((r) => r['QUERY PLAN']);
      } finally {
        await client.query('rollback');
        await client.query(`deallocate all`);
      }
    };
    const next = live[0]!;
    out.chainBefore = await explain(
      'old_propagate',
      oldUpdate,
      `('run_chain', '${from}', '{${next}}'::text[], '{}'::text[], 'dc_x', 'w1')`,
    );
    const nextId = `sr_${String(mid + 1).padStart(26, '0')}`;
    out.chainAfter = [
      ...(await explain('new_lookup', newLookup, `('run_chain', '${next}')`)),
      '--- then',
      ...(await explain('new_update', newUpdate, `('${nextId}', true, '${from}', true, 'dc_x')`)),
    ];
    out.loadavgEnd = loadavg();
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } finally {
    await client.end().catch(() => {});
    await stores.close();
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.end();
  }
}

await main();
