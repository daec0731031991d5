/**
 * Crash recovery with real processes on PostgreSQL: worker processes are killed (`kill -9`) at
 * random moments while they run steps, or lose their database sessions (`pg_terminate_backend`),
 * and are restarted; the test process triggers, reaps and checks the rows.
 *
 * What must hold at the end (docs/semantics.md, "Steps"): every run succeeds; each step run has
 * exactly one `succeeded` attempt and exactly one `output` dataclip, and it is that attempt's;
 * every attempt a crash interrupted is `lost` — and no other attempt is (a live worker keeps its
 * leases); attempts = succeeded + lost.
 *
 * Catches: a reaper that requeues without marking the attempt `lost` (it stays `running`), a
 * commit that is not atomic or not fenced (a second output, or an output from a lost attempt), a
 * reaper that takes live leases (lost attempts of workers never killed), a step that is never
 * requeued (the run does not finish), a worker that dies when its connections are cut.
 *
 * The kill moments are random; a failure prints their seed, and WEFT_CRASH_SEED=<seed> replays
 * them (step durations stay random).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import type { Engine } from '../src/engine/engine.js';
import { TERMINAL_RUN_STATUSES } from '../src/store/rows.js';
import { openTestDatabase, type TestDatabase } from './support/databases.js';
import { startTestEngine } from './support/engine.js';
import {
  CrashWorker,
  createStartsTable,
  eventually,
  killCrashWorkers,
  listStarts,
  seededRandom,
  sleep,
  terminateBackends,
  waitForBackendsGone,
} from './support/crash-process.js';
import type { ChainOutput } from './support/crash-workflows.js';

interface AttemptRow {
  step_run_id: string;
  run_id: string;
  step_key: string;
  number: number;
  status: string;
  worker_id: string;
  output: ChainOutput | null;
}

function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) groups.set(key(item), [...(groups.get(key(item)) ?? []), item]);
  return groups;
}

describe('worker processes that crash mid-step (PostgreSQL, real processes)', () => {
  let db: TestDatabase;
  let engine: Engine;
  let loc: string;
  beforeAll(async () => {
    db = await openTestDatabase('postgres');
    loc = db.stores.schemas.locations[0]!;
    await createStartsTable(db.executor);
    // The test process triggers, observes and reaps; the workers are child processes.
    engine = await startTestEngine(db.stores, [], { worker: false, reaperIntervalMs: 100 });
  });
  afterEach(async () => {
    await killCrashWorkers();
  });
  afterAll(async () => {
    await engine?.stop();
    await db?.close();
  });

  const attemptsOf = async (runIds: string[]) =>
    (
      await db.executor.query<AttemptRow>(
        `select a.step_run_id, a.run_id, s.step_key, a.number, a.status, a.worker_id, d.body as output
           from ${loc}.attempts a
           join ${loc}.step_runs s on s.id = a.step_run_id
           left join ${loc}.dataclips d on d.id = s.output_dataclip_id and a.status = 'succeeded'
          where a.run_id = any($1::text[])
          order by a.step_run_id, a.number`,
        [runIds],
      )
    ).rows;
  const runningAttemptsOf = async (workerId: string) =>
    (
      await db.executor.query<{ step_run_id: string; number: number }>(
        `select step_run_id, number from ${loc}.attempts where worker_id = $1 and status = 'running'`,
        [workerId],
      )
    ).rows;
  const unfinishedCount = async (runIds: string[]) =>
    (
      await db.executor.query<{ n: number }>(
        `select count(*)::int as n from ${loc}.runs where id = any($1::text[]) and status <> all($2::text[])`,
        [runIds, TERMINAL_RUN_STATUSES],
      )
    ).rows[0]!.n;

  /** The invariants every run must satisfy after any mix of crashes. */
  async function expectExactlyOnceOutputs(
    runIds: string[],
    inputs: number[],
  ): Promise<AttemptRow[]> {
    for (const [i, runId] of runIds.entries()) {
      const done = await engine.waitForRun(runId, { timeoutMs: 60_000 });
      expect([done.status, done.error]).toEqual(['succeeded', null]);
      const final = await engine.stores.runs.getDataclip(
        engine.environmentId,
        done.finalDataclipId!,
      );
      expect(final?.body).toMatchObject({ run: runId, step: 'c', value: (inputs[i]! + 1) * 2 - 3 });
    }

    const attempts = await attemptsOf(runIds);
    // Every step run: attempts 1..n, the last one succeeded, every earlier one lost.
    const byStepRun = groupBy(attempts, (a) => a.step_run_id);
    expect(byStepRun.size).toBe(runIds.length * 3);
    for (const list of byStepRun.values()) {
      expect(list.map((a) => a.number)).toEqual(list.map((_, i) => i + 1));
      expect(list.map((a) => a.status)).toEqual([...list.slice(1).map(() => 'lost'), 'succeeded']);
      // The committed output is the succeeded attempt's own.
      const winner = list[list.length - 1]!;
      expect(winner.output).toMatchObject({
        run: winner.run_id,
        step: winner.step_key,
        attempt: winner.number,
        worker: winner.worker_id,
      });
    }
    const statuses = groupBy(attempts, (a) => a.status);
    expect([...statuses.keys()].filter((s) => s !== 'succeeded' && s !== 'lost')).toEqual([]);
    expect(statuses.get('succeeded')!.length).toBe(runIds.length * 3);

    // Exactly one output dataclip was ever written per step run: a late or repeated commit would
    // leave a second one even if the step run points at the right one.
    const outputs = await db.executor.query<{ run: string; step: string; n: number }>(
      `select body->>'run' as run, body->>'step' as step, count(*)::int as n
         from ${loc}.dataclips where run_id = any($1::text[]) and kind = 'output' group by 1, 2`,
      [runIds],
    );
    expect(outputs.rows.length).toBe(runIds.length * 3);
    expect(outputs.rows.filter((r) => r.n !== 1)).toEqual([]);

    // The step code started at most once per attempt, and every committed attempt really ran.
    const starts = await listStarts(db.executor, runIds);
    const startKeys = starts.map((s) => `${s.run_id}/${s.step_key}/${s.attempt}`);
    expect(new Set(startKeys).size).toBe(startKeys.length);
    const attemptKeys = new Set(attempts.map((a) => `${a.run_id}/${a.step_key}/${a.number}`));
    expect(startKeys.filter((k) => !attemptKeys.has(k))).toEqual([]);
    const startSet = new Set(startKeys);
    expect(
      attempts.filter(
        (a) => a.status === 'succeeded' && !startSet.has(`${a.run_id}/${a.step_key}/${a.number}`),
      ),
    ).toEqual([]);
    return attempts;
  }

  it('30 runs × 3 chained steps survive repeated kill -9 of their worker: one output per step run, every interrupted attempt lost', async () => {
    const seed = Number(process.env.WEFT_CRASH_SEED ?? Date.now() % 2 ** 31);
    const random = seededRandom(seed);
    onTestFailed(() =>
      console.error(`kill schedule seed ${seed}: WEFT_CRASH_SEED=${seed} replays it`),
    );
    const base = {
      databaseUrl: db.url!,
      environmentId: engine.environmentId,
      leaseMs: 1500,
      heartbeatMs: 250,
      concurrency: 4,
      stepMs: [150, 450] as [number, number],
    };
    let worker = await CrashWorker.start({ ...base, workerId: 'mid-1' });
    const inputs = Array.from({ length: 30 }, (_, i) => i);
    const runIds: string[] = [];
    for (const n of inputs) runIds.push((await engine.trigger('crash-chain', { n })).run.id);

    const killed: string[] = [];
    const interrupted: string[] = [];
    const KILLS = 8;
    while (killed.length < KILLS && (await unfinishedCount(runIds)) > 8) {
      // Kill only while the worker is running steps: once it holds one, at a random moment.
      await eventually('the worker to run a step', async () =>
        (await runningAttemptsOf(worker.workerId)).length > 0 ? true : undefined,
      );
      await sleep(random() * 600);
      await worker.signal('SIGKILL');
      // A statement the process sent just before dying still runs to its end on the server:
      // only once its sessions are gone is what it left behind final.
      await waitForBackendsGone(db.executor, worker.workerId);
      for (const a of await runningAttemptsOf(worker.workerId))
        interrupted.push(`${a.step_run_id}#${a.number}`);
      killed.push(worker.workerId);
      worker = await CrashWorker.start({ ...base, workerId: `mid-${killed.length + 1}` });
    }

    const context = `seed ${seed}, killed ${killed.length} workers, ${interrupted.length} attempts interrupted`;
    expect(killed.length, context).toBeGreaterThanOrEqual(5);
    expect(interrupted.length, context).toBeGreaterThanOrEqual(killed.length);

    const attempts = await expectExactlyOnceOutputs(runIds, inputs);
    // Lost attempts are exactly the attempts the kills interrupted: each crash mid-step is a
    // persisted `lost` attempt, and no attempt of a live worker was reaped.
    const lost = attempts
      .filter((a) => a.status === 'lost')
      .map((a) => `${a.step_run_id}#${a.number}`);
    expect(lost.sort(), context).toEqual([...interrupted].sort());
    expect(attempts.length, context).toBe(runIds.length * 3 + interrupted.length);
  });

  it('runs complete when the worker loses its database sessions mid-run (pg_terminate_backend)', async () => {
    const worker = await CrashWorker.start({
      databaseUrl: db.url!,
      environmentId: engine.environmentId,
      workerId: 'cut-1',
      leaseMs: 1500,
      heartbeatMs: 250,
      concurrency: 4,
      stepMs: [100, 300],
    });
    const inputs = Array.from({ length: 16 }, (_, i) => 100 + i);
    const runIds: string[] = [];
    for (const n of inputs) runIds.push((await engine.trigger('crash-chain', { n })).run.id);

    // Cut the sessions while they run statements (claims, commits, lease renewals), not only
    // while they sit idle in the pool: poll for active ones and terminate them, for a few seconds.
    let terminated = 0;
    const until = Date.now() + 3000;
    while (Date.now() < until && worker.alive && (await unfinishedCount(runIds)) > 2) {
      terminated += await terminateBackends(db.executor, worker.workerId, { activeOnly: true });
    }
    expect(terminated).toBeGreaterThan(0);
    expect(
      worker.alive,
      `the worker process survived losing its sessions: ${worker.describe()}`,
    ).toBe(true);

    await expectExactlyOnceOutputs(runIds, inputs);
    // The same process finished the work.
    expect(worker.alive, worker.describe()).toBe(true);
    // …and the cuts hit statements in flight: the worker saw some of them fail.
    const failures = worker.lines
      .map((l) => (JSON.parse(l) as { msg?: string }).msg ?? '')
      .filter((m) => / failed/.test(m));
    expect(failures.length).toBeGreaterThan(0);
  });
});
