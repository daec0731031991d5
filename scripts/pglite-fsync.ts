/**
 * How many flushes a step costs on PGlite with a data directory (docs/semantics.md, "What
 * survives a crash in weft dev"). Runs RUNS runs of a STEPS-step workflow, one at a time, with the
 * given durability; run it under strace to count the flush calls:
 *
 *   strace -f -c -e trace=fsync,fdatasync -o out.txt npx tsx scripts/pglite-fsync.ts fsync 20 5
 *
 * and subtract the start-up run (`… fsync 0 5`), which opens, migrates and closes the database.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine } from '../src/engine/engine.js';
import { silentLogger } from '../src/engine/logger.js';
import { ensureEnvironment } from '../src/engine/tenant.js';
import { defineWorkflow } from '../src/index.js';
import { createPgliteExecutor, type PgliteDurability } from '../src/store/pglite-executor.js';
import { createStores } from '../src/store/stores.js';

const durability = (process.argv[2] ?? 'fsync') as PgliteDurability;
const runs = Number(process.argv[3] ?? 20);
const steps = Number(process.argv[4] ?? 5);

// Built in a loop, so the step ids are not literal types: the DSL's typing is set aside here.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
let wf: any = defineWorkflow<number>('chain').step('s0', (n) => n + 1);
for (let i = 1; i < steps; i++)
  wf = wf.step(`s${i}`, { after: `s${i - 1}` }, (n: unknown) => (n as number) + 1);

const dir = mkdtempSync(join(tmpdir(), 'weft-fsync-'));
const control = await createPgliteExecutor({ dataDir: dir, durability });
const stores = createStores({ control });
await stores.migrate();
const environmentId = await ensureEnvironment(stores.control, {});
const engine = await Engine.start({
  stores,
  environmentId,
  workflows: [wf],
  logger: silentLogger(),
  worker: { concurrency: 1, pollIntervalMs: 50 },
});
const started = performance.now();
for (let i = 0; i < runs; i++) {
  const { run } = await engine.trigger('chain', i);
  await engine.waitForRun(run.id, { timeoutMs: 60_000 });
}
const ms = performance.now() - started;
await engine.stop();
await stores.close();
rmSync(dir, { recursive: true, force: true });
process.stderr.write(
  `${durability}: ${runs} runs × ${steps} steps in ${Math.round(ms)} ms (${runs ? (ms / (runs * steps)).toFixed(2) : '-'} ms per step)\n`,
);
