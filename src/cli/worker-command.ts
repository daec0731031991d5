/**
 * `weft worker`: a production worker on PostgreSQL (`DATABASE_URL`, optional
 * `RUN_OPS_DATABASE_URL`). It runs the workflows it loads for one environment, reaps expired
 * leases, and on SIGTERM stops claiming and drains the steps in flight (up to `--drain-timeout`,
 * after which they are aborted and requeued) before it exits — what a rolling deploy needs.
 * It does not migrate: run `weft migrate` first. Any workflow module that fails to load is a
 * startup error (a worker must not silently run fewer workflows than it was deployed with).
 */
import { Engine } from '../engine/engine.js';
import { processMetrics } from '../engine/metrics.js';
import { createMetricsApp } from '../server/routes/metrics.js';
import { startServer, type RunningServer } from '../server/serve.js';
import { ensureEnvironment } from '../engine/tenant.js';
import { parseDuration } from '../core/retry.js';
import { assertMigrated, describeTarget, openStores, serverDatabase } from './database.js';
import { parsePositiveInt } from './dev-command.js';
import { CliError, createCliLogger, parseLogFormat } from './output.js';
import { handleShutdown } from './shutdown.js';
import { describeSource, resolveWorkflowSource, WorkflowLoader } from './workflow-loader.js';

export interface WorkerCommandOptions {
  databaseUrl?: string;
  project: string;
  environment: string;
  workflows?: string[];
  config?: string;
  concurrency?: string;
  drainTimeout: string;
  logFormat?: string;
  logLevel?: string;
  /** Serve this process's metrics on GET /metrics at this port (`--metrics-port`). */
  metricsPort?: string;
  metricsHost?: string;
}

export async function runWorker(options: WorkerCommandOptions): Promise<void> {
  const target = serverDatabase(options.databaseUrl, 'worker');
  const logger = createCliLogger({
    format: parseLogFormat(options.logFormat, 'json'),
    ...(options.logLevel ? { level: options.logLevel } : {}),
  });
  const source = resolveWorkflowSource({
    ...(options.workflows ? { workflows: options.workflows } : {}),
    ...(options.config ? { config: options.config } : {}),
  });
  const concurrency =
    options.concurrency === undefined ? 10 : parsePositiveInt(options.concurrency, '--concurrency');
  let shutdownGraceMs: number;
  try {
    shutdownGraceMs = parseDuration(options.drainTimeout as `${number}s`, '--drain-timeout');
  } catch (error) {
    throw new CliError((error as Error).message);
  }

  const opened = await openStores(target, {
    applicationName: 'weft-worker',
    poolSize: concurrency + 2,
  });
  let engine: Engine | undefined;
  let metricsServer: RunningServer | undefined;
  const shutdown = handleShutdown(logger, () => [
    { name: 'close the metrics endpoint', run: async () => metricsServer?.close() },
    {
      name: 'drain the worker',
      run: async () => {
        if (engine?.worker?.inFlightCount)
          logger.info(
            { inFlight: engine.worker.inFlightCount },
            `draining steps in flight (up to ${shutdownGraceMs} ms)`,
          );
        await engine?.stop();
      },
    },
    { name: 'close the database', run: () => opened.close() },
  ]);
  try {
    await assertMigrated(opened.stores, target);
    const environmentId = await ensureEnvironment(opened.stores.control, {
      project: options.project,
      environment: options.environment,
    });
    engine = await Engine.start({
      stores: opened.stores,
      environmentId,
      logger,
      worker: { concurrency, shutdownGraceMs },
    });
    if (options.metricsPort !== undefined) {
      const port = Number(options.metricsPort);
      if (!Number.isInteger(port) || port < 0 || port > 65535)
        throw new CliError(
          `--metrics-port must be a port number (0–65535); found "${options.metricsPort}".`,
        );
      metricsServer = await startServer(createMetricsApp(processMetrics), {
        port,
        hostname: options.metricsHost ?? '127.0.0.1',
      });
      logger.info({ url: `${metricsServer.url}/metrics` }, 'serving metrics');
    }
    const loader = new WorkflowLoader(source, engine, logger, { strict: true });
    const report = await loader.load();
    if (report.active.length === 0) {
      throw new CliError(
        `no workflows found in ${describeSource(source)}: a worker needs at least one (export defineWorkflow(…) from a module).`,
      );
    }
    logger.info(
      {
        workerId: engine.worker?.workerId,
        database: describeTarget(target),
        environment: `${options.project}/${options.environment}`,
        workflows: report.active.map((w) => `${w.id}@v${w.version}`),
        concurrency,
      },
      'worker started',
    );
  } catch (error) {
    await shutdown.cleanup();
    throw error;
  }
}
