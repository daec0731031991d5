/**
 * A chained step seen from the client (issue 8): one run of a --steps chain executed by an
 * embedded engine on PostgreSQL, --reps times in one process after a warm-up run, so start-up
 * and JIT warm-up are out of the figures. Prints, per repetition, the wall ms per step, the
 * process's CPU ms per step (user + system, process.cpuUsage) and the GC time per step
 * (perf_hooks), then the medians. Run with `node --cpu-prof --cpu-prof-dir DIR` to see where the
 * client's CPU goes (bench/profile-summary.ts). PostgreSQL only (WEFT_BENCH_PG_URL).
 *
 * With --pause-ms the process idles that long before each repetition (a list is taken in turn),
 * as a system's process does in the main bench while the other systems take their turn. Each line
 * also says how long a fixed loop of integer arithmetic took just before the repetition
 * (`spinMs`: a CPU that runs slower after the pause would show there).
 *
 *   node --import tsx bench/chain-client.ts [--steps 2000] [--reps 5] [--warmup 1] [--pause-ms 0]
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Engine } from '../src/engine/engine.js';
import { silentLogger } from '../src/engine/logger.js';
import { openWeftDatabase } from './lib/weft-database.js';
import { chainWorkflow } from './lib/chain-workflow.js';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '2000' },
    reps: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    'pause-ms': { type: 'string', default: '0' },
  },
});
const STEPS = Number(values.steps);
const REPS = Number(values.reps);
const WARMUP = Number(values.warmup);
/** Pauses before the repetitions in turn (`--pause-ms 50,3000`: 50, 3000, 50, …). */
const PAUSES = values['pause-ms'].split(',').map(Number);

/** A fixed amount of integer arithmetic, warmed up before use; its time gauges the CPU's speed. */
function spin(n: number): number {
  let acc = 0;
  for (let i = 0; i < n; i++) acc = (acc * 31 + i) | 0;
  return acc;
}
for (let i = 0; i < 200; i++) spin(100_000);
const spinMs = () => {
  const t0 = performance.now();
  // the result is used, so the loop cannot be optimized away
  if (spin(400_000) === 42) console.log('');
  return performance.now() - t0;
};

const wf = chainWorkflow('chain', STEPS);

let gcMs = 0;
let gcCount = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcMs += e.duration;
    gcCount++;
  }
}).observe({ entryTypes: ['gc'] });

const { db, executor, stores, environmentId } = await openWeftDatabase('chain_client');
try {
  const engine = await Engine.start({
    stores,
    environmentId,
    workflows: [wf],
    logger: silentLogger(),
  });
  // warm-up: --warmup chains, untimed
  for (let i = 0; i < WARMUP; i++)
    await engine.waitForRun((await engine.trigger('chain', null)).run.id, { timeoutMs: 600_000 });
  const samples: Array<Record<string, number>> = [];
  for (let rep = 0; rep < REPS; rep++) {
    const pauseMs = PAUSES[rep % PAUSES.length]!;
    if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    const spun = spinMs();
    const gc0 = { ms: gcMs, n: gcCount };
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const { run } = await engine.trigger('chain', null);
    const done = await engine.waitForRun(run.id, { timeoutMs: 600_000 });
    const wall = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    if (done.status !== 'succeeded') throw new Error(`the chain ended ${done.status}`);
    const sample = {
      pauseMs,
      wallMsPerStep: +(wall / STEPS).toFixed(4),
      clientCpuMsPerStep: +((cpu.user + cpu.system) / 1000 / STEPS).toFixed(4),
      userMsPerStep: +(cpu.user / 1000 / STEPS).toFixed(4),
      systemMsPerStep: +(cpu.system / 1000 / STEPS).toFixed(4),
      gcMsPerStep: +((gcMs - gc0.ms) / STEPS).toFixed(4),
      gcPerStep: +((gcCount - gc0.n) / STEPS).toFixed(4),
      spinMs: +spun.toFixed(3),
    };
    samples.push(sample);
    console.log(JSON.stringify({ type: 'rep', rep, ...sample }));
  }
  await engine.stop();
  // the medians, one line per pause length
  for (const pauseMs of new Set(PAUSES)) {
    const mine = samples.filter((s) => s.pauseMs === pauseMs);
    const median = (k: string) => {
      const v = mine.map((s) => s[k]!).sort((a, b) => a - b);
      return v[Math.floor(v.length / 2)];
    };
    console.log(
      JSON.stringify({
        type: 'median',
        steps: STEPS,
        pauseMs,
        reps: mine.length,
        wallMsPerStep: median('wallMsPerStep'),
        clientCpuMsPerStep: median('clientCpuMsPerStep'),
        userMsPerStep: median('userMsPerStep'),
        systemMsPerStep: median('systemMsPerStep'),
        gcMsPerStep: median('gcMsPerStep'),
        spinMs: median('spinMs'),
      }),
    );
  }
} finally {
  await executor.close();
  await db.drop();
}
