/**
 * graphile-worker 0.16.6 under test. It has no workflows, so a chained step is a job whose task
 * adds the next job (the usual way to chain it): per step a `get_job`, the task's `add_job` and a
 * `complete_job`, each its own transaction. A run ends when the job of its last step completes
 * (the `job:complete` event, emitted after `complete_job` returns).
 *
 * Settings are the library's defaults (pool 10, poll 2 s with LISTEN/NOTIFY) except a silent
 * logger and NO_LOG_SUCCESS (what a production deployment sets), and the concurrency, which the
 * fan-out sweeps. 0.16.6 has no local queue or batched job completion (those came later), so
 * there is no "batched" mode to measure here.
 */
import type { Runner, TaskList } from 'graphile-worker';
import pg from 'pg';
import { createDatabase } from '../lib/postgres.js';
import type { BenchName, Session, SystemTarget, Timed, Variant } from './system.js';

const POOL_SIZE = 10;
const POLL_INTERVAL_MS = 2000;
const CHAIN_CONCURRENCY = 1;

interface StepPayload {
  /** Which run (a chain is a run; the fan-out has many). */
  run: number;
  /** Step index in the run, from 0. */
  i: number;
  /** Steps in the run. */
  n: number;
}

export const graphileTargets: SystemTarget[] = [
  {
    id: 'graphile-pg',
    system: 'graphile-worker',
    backend: 'postgres',
    packages: ['graphile-worker'],
    durability:
      'PostgreSQL: per step a job row taken (get_job), the next job inserted (add_job) and the job deleted (complete_job), three commits',
    variants(bench: BenchName, options: { concurrency: number[] }): Variant[] {
      if (bench !== 'fanout')
        return [{ name: `c${CHAIN_CONCURRENCY}`, settings: { concurrency: CHAIN_CONCURRENCY } }];
      return options.concurrency.map((c) => ({ name: `c${c}`, settings: { concurrency: c } }));
    },
    open: () => openGraphile(),
  },
  {
    id: 'graphile-pglite',
    system: 'graphile-worker',
    backend: 'pglite',
    unavailable:
      'graphile-worker connects through `pg` over the PostgreSQL wire protocol (a pool plus a dedicated LISTEN connection); PGlite is an in-process WASM database with no server socket. A socket bridge (@electric-sql/pglite-socket) is not a dependency of this repo and serves one connection at a time.',
    variants: () => [],
    open: () => Promise.reject(new Error('graphile-worker cannot run on PGlite')),
  },
];

async function openGraphile(): Promise<Session> {
  // Loaded here, not at the top: only the process that measures graphile-worker imports it.
  const { Logger, run } = await import('graphile-worker');
  process.env.NO_LOG_SUCCESS = '1';
  const db = await createDatabase('graphile');
  // Our own pool (graphile-worker's default size), kept across restarts and ended before the
  // database is dropped.
  const pool = new pg.Pool({ connectionString: db.url, max: POOL_SIZE });
  pool.on('error', () => {});
  let runner: Runner | undefined;
  let concurrency = -1;
  /** Runs still to end in the current measurement, and who to tell when none are left. */
  let open = new Set<number>();
  let onAllDone: (() => void) | undefined;
  let failure: Error | undefined;
  let tokens = 0;

  const step = async (
    payload: unknown,
    helpers: Parameters<NonNullable<TaskList[string]>>[1],
  ): Promise<void> => {
    const p = payload as StepPayload;
    if (p.i + 1 < p.n)
      await helpers.addJob(helpers.job.task_identifier, { run: p.run, i: p.i + 1, n: p.n });
  };
  /** Latency bench: when each token's job began, and who waits for its completion. */
  const started = new Map<string, number>();
  const waiters = new Map<string, () => void>();
  const first = async (payload: unknown): Promise<void> => {
    const { token } = payload as { token: string };
    if (!started.has(token)) started.set(token, performance.now());
  };
  const taskList: TaskList = { chain: step, fan: step, first };

  const start = async (wanted: number): Promise<void> => {
    if (runner && concurrency === wanted) return;
    await runner?.stop();
    runner = await run({
      pgPool: pool,
      concurrency: wanted,
      pollInterval: POLL_INTERVAL_MS,
      noHandleSignals: true,
      taskList,
      logger: new Logger(() => () => {}),
    });
    runner.events.on('job:complete', ({ job, error }) => {
      if (error) failure ??= error instanceof Error ? error : new Error(String(error));
      if (job.task_identifier === 'first') {
        const { token } = job.payload as { token: string };
        waiters.get(token)?.();
        waiters.delete(token);
        return;
      }
      const p = job.payload as StepPayload;
      if (p.i === p.n - 1 && open.delete(p.run) && open.size === 0) onAllDone?.();
      else if (error) onAllDone?.();
    });
    concurrency = wanted;
  };

  const runAll = async (task: 'chain' | 'fan', runs: number, n: number): Promise<Timed> => {
    const r = runner!;
    open = new Set(Array.from({ length: runs }, (_, k) => k));
    failure = undefined;
    const done = new Promise<void>((resolve) => (onAllDone = resolve));
    const t0 = performance.now();
    await Promise.all([...open].map((k) => r.addJob(task, { run: k, i: 0, n })));
    const triggeredMs = performance.now() - t0;
    await done;
    const wallMs = performance.now() - t0;
    onAllDone = undefined;
    const err = failure as Error | undefined;
    return {
      wallMs,
      triggeredMs,
      steps: runs * n,
      verify: async () => {
        if (err) throw new Error(`graphile-worker: a job failed: ${err.message}`);
      },
    };
  };

  return {
    database: db.name,
    settings: { poolSize: POOL_SIZE, pollIntervalMs: POLL_INTERVAL_MS, NO_LOG_SUCCESS: true },
    async configure(_bench, variant) {
      await start(Number(variant.settings.concurrency));
    },
    chain: (steps) => runAll('chain', 1, steps),
    fanout: (runs, stepsPerRun) => runAll('fan', runs, stepsPerRun),
    async latency(triggers) {
      const r = runner!;
      failure = undefined;
      const latenciesMs: number[] = [];
      const t0 = performance.now();
      for (let i = 0; i < triggers; i++) {
        const token = `t${tokens++}`;
        const completed = new Promise<void>((resolve) => waiters.set(token, resolve));
        const start = performance.now();
        await r.addJob('first', { token });
        await completed;
        const at = started.get(token);
        started.delete(token);
        if (failure || at === undefined)
          throw new Error(
            `graphile-worker: the job of ${token} ${failure ? `failed: ${String(failure)}` : 'never started'}`,
          );
        latenciesMs.push(at - start);
      }
      return { wallMs: performance.now() - t0, steps: triggers, latenciesMs };
    },
    async close() {
      await runner?.stop();
      await pool.end();
      await db.drop();
    },
  };
}
