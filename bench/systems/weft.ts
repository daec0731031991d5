/**
 * Weft under test, on PostgreSQL or PGlite: one engine in this process (worker + triggers), the
 * public SDK only (`defineWorkflow`, `Engine`, `createStores`, `openExecutor`).
 *
 * Run end is learned from the run-ended NOTIFY (`CHANNELS.runEnded`, src/store/channels.ts) that
 * the store sends right after the run's final transaction committed, so the timer stops when
 * the end is committed and visible, with no query of
 * its own. `engine.waitForRun` would do the same plus one `getRun` per run before and after the
 * notification: harmless for one chain, but 2,000 extra queries on the worker's pool in a
 * 1,000-run fan-out. Every run is checked with `getRun` after the timer stops.
 */
import type { Executor, Queryable } from '../../src/store/executor.js';
import {
  createStores,
  defineWorkflow,
  Engine,
  openExecutor,
  type Stores,
} from '../../src/index.js';
import { silentLogger } from '../../src/engine/logger.js';
import { ensureEnvironment } from '../../src/engine/tenant.js';
import {
  adminQuery,
  connectHarnessClient,
  createDatabase,
  installStatementTimings,
  type BenchDatabase,
} from '../lib/postgres.js';
import { RunEnds } from '../lib/run-ends.js';
import { sig } from '../lib/stats.js';
import type {
  Backend,
  BenchName,
  Diagnose,
  Diagnostics,
  Session,
  Sizes,
  SystemTarget,
  Timed,
  Variant,
} from './system.js';
import { chainWorkflow } from '../lib/chain-workflow.js';

const WORKER_DEFAULTS = { pollIntervalMs: 1000, leaseMs: 30_000 } as const;
/** Weft's default worker concurrency; the chain (one run) does not depend on it. */
const CHAIN_CONCURRENCY = 10;
const POOL_SIZE = 10;

export function weftTarget(backend: Backend): SystemTarget {
  return {
    id: backend === 'postgres' ? 'weft-pg' : 'weft-pglite',
    system: 'weft',
    backend,
    durability:
      backend === 'postgres'
        ? "PostgreSQL: every step's result committed (step run, attempt, output, events) before its successors run"
        : 'PGlite in memory (the same SQL; this bench does not give it a data directory)',
    variants(bench: BenchName, options: { concurrency: number[] }): Variant[] {
      if (bench !== 'fanout')
        return [{ name: `c${CHAIN_CONCURRENCY}`, settings: { concurrency: CHAIN_CONCURRENCY } }];
      return options.concurrency.map((c) => ({ name: `c${c}`, settings: { concurrency: c } }));
    },
    open: (sizes, options) => openWeft(backend, sizes, options.diagnose),
  };
}

async function openWeft(backend: Backend, sizes: Sizes, diagnose: Diagnose): Promise<Session> {
  let db: BenchDatabase | undefined;
  let raw: Executor;
  let statementTimings: ReturnType<typeof installStatementTimings> | undefined;
  if (backend === 'postgres') {
    db = await createDatabase('weft');
    // Per-function call counts and times (pg_stat_user_functions: a clock read per call), and
    // for `statements` every statement's duration, nested ones included, from auto_explain sent
    // to the client as NOTICEs (nothing reaches the server log). That one inflates every figure
    // (a plan is printed per statement): use it for shares, not for absolute times.
    const settings = diagnose === 'off' ? [] : [`track_functions = 'pl'`];
    if (diagnose === 'statements') {
      statementTimings = installStatementTimings();
      settings.push(
        `session_preload_libraries = 'auto_explain'`,
        `auto_explain.log_min_duration = 0`,
        `auto_explain.log_nested_statements = on`,
        `auto_explain.log_format = 'json'`,
        `auto_explain.log_level = 'notice'`,
      );
    }
    for (const setting of settings) await adminQuery(`alter database ${db.name} set ${setting}`);
    raw = await openExecutor(db.url, { poolSize: POOL_SIZE, applicationName: 'weft' });
  } else {
    raw = await openExecutor('pglite:memory');
  }
  const counted = countingExecutor(raw);
  const stores = createStores({ control: counted.executor });
  await stores.migrate();
  const environmentId = await ensureEnvironment(stores.control);
  const chainId = `chain-${sizes.chainSteps}`;
  const fanoutId = `fanout-${sizes.fanoutSteps}`;
  const firstId = 'first-step';
  /** Latency bench: when the step of each run began (performance.now(), by run id). */
  const started = new Map<string, number>();
  const workflows = [
    chainWorkflow(chainId, sizes.chainSteps),
    chainWorkflow(fanoutId, sizes.fanoutSteps),
    defineWorkflow(firstId).step('s0', (_input: unknown, ctx) => {
      if (!started.has(ctx.runId)) started.set(ctx.runId, performance.now());
      return null;
    }),
  ];
  const tracker = await RunEnds.listen(stores);
  const endedOf = async (left: string[]) => {
    const runs = await Promise.all(left.map((id) => stores.runs.getRun(environmentId, id)));
    return left.filter((_, i) => runs[i]?.finishedAt != null);
  };

  let engine: Engine | undefined;
  let concurrency = -1;
  /** Every step run in this session, warm-ups included (what the diagnostics divide by). */
  let stepsDone = 0;
  const ensureEngine = async (wanted: number): Promise<Engine> => {
    if (engine && concurrency === wanted) return engine;
    await engine?.stop();
    engine = await Engine.start({
      stores,
      environmentId,
      workflows,
      worker: { concurrency: wanted, ...WORKER_DEFAULTS },
      logger: silentLogger(),
    });
    concurrency = wanted;
    return engine;
  };

  const runAll = async (workflowId: string, runs: number, steps: number): Promise<Timed> => {
    const e = engine!;
    const t0 = performance.now();
    const triggered = await Promise.all(
      Array.from({ length: runs }, () => e.trigger(workflowId, null)),
    );
    const triggeredMs = performance.now() - t0;
    const ids = triggered.map((t) => t.run.id);
    await tracker.waitFor(ids, endedOf);
    const wallMs = performance.now() - t0;
    stepsDone += steps;
    return {
      wallMs,
      steps,
      triggeredMs,
      verify: () => verifySucceeded(stores, environmentId, ids),
    };
  };

  return {
    database: db?.name,
    settings: {
      poolSize: backend === 'postgres' ? POOL_SIZE : 1,
      saveDataclips: true,
      ...WORKER_DEFAULTS,
    },
    executorCounts: () => ({ ...counted.counts }),
    async configure(_bench, variant) {
      await ensureEngine(Number(variant.settings.concurrency));
    },
    async chain(steps) {
      if (steps !== sizes.chainSteps)
        throw new Error(`weft: chain of ${steps} steps requested, ${sizes.chainSteps} registered`);
      return runAll(chainId, 1, steps);
    },
    async fanout(runs, stepsPerRun) {
      if (stepsPerRun !== sizes.fanoutSteps)
        throw new Error(
          `weft: fan-out of ${stepsPerRun}-step runs requested, ${sizes.fanoutSteps} registered`,
        );
      return runAll(fanoutId, runs, runs * stepsPerRun);
    },
    async latency(triggers) {
      const e = engine!;
      const latenciesMs: number[] = [];
      const ids: string[] = [];
      const t0 = performance.now();
      for (let i = 0; i < triggers; i++) {
        const start = performance.now();
        const { run } = await e.trigger(firstId, null);
        await tracker.waitFor([run.id], endedOf);
        const at = started.get(run.id);
        started.delete(run.id);
        if (at === undefined) throw new Error(`weft: the step of run ${run.id} never started`);
        latenciesMs.push(at - start);
        ids.push(run.id);
      }
      stepsDone += triggers;
      return {
        wallMs: performance.now() - t0,
        steps: triggers,
        latenciesMs,
        verify: () => verifySucceeded(stores, environmentId, ids),
      };
    },
    async close() {
      await engine?.stop();
      await tracker.close();
      await stores.close();
      let diagnostics: Diagnostics | undefined;
      if (db && diagnose !== 'off') {
        // Backends flush their statistics when they exit; give the pool's a moment.
        await new Promise((resolve) => setTimeout(resolve, 500));
        diagnostics = await readServerStats(db.url, stepsDone);
        diagnostics.statements = (statementTimings?.read() ?? []).slice(0, 40).map((t) => ({
          statement: t.statement,
          callsPerStep: sig(t.calls / stepsDone, 3),
          msPerStep: sig(t.totalMs / stepsDone, 3),
          msPerCall: sig(t.totalMs / t.calls, 3),
        }));
      }
      await db?.drop();
      return diagnostics;
    },
  };
}

/**
 * Where the server's time and writes go, per step, over the whole session: each PL/pgSQL
 * function's calls and self time (time in its own statements, not in functions it calls), and
 * the rows each table gained, changed (HOT or not) and lost.
 */
async function readServerStats(url: string, steps: number): Promise<Diagnostics> {
  const client = await connectHarnessClient(url, 'stats');
  try {
    const fns = await client.query<{ name: string; calls: string; total: number; self: number }>(
      `select schemaname || '.' || funcname as name, calls::text, total_time as total, self_time as self
         from pg_stat_user_functions order by self_time desc`,
    );
    const tables = await client.query<{
      name: string;
      ins: string;
      upd: string;
      hot: string;
      del: string;
    }>(
      `select schemaname || '.' || relname as name, n_tup_ins::text as ins, n_tup_upd::text as upd,
              n_tup_hot_upd::text as hot, n_tup_del::text as del
         from pg_stat_user_tables
        where n_tup_ins + n_tup_upd + n_tup_del > 0 and relname <> 'weft_bench_bare_commit'
        order by n_tup_ins + n_tup_upd desc`,
    );
    const per = (n: number) => sig(n / steps, 3);
    return {
      steps,
      functions: fns.rows.map((f) => ({
        name: f.name,
        callsPerStep: per(Number(f.calls)),
        selfMsPerStep: per(f.self),
        totalMsPerStep: per(f.total),
      })),
      tables: tables.rows.map((t) => ({
        name: t.name,
        insertsPerStep: per(Number(t.ins)),
        updatesPerStep: per(Number(t.upd)),
        hotUpdatesPerStep: per(Number(t.hot)),
        deletesPerStep: per(Number(t.del)),
      })),
    };
  } finally {
    await client.end().catch(() => {});
  }
}

async function verifySucceeded(
  stores: Stores,
  environmentId: string,
  ids: string[],
): Promise<void> {
  const runs = await Promise.all(ids.map((id) => stores.runs.getRun(environmentId, id)));
  const bad = runs.filter((r) => r?.status !== 'succeeded');
  if (bad.length > 0) {
    throw new Error(
      `weft: ${bad.length} of ${ids.length} runs did not succeed (first: ${bad[0]?.id ?? 'missing'} ${bad[0]?.status ?? ''})`,
    );
  }
}

/** Counts what Weft asks of its executor: statements, and transactions (a statement outside one is its own). */
function countingExecutor(inner: Executor): {
  executor: Executor;
  counts: { roundTrips: number; transactions: number };
} {
  const counts = { roundTrips: 0, transactions: 0 };
  const wrapTx = (tx: Queryable): Queryable => ({
    query: (sql, params) => {
      counts.roundTrips++;
      return tx.query(sql, params);
    },
    exec: (sql) => {
      counts.roundTrips++;
      return tx.exec(sql);
    },
  });
  const executor: Executor = {
    kind: inner.kind,
    query: (sql, params) => {
      counts.roundTrips++;
      counts.transactions++;
      return inner.query(sql, params);
    },
    exec: (sql) => {
      counts.roundTrips++;
      counts.transactions++;
      return inner.exec(sql);
    },
    transaction: (fn) => {
      counts.roundTrips += 2; // begin, commit
      counts.transactions++;
      return inner.transaction((tx) => fn(wrapTx(tx)));
    },
    listen: (channel, onNotify) => inner.listen(channel, onNotify),
    close: () => inner.close(),
  };
  return { executor, counts };
}
