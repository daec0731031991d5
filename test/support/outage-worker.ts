/**
 * A worker process for the outage chaos test (engine.db-outage-chaos): the crash workflows of
 * crash-workflows.ts on an Engine with short leases and no reaper, like crash-worker.ts — except
 * that its start probe is a pool, so the probe itself survives a PostgreSQL restart (a plain
 * client would stay dead and fail every later step), and the process logs its outage handling
 * (level info: LISTEN lost/back, commit retries, releases).
 *
 * Config: the JSON in WEFT_CRASH_WORKER. Prints `{"crashWorker":"ready"}` once claiming; exits
 * when its stdin closes.
 */
import pg from 'pg';
import { pino } from 'pino';
import { Engine } from '../../src/engine/engine.js';
import type { AnyWorkflow } from '../../src/engine/registry.js';
import { createStores, openExecutor } from '../../src/store/stores.js';
import { CRASH_WORKER_ENV, crashWorkflows, type CrashWorkerConfig } from './crash-workflows.js';

const config = JSON.parse(process.env[CRASH_WORKER_ENV]!) as CrashWorkerConfig;
const logger = pino({ level: 'info', base: { worker: config.workerId } });

const probe = new pg.Pool({
  connectionString: config.databaseUrl,
  application_name: 'outage-probe',
  max: 2,
});
probe.on('error', () => {}); // an idle probe connection cut by a restart is simply replaced

const executor = await openExecutor(config.databaseUrl, {
  poolSize: 4,
  applicationName: `crash-${config.workerId}`,
  logger,
});
const stores = createStores({ control: executor });
if (!(await stores.isReady())) throw new Error('the outage test database is not migrated');

const workflows = crashWorkflows({
  config,
  async recordStart(ctx) {
    await probe.query(
      `insert into public.crash_starts (run_id, step_key, attempt, worker_id, idempotency_key) values ($1, $2, $3, $4, $5)`,
      [ctx.runId, ctx.stepKey, ctx.attempt, config.workerId, ctx.idempotencyKey],
    );
  },
});

await Engine.start({
  stores,
  environmentId: config.environmentId,
  workflows: workflows as unknown as AnyWorkflow[],
  reaperIntervalMs: false,
  timerIntervalMs: false,
  scheduler: false,
  logger,
  worker: {
    workerId: config.workerId,
    leaseMs: config.leaseMs,
    heartbeatMs: config.heartbeatMs,
    pollIntervalMs: config.pollIntervalMs,
    concurrency: config.concurrency,
    shutdownGraceMs: 0,
  },
});

process.stdin.on('end', () => process.exit(1));
process.stdin.resume();
process.stdout.write(`${JSON.stringify({ crashWorker: 'ready', workerId: config.workerId })}\n`);
