/**
 * The fan-out split into its two phases (issue 8, session 8): N triggers at once with no worker
 * running, then a worker started on the runs they made, then both together (the bench's fan-out).
 * For each: wall time, the client's CPU (this process) and the server's (the database's backends,
 * /proc/<pid>/schedstat) per unit — per trigger for the first, per step for the others. Prints one
 * JSON line per phase and repetition, then the medians.
 *
 *   node --import tsx bench/fanout-phases.ts [--runs 1000] [--steps 3] [--reps 3] [--concurrency 50]
 *
 * PostgreSQL only (WEFT_BENCH_PG_URL, default the local 5432); one fresh database, dropped after.
 */
import { parseArgs } from 'node:util';
import { Engine } from '../src/engine/engine.js';
import { silentLogger } from '../src/engine/logger.js';
import { CHANNELS } from '../src/store/channels.js';
import { ServerProbe, serverCpuMs } from './lib/postgres.js';
import { openWeftDatabase } from './lib/weft-database.js';
import { chainWorkflow } from './lib/chain-workflow.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '1000' },
    steps: { type: 'string', default: '3' },
    reps: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '50' },
  },
});
const RUNS = Number(values.runs);
const STEPS = Number(values.steps);
const REPS = Number(values.reps);
const CONCURRENCY = Number(values.concurrency);

const { db, stores, environmentId } = await openWeftDatabase('phases');
const workflows = [chainWorkflow('fan', STEPS)];

// run ends, from the NOTIFY the store sends after each run's final commit (as bench/systems/weft.ts)
const ended = new Set<string>();
let wake: (() => void) | undefined;
const unlisten = await stores.runOpsDb.listen(CHANNELS.runEnded, (id) => {
  ended.add(id);
  wake?.();
});
async function waitForEnds(ids: string[]): Promise<void> {
  while (!ids.every((id) => ended.has(id))) {
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, 500);
    });
  }
}

const probe = await ServerProbe.open(db.name);
const triggering = await Engine.start({
  stores,
  environmentId,
  workflows,
  worker: false,
  logger: silentLogger(),
});
const startWorker = () =>
  Engine.start({
    stores,
    environmentId,
    workflows,
    worker: { concurrency: CONCURRENCY, pollIntervalMs: 1000, leaseMs: 30_000 },
    logger: silentLogger(),
  });
const trigger = async (n: number) =>
  (await Promise.all(Array.from({ length: n }, () => triggering.trigger('fan', null)))).map(
    (t) => t.run.id,
  );

const results: Record<
  string,
  Array<{ perSecond: number; clientMs: number; serverMs: number }>
> = {};
async function measure<T>(phase: string, units: number, rep: number, f: () => Promise<T>) {
  const cpu0 = process.cpuUsage();
  const s0 = await probe.snapshot();
  const t0 = performance.now();
  const value = await f();
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const server = serverCpuMs(s0, await probe.snapshot()) ?? NaN;
  const row = {
    perSecond: Math.round((units / wallMs) * 1000),
    clientMs: Number(((cpu.user + cpu.system) / 1000 / units).toFixed(3)),
    serverMs: Number((server / units).toFixed(3)),
  };
  (results[phase] ??= []).push(row);
  console.log(
    JSON.stringify({ type: 'phase', phase, rep, units, wallMs: Math.round(wallMs), ...row }),
  );
  return value;
}

// warm-up: ten passes of a tenth, worker running (the bench's fan-out warm-up)
let worker = await startWorker();
for (let i = 0; i < 10; i++) await waitForEnds(await trigger(Math.ceil(RUNS / 10)));
for (let rep = 1; rep <= REPS; rep++) {
  await worker.stop();
  const ids = await measure('triggers', RUNS, rep, () => trigger(RUNS));
  worker = await startWorker();
  await measure('steps', RUNS * STEPS, rep, () => waitForEnds(ids));
  await measure('fanout', RUNS * STEPS, rep, async () => waitForEnds(await trigger(RUNS)));
}
await worker.stop();
await triggering.stop();
await unlisten();
await probe.close();
await stores.close();
await db.drop();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const [phase, rows] of Object.entries(results)) {
  console.log(
    JSON.stringify({
      type: 'median',
      phase,
      unit: phase === 'triggers' ? 'triggers/s' : 'steps/s',
      perSecond: median(rows.map((r) => r.perSecond)),
      clientMsPerUnit: median(rows.map((r) => r.clientMs)),
      serverMsPerUnit: median(rows.map((r) => r.serverMs)),
    }),
  );
}
