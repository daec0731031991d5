/**
 * A paired A/B of a chained step between two checkouts, in one process (issue 8). Each checkout's
 * engine runs on its own database; short chains alternate between them (the order flips each
 * pair), so both see the same moment of a shared, noisy machine, which separate processes minutes
 * apart do not. Prints the medians of B's wall time and client CPU per step over A's, pair by pair,
 * and how many pairs had B faster. Run it with A = B once to see the noise floor.
 *
 * The process CPU of a pair's run includes the other engine's idle work (its timers), the same
 * for both. PostgreSQL only (WEFT_BENCH_PG_URL). Each checkout needs its node_modules (a symlink to
 * this one's is enough).
 *
 *   git worktree add /tmp/weft-a <rev> && ln -s "$PWD/node_modules" /tmp/weft-a/node_modules
 *   node --import tsx bench/chain-ab.ts /tmp/weft-a . [--steps 200] [--pairs 30]
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { createDatabase } from './lib/postgres.js';
import { chainWorkflow } from './lib/chain-workflow.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    steps: { type: 'string', default: '200' },
    pairs: { type: 'string', default: '30' },
  },
});
if (positionals.length !== 2) throw new Error('usage: chain-ab.ts <checkout A> <checkout B>');
const STEPS = Number(values.steps);
const PAIRS = Number(values.pairs);

interface Side {
  run(): Promise<{ wall: number; cpu: number }>;
  close(): Promise<void>;
}

/** One checkout's engine, loaded from its own source, on a database of its own. */
async function open(checkout: string, label: string): Promise<Side> {
  const from = (path: string) => import(pathToFileURL(resolve(checkout, path)).href);
  const { Engine } = await from('src/engine/engine.ts');
  const { silentLogger } = await from('src/engine/logger.ts');
  const { defineWorkflow } = await from('src/index.ts');
  const { createStores, openExecutor } = await from('src/store/stores.ts');
  const { ensureEnvironment } = await from('src/engine/tenant.ts');
  const db = await createDatabase(`ab_${label}`);
  const executor = await openExecutor(db.url, { poolSize: 10, applicationName: 'weft' });
  const stores = createStores({ control: executor });
  await stores.migrate();
  const environmentId: string = await ensureEnvironment(stores.control);
  const wf = chainWorkflow('chain', STEPS, defineWorkflow);
  const engine = await Engine.start({
    stores,
    environmentId,
    workflows: [wf],
    logger: silentLogger(),
  });
  return {
    async run() {
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const { run } = await engine.trigger('chain', null);
      const done = await engine.waitForRun(run.id, { timeoutMs: 600_000 });
      if (done.status !== 'succeeded') throw new Error(`${label}: the chain ended ${done.status}`);
      const cpu = process.cpuUsage(cpu0);
      return {
        wall: (performance.now() - t0) / STEPS,
        cpu: (cpu.user + cpu.system) / 1000 / STEPS,
      };
    },
    async close() {
      await engine.stop();
      await executor.close();
      await db.drop();
    },
  };
}

const a = await open(positionals[0]!, 'a');
const b = await open(positionals[1]!, 'b');
try {
  for (let i = 0; i < 3; i++) await Promise.all([a.run(), b.run()]); // warm-up, not kept
  const pairs: Array<{ a: { wall: number; cpu: number }; b: { wall: number; cpu: number } }> = [];
  for (let i = 0; i < PAIRS; i++) {
    if (i % 2 === 0) {
      const ra = await a.run();
      pairs.push({ a: ra, b: await b.run() });
    } else {
      const rb = await b.run();
      pairs.push({ a: await a.run(), b: rb });
    }
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const r = (x: number) => +x.toFixed(4);
  console.log(
    JSON.stringify({
      type: 'ab',
      steps: STEPS,
      pairs: PAIRS,
      a: { checkout: positionals[0], wallMsPerStep: r(median(pairs.map((p) => p.a.wall))) },
      b: { checkout: positionals[1], wallMsPerStep: r(median(pairs.map((p) => p.b.wall))) },
      wallBOverA: r(median(pairs.map((p) => p.b.wall / p.a.wall))),
      cpuBOverA: r(median(pairs.map((p) => p.b.cpu / p.a.cpu))),
      pairsBFaster: pairs.filter((p) => p.b.wall < p.a.wall).length,
    }),
  );
} finally {
  await a.close();
  await b.close();
}
