/**
 * A parallel of 1,000 branches (issue: control flow). One run fans a one-step body out over 1,000
 * items with no concurrency limit; a `join` step runs after all of them. Prints one JSON line per
 * backend: branch steps per second (1,000 / time from the parallel parking to its last branch
 * committing) and the time to join (run created → join step started), medians over `--reps`.
 *
 *   node --import tsx bench/parallel.ts [--branches 1000] [--reps 3] [--concurrency 50] [--backends postgres,pglite]
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Engine } from '../src/engine/engine.js';
import { silentLogger } from '../src/engine/logger.js';
import { ensureEnvironment } from '../src/engine/tenant.js';
import { defineWorkflow } from '../src/index.js';
import { createStores, openExecutor } from '../src/store/stores.js';

const { values } = parseArgs({
  options: {
    branches: { type: 'string', default: '1000' },
    reps: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '50' },
    backends: { type: 'string', default: 'postgres,pglite' },
  },
});
const BRANCHES = Number(values.branches);
const REPS = Number(values.reps);
const CONCURRENCY = Number(values.concurrency);
const ADMIN = process.env.WEFT_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const wf = defineWorkflow<number>('fan-1000')
  .parallel('fan', {
    items: (n) => Array.from({ length: n }, (_, i) => i),
    body: (b) => b.step('branch', (i) => i),
  })
  .step('join', { after: 'fan' }, (xs) => xs.length);

for (const backend of values.backends.split(',')) {
  let url = 'pglite:memory';
  const dbName = `weft_bench_parallel_${process.pid}`;
  if (backend === 'postgres') {
    const admin = new pg.Client({ connectionString: ADMIN });
    await admin.connect();
    await admin.query(`drop database if exists ${dbName} with (force)`);
    await admin.query(`create database ${dbName}`);
    await admin.end();
    const u = new URL(ADMIN);
    u.pathname = `/${dbName}`;
    url = u.toString();
  }
  const stores = createStores({ control: await openExecutor(url, { poolSize: 20 }) });
  await stores.migrate();
  const environmentId = await ensureEnvironment(stores.control);
  const engine = await Engine.start({
    stores,
    environmentId,
    workflows: [wf],
    logger: silentLogger(),
    worker: { concurrency: CONCURRENCY, pollIntervalMs: 100 },
  });
  const stepsPerSecond: number[] = [];
  const timeToJoin: number[] = [];
  const total: number[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    const t0 = performance.now();
    const { run } = await engine.trigger('fan-1000', BRANCHES);
    const done = await engine.waitForRun(run.id, { timeoutMs: 600_000 });
    total.push(performance.now() - t0);
    if (done.status !== 'succeeded') throw new Error(`run ${run.id} ended ${done.status}`);
    const steps = (await stores.runs.listStepRuns(environmentId, run.id))!;
    const fan = steps.find((s) => s.stepKey === 'fan')!;
    const join = steps.find((s) => s.stepKey === 'join')!;
    const branches = steps.filter((s) => s.stepId === 'branch');
    const firstStart = Math.min(...branches.map((s) => Date.parse(s.createdAt)));
    const lastEnd = Math.max(...branches.map((s) => Date.parse(s.finishedAt!)));
    stepsPerSecond.push(branches.length / ((lastEnd - firstStart) / 1000));
    timeToJoin.push(Date.parse(join.startedAt!) - Date.parse(done.createdAt));
    if (branches.length !== BRANCHES || fan.status !== 'succeeded')
      throw new Error('unexpected shape');
  }
  console.log(
    JSON.stringify({
      bench: 'parallel',
      system: 'weft',
      backend,
      branches: BRANCHES,
      concurrency: CONCURRENCY,
      reps: REPS,
      stepsPerSecond: Math.round(median(stepsPerSecond)),
      timeToJoinMs: Math.round(median(timeToJoin)),
      totalMs: Math.round(median(total)),
      samples: {
        stepsPerSecond: stepsPerSecond.map(Math.round),
        timeToJoinMs: timeToJoin.map(Math.round),
      },
    }),
  );
  await engine.stop();
  await stores.close();
  if (backend === 'postgres') {
    const admin = new pg.Client({ connectionString: ADMIN });
    await admin.connect();
    await admin.query(`drop database if exists ${dbName} with (force)`);
    await admin.end();
  }
}
