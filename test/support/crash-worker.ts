/**
 * A worker process for the crash tests: `node --import tsx test/support/crash-worker.ts`, told
 * what to do by the JSON in WEFT_CRASH_WORKER (see crash-workflows.ts). It opens the stores of an
 * already migrated database, registers the crash workflows and runs an Engine with short leases
 * and no reaper (the parent test reaps, so it controls when). Its engine connections carry the
 * application name `crash-<workerId>` so a test can find and terminate them.
 *
 * stdout: pino JSON lines at level `warn` (the test looks for "late commit rejected"), and one
 * `{"crashWorker":"ready"}` line once the worker is claiming. The process exits when its stdin
 * closes, so a parent that dies never leaves a worker behind.
 */
import pg from 'pg';
import { pino } from 'pino';
import { Engine } from '../../src/engine/engine.js';
import type { AnyWorkflow } from '../../src/engine/registry.js';
import { createStores, openExecutor } from '../../src/store/stores.js';
import { CRASH_WORKER_ENV, crashWorkflows, type CrashWorkerConfig } from './crash-workflows.js';

const raw = process.env[CRASH_WORKER_ENV];
if (!raw)
  throw new Error(
    `${CRASH_WORKER_ENV} is not set: this script is started by the crash tests (test/support/crash-process.ts).`,
  );
const config = JSON.parse(raw) as CrashWorkerConfig;

const probeClient = new pg.Client({
  connectionString: config.databaseUrl,
  application_name: 'crash-probe',
});
// Without a listener a lost probe connection would crash the process; step code then fails and retries.
probeClient.on('error', (error) =>
  process.stderr.write(`crash-probe connection error: ${error.message}\n`),
);
await probeClient.connect();

const executor = await openExecutor(config.databaseUrl, {
  poolSize: 4,
  applicationName: `crash-${config.workerId}`,
});
const stores = createStores({ control: executor });
if (!(await stores.isReady())) throw new Error('the crash test database is not migrated');

const workflows = crashWorkflows({
  config,
  async recordStart(ctx) {
    await probeClient.query(
      `insert into public.crash_starts (run_id, step_key, attempt, worker_id, idempotency_key) values ($1, $2, $3, $4, $5)`,
      [ctx.runId, ctx.stepKey, ctx.attempt, config.workerId, ctx.idempotencyKey],
    );
  },
});

const engine = await Engine.start({
  stores,
  environmentId: config.environmentId,
  workflows: workflows as unknown as AnyWorkflow[],
  reaperIntervalMs: false,
  logger: pino({ level: 'warn', base: { worker: config.workerId } }),
  worker: {
    workerId: config.workerId,
    leaseMs: config.leaseMs,
    heartbeatMs: config.heartbeatMs,
    pollIntervalMs: config.pollIntervalMs,
    concurrency: config.concurrency,
    shutdownGraceMs: 0,
  },
});

let exiting = false;
const shutdown = async (): Promise<void> => {
  if (exiting) return;
  exiting = true;
  await engine.stop().catch(() => {});
  await stores.close().catch(() => {});
  await probeClient.end().catch(() => {});
  process.exit(0);
};
process.on('SIGTERM', () => void shutdown());
// The parent is gone (its end of the pipe closed): nobody will reap or kill us, so go now.
process.stdin.on('end', () => process.exit(1));
process.stdin.resume();

process.stdout.write(
  `${JSON.stringify({ crashWorker: 'ready', workerId: config.workerId, pid: process.pid })}\n`,
);
