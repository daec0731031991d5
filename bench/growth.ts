/**
 * How Weft's cost grows with the work and with the tables (issue 8, "How cost grows"):
 *
 * 1. Tables pre-filled with --prefill step runs (default 1,000,000): a real workload of 1,000 runs
 *    (one step each; one run in ten fails, so a status filter has something to find) is run
 *    through the engine, then its rows are copied with fresh ids, doubling every table of the
 *    location until the step runs reach the target. The copy reads the columns from the catalog,
 *    so it follows the schema of the build under test: every text column named `id`, `*_id`
 *    (tenancy and step names aside), `reused_from` or `rerun_of` gets a suffix per round, and
 *    serial columns take their defaults. The result is ANALYZEd and VACUUMed, as autovacuum would
 *    leave a long-lived database.
 * 2. On those tables: a chain of 100 / 1,000 / 10,000 no-op steps (ms/step) and a fan-out of
 *    1,000 / 10,000 / 100,000 runs × 3 steps (steps/s); each size is compared with the smallest.
 * 3. A filtered runs list (status; status + workflow) at the pre-filled run count: one page of 50
 *    through the store, the median of 12 (executions 7–12, after any switch to a generic plan).
 * 4. An idle claim (nothing ready): buffers read, from EXPLAIN (ANALYZE, BUFFERS) of a warm call
 *    (plans cached), on the 1,000-run table and on the pre-filled one.
 * 5. Bytes per run on disk: the location's relations (tables, indexes, TOAST) after a 3-step
 *    fan-out on empty tables, divided by its runs.
 *
 *   node --import tsx bench/growth.ts [--prefill 1000000] [--chains 100,1000,10000]
 *     [--fanouts 1000,10000,100000] [--concurrency 25] [--out file.jsonl]
 *
 * PostgreSQL at WEFT_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres); databases
 * of its own, dropped at the end. One JSON line per measurement on stdout (and in --out).
 */
import { appendFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import pg from 'pg';
import { defineWorkflow, Engine, type Stores } from '../src/index.js';
import type { AnyWorkflow } from '../src/engine/registry.js';
import type { RunStatus } from '../src/store/rows.js';
import { silentLogger } from '../src/engine/logger.js';
import type { BenchDatabase } from './lib/postgres.js';
import { RunEnds } from './lib/run-ends.js';
import { openWeftDatabase } from './lib/weft-database.js';
import { chainWorkflow } from './lib/chain-workflow.js';

const argValue = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const list = (name: string, fallback: number[]): number[] =>
  argValue(name)?.split(',').map(Number) ?? fallback;
const PREFILL = Number(argValue('prefill') ?? 1_000_000);
const CHAINS = list('chains', [100, 1_000, 10_000]);
const FANOUTS = list('fanouts', [1_000, 10_000, 100_000]);
const CONCURRENCY = Number(argValue('concurrency') ?? 25);
const OUT = argValue('out');
const LOC = 'weft_loc_a0';

function emit(record: Record<string, unknown>): void {
  const line = JSON.stringify({ at: new Date().toISOString(), loadavg: loadavg(), ...record });
  console.log(line);
  if (OUT) appendFileSync(OUT, line + '\n');
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

interface Bench {
  db: BenchDatabase;
  stores: Stores;
  engine: Engine;
  client: pg.Client;
  environmentId: string;
  ends: RunEnds;
  close(): Promise<void>;
}

async function open(label: string, workflows: AnyWorkflow[]): Promise<Bench> {
  const { db, stores, environmentId } = await openWeftDatabase(label, {
    applicationName: 'weft-growth',
  });
  const engine = await Engine.start({
    stores,
    environmentId,
    workflows,
    worker: { concurrency: CONCURRENCY, pollIntervalMs: 1000, leaseMs: 30_000 },
    logger: silentLogger(),
  });
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  const ends = await RunEnds.listen(stores);
  return {
    db,
    stores,
    ends,
    engine,
    client,
    environmentId,
    async close() {
      await ends.close();
      await engine.stop();
      await client.end();
      await stores.close();
      await db.drop();
    },
  };
}

/** Trigger `runs` runs at once and wait until every one has ended (RunEnds; one run: waitForRun). */
async function runMany(b: Bench, workflowId: string, runs: number, input: (i: number) => unknown) {
  const t0 = performance.now();
  const ids: string[] = [];
  for (let i = 0; i < runs; i += 1000) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(1000, runs - i) }, (_, j) =>
        b.engine.trigger(workflowId, input(i + j)),
      ),
    );
    ids.push(...batch.map((t) => t.run.id));
  }
  if (runs === 1) {
    await b.engine.waitForRun(ids[0]!, { timeoutMs: 600_000 });
    return { wallMs: performance.now() - t0, ids };
  }
  // which of the ids have ended, when notifications stall (1,000 ids per statement)
  await b.ends.waitFor(
    ids,
    async (left) => {
      const ended: string[] = [];
      for (let i = 0; i < left.length; i += 1000) {
        const { rows } = await b.client.query<{ id: string }>(
          `select id from ${LOC}.runs where id = any($1) and status in ('succeeded', 'failed', 'canceled')`,
          [left.slice(i, i + 1000)],
        );
        ended.push(...rows.map((r) => r.id));
      }
      return ended;
    },
    600_000,
  );
  return { wallMs: performance.now() - t0, ids };
}

/** Copy every row of the location with fresh ids until step_runs holds `target` rows. */
async function doubleUntil(client: pg.Client, target: number): Promise<number> {
  const tables = (
    await client.query<{ table_name: string }>(
      `select table_name from information_schema.tables
        where table_schema = $1 and table_type = 'BASE TABLE'
          and table_name in ('runs', 'step_runs', 'attempts', 'dataclips', 'run_events', 'waitpoints')`,
      [LOC],
    )
  ).rows.map((r) => r.table_name);
  const tenancy = new Set(['environment_id', 'workflow_id', 'version_id', 'project_id', 'step_id']);
  const plans = new Map<string, { cols: string[]; exprs: (round: number) => string[] }>();
  for (const table of tables) {
    const { rows } = await client.query<{
      column_name: string;
      data_type: string;
      column_default: string | null;
      is_identity: string;
    }>(
      `select column_name, data_type, column_default, is_identity from information_schema.columns
        where table_schema = $1 and table_name = $2 order by ordinal_position`,
      [LOC, table],
    );
    const kept = rows.filter(
      (c) => c.is_identity !== 'YES' && !(c.column_default ?? '').startsWith('nextval('),
    );
    const isId = (c: (typeof rows)[number]) =>
      c.data_type === 'text' &&
      (c.column_name === 'id' ||
        c.column_name === 'reused_from' ||
        c.column_name === 'rerun_of' ||
        (c.column_name.endsWith('_id') && !tenancy.has(c.column_name)));
    plans.set(table, {
      cols: kept.map((c) => `"${c.column_name}"`),
      exprs: (round) =>
        kept.map((c) => (isId(c) ? `"${c.column_name}" || 'g${round}'` : `"${c.column_name}"`)),
    });
  }
  // Parents before children (foreign keys, where the build under test still has them).
  const order = ['runs', 'dataclips', 'step_runs', 'attempts', 'waitpoints', 'run_events'].filter(
    (t) => plans.has(t),
  );
  let stepRuns = 0;
  for (let round = 1; ; round++) {
    stepRuns = Number(
      (await client.query<{ n: string }>(`select count(*) as n from ${LOC}.step_runs`)).rows[0]!.n,
    );
    if (stepRuns >= target) break;
    await client.query('begin');
    await client.query(`set local session_replication_role = replica`); // no FK triggers on the copy
    for (const table of order) {
      const p = plans.get(table)!;
      await client.query(
        `insert into ${LOC}.${table} (${p.cols.join(', ')}) select ${p.exprs(round).join(', ')} from ${LOC}.${table}`,
      );
    }
    await client.query('commit');
  }
  await client.query(`vacuum analyze`);
  // Write the pre-fill's dirty pages out now: a checkpoint of a few GB during the measurements
  // would slow their commits (the first full run measured a 10,000-step chain at 5.7 ms/step
  // right after the pre-fill; on a fresh database it takes 1.3).
  await client.query(`checkpoint`);
  return stepRuns;
}

/**
 * An idle claim (nothing ready): buffers touched, from EXPLAIN (ANALYZE, BUFFERS) of claim_steps
 * in one session. The first calls of a session plan the function's statements and read the
 * catalog; the figure is the sixth call's, when the plans are cached, as in a running worker.
 */
async function idleClaimBuffers(
  b: Awaited<ReturnType<typeof open>>,
  workflows: ReadonlyArray<{ id: string }>,
): Promise<{ sharedHit: number; sharedRead: number; firstCallHit: number }> {
  const measure = async () => {
    const { rows: plan } = await b.client.query<{ 'QUERY PLAN': unknown }>(
      `explain (analyze, buffers, format json)
       select * from ${LOC}.claim_steps('growth-probe', array[$1], $2::text[], 10, 30000)`,
      [b.environmentId, workflows.map((w) => w.id)],
    );
    return (plan[0]!['QUERY PLAN'] as Array<{ Plan: Record<string, number> }>)[0]!.Plan;
  };
  const first = await measure();
  let last = first;
  for (let i = 0; i < 5; i++) last = await measure();
  return {
    sharedHit: last['Shared Hit Blocks']!,
    sharedRead: last['Shared Read Blocks']!,
    firstCallHit: first['Shared Hit Blocks']!,
  };
}

async function bytesPerRun(): Promise<void> {
  const b = await open('growth_bytes', [chainWorkflow('three', 3)]);
  try {
    const runs = 10_000;
    await runMany(b, 'three', runs, () => null);
    await b.client.query('vacuum analyze');
    const { rows } = await b.client.query<{ relname: string; bytes: string }>(
      `select c.relname, pg_total_relation_size(c.oid) as bytes
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = $1 and c.relkind = 'r' order by 2 desc`,
      [LOC],
    );
    const total = rows.reduce((s, r) => s + Number(r.bytes), 0);
    emit({
      bench: 'bytes_per_run',
      runs,
      stepsPerRun: 3,
      bytesPerRun: Math.round(total / runs),
      byTable: Object.fromEntries(rows.map((r) => [r.relname, Math.round(Number(r.bytes) / runs)])),
    });
  } finally {
    await b.close();
  }
}

async function main(): Promise<void> {
  emit({
    bench: 'start',
    prefill: PREFILL,
    chains: CHAINS,
    fanouts: FANOUTS,
    concurrency: CONCURRENCY,
  });
  await bytesPerRun();

  const workflows = [
    ...CHAINS.map((n) => chainWorkflow(`chain-${n}`, n)),
    chainWorkflow('three', 3),
    defineWorkflow('filler').step(
      'only',
      { retry: { maxAttempts: 1 } },
      (input: { fail?: boolean } | null) => {
        if (input?.fail) throw new Error('filler: this run fails on purpose');
        return null;
      },
    ),
  ];
  const b = await open('growth', workflows);
  try {
    const t0 = performance.now();
    await runMany(b, 'filler', 1_000, (i) => ({ fail: i % 10 === 0 }));
    const idleBefore = { stepRuns: 1_000, ...(await idleClaimBuffers(b, workflows)) };
    const stepRuns = await doubleUntil(b.client, PREFILL);
    const runs = Number(
      (await b.client.query<{ n: string }>(`select count(*) as n from ${LOC}.runs`)).rows[0]!.n,
    );
    emit({ bench: 'prefill', stepRuns, runs, ms: Math.round(performance.now() - t0) });

    // Filtered runs list at this size, through the store (what GET /runs sends).
    const shapes: Array<[string, { statuses?: RunStatus[]; workflowId?: string }]> = [
      ['status=failed', { statuses: ['failed'] }],
      ['status=failed,workflow=filler', { statuses: ['failed'], workflowId: 'filler' }],
      ['status=succeeded', { statuses: ['succeeded'] }],
      ['unfiltered', {}],
    ];
    for (const [shape, filter] of shapes) {
      const ms: number[] = [];
      for (let i = 0; i < 12; i++) {
        const s = performance.now();
        await b.stores.runs.listRuns({ environmentId: b.environmentId, ...filter, limit: 50 });
        ms.push(performance.now() - s);
      }
      emit({ bench: 'list_page', shape, runs, pageSize: 50, medianMs: median(ms.slice(6)) });
    }

    emit({
      bench: 'idle_claim',
      stepRuns,
      ...(await idleClaimBuffers(b, workflows)),
      before: idleBefore,
    });

    for (const n of CHAINS) {
      const { wallMs } = await runMany(b, `chain-${n}`, 1, () => null);
      emit({ bench: 'chain', steps: n, prefilledStepRuns: stepRuns, msPerStep: wallMs / n });
    }
    for (const n of FANOUTS) {
      const { wallMs } = await runMany(b, 'three', n, () => null);
      emit({
        bench: 'fanout',
        runs: n,
        prefilledStepRuns: stepRuns,
        stepsPerSec: (n * 3) / (wallMs / 1000),
      });
    }
  } finally {
    await b.close();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
