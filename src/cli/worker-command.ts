/**
 * `weft worker`: a production worker on PostgreSQL (`DATABASE_URL`, optional
 * `RUN_OPS_DATABASE_URL`). It runs the workflows it loads for one environment, reaps expired
 * leases, and on SIGTERM stops claiming and drains the steps in flight (up to `--drain-timeout`,
 * after which they are aborted and requeued) before it exits — what a rolling deploy needs.
 * It does not migrate: run `weft migrate` first. Any workflow module that fails to load is a
 * startup error (a worker must not silently run fewer workflows than it was deployed with).
 */
import { Engine } from '../engine/engine.js';
import type { Logger } from '../engine/logger.js';
import type { Stores } from '../store/stores.js';
import { processMetrics } from '../engine/metrics.js';
import { createMetricsApp } from '../server/routes/metrics.js';
import { startServer, type RunningServer } from '../server/serve.js';
import { ensureEnvironment } from '../engine/tenant.js';
import { parseDuration } from '../core/retry.js';
import { startCleanupLoop } from '../store/cleanup-store.js';
import {
  describeTarget,
  openStores,
  parseConnectTimeout,
  serverDatabase,
  waitForDatabase,
} from './database.js';
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
  /** How long to wait for the database at startup (`--connect-timeout`, WEFT_CONNECT_TIMEOUT). */
  connectTimeout?: string;
  /** `--lease` (WEFT_LEASE), `--heartbeat` (WEFT_HEARTBEAT), `--reaper-interval` (WEFT_REAPER_INTERVAL). */
  lease?: string;
  heartbeat?: string;
  reaperInterval?: string;
}

export interface WorkerTimings {
  leaseMs: number;
  heartbeatMs: number;
  /** false: this process reaps nothing (another process must). */
  reaperIntervalMs: number | false;
}

const LEASE_MIN_MS = 1_000;
const LEASE_MAX_MS = 24 * 3_600_000;
const HEARTBEAT_MIN_MS = 50;
const REAPER_MIN_MS = 100;

/**
 * Lease, heartbeat and reaper interval from flags, else environment variables, else the engine's
 * defaults (30 s, a third of the lease, 5 s). Validated together: a heartbeat must be well below
 * the lease (at most half of it, so one slow renewal does not lose the lease).
 */
export function resolveWorkerTimings(
  options: Pick<WorkerCommandOptions, 'lease' | 'heartbeat' | 'reaperInterval'>,
  env: NodeJS.ProcessEnv = process.env,
): WorkerTimings {
  const read = (flag: string, envName: string, value: string | undefined) => {
    const raw = value ?? env[envName];
    if (raw === undefined || raw === '') return undefined;
    const source = value !== undefined ? flag : envName;
    if (flag === '--reaper-interval' && raw === 'off') return { ms: false as const, source, raw };
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(raw.trim());
    if (!match)
      throw new CliError(
        `${source} must be a duration like "500ms", "10s", "5m" or "1h"${flag === '--reaper-interval' ? ' (or "off")' : ''}; found "${raw}".`,
      );
    const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'm' | 'h'];
    return { ms: Math.round(Number(match[1]) * unit), source, raw };
  };
  const lease = read('--lease', 'WEFT_LEASE', options.lease);
  const heartbeat = read('--heartbeat', 'WEFT_HEARTBEAT', options.heartbeat);
  const reaper = read('--reaper-interval', 'WEFT_REAPER_INTERVAL', options.reaperInterval);
  const leaseMs = (lease?.ms as number | undefined) ?? 30_000;
  if (lease && (leaseMs < LEASE_MIN_MS || leaseMs > LEASE_MAX_MS))
    throw new CliError(
      `${lease.source} is "${lease.raw}": a lease must be from 1s to 24h (how long a claimed step stays this worker's without a renewal; a crashed worker's steps are picked up after it). Default 30s.`,
    );
  const heartbeatMs =
    (heartbeat?.ms as number | undefined) ?? Math.max(10, Math.floor(leaseMs / 3));
  if (heartbeat) {
    if (heartbeatMs < HEARTBEAT_MIN_MS)
      throw new CliError(
        `${heartbeat.source} is "${heartbeat.raw}": a heartbeat must be at least ${HEARTBEAT_MIN_MS}ms.`,
      );
    if (heartbeatMs * 2 > leaseMs)
      throw new CliError(
        `${heartbeat.source} is "${heartbeat.raw}" but the lease is ${leaseMs} ms${lease ? ` (${lease.source})` : ' (the default)'}: the heartbeat must be well below the lease — at most half of it, a third is the default — or one slow renewal loses the lease and the step runs twice. Lower the heartbeat or raise --lease.`,
      );
  }
  let reaperIntervalMs: number | false = 5_000;
  if (reaper) {
    if (reaper.ms !== false && reaper.ms < REAPER_MIN_MS)
      throw new CliError(
        `${reaper.source} is "${reaper.raw}": the reaper interval must be at least ${REAPER_MIN_MS}ms (or "off" when another process reaps).`,
      );
    reaperIntervalMs = reaper.ms;
  }
  return { leaseMs, heartbeatMs, reaperIntervalMs };
}

/**
 * Something served from the worker's process over its stores: `weft start` serves the API this
 * way. Started once the workflows are loaded; drained first on shutdown, before the worker.
 */
export interface WorkerCompanion {
  /** Database connections it needs on top of the worker's. */
  poolSize: number;
  start(stores: Stores, logger: Logger, database: string): Promise<{ close(): Promise<void> }>;
}

/**
 * Database connections a worker's pool may open for `concurrency` steps at once: 2 (the claim
 * loop and the lease heartbeat) plus one per step, up to 16. A step holds no connection while its
 * code runs; its commit goes through the group commit (at most 3 statements in flight,
 * src/engine/group-commit.ts), and what is not grouped (a failure, a park, a child run's trigger)
 * waits in the pool for a free connection beyond that. `--concurrency 200` for I/O-bound steps
 * therefore opens 18 connections, not 202 (PostgreSQL allows 100 by default); the bench's
 * fan-out ran best at c200 on a pool of 10 (bench/RESULTS.md, issue 8, session 10).
 */
export function workerPoolSize(concurrency: number): number {
  return Math.min(concurrency, 16) + 2;
}

export async function runWorker(
  options: WorkerCommandOptions,
  companion?: WorkerCompanion,
): Promise<void> {
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
  const timings = resolveWorkerTimings(options);
  const connectTimeoutMs = parseConnectTimeout(options.connectTimeout);
  let shutdownGraceMs: number;
  try {
    shutdownGraceMs = parseDuration(options.drainTimeout as `${number}s`, '--drain-timeout');
  } catch (error) {
    throw new CliError((error as Error).message);
  }

  const opened = await openStores(target, {
    applicationName: 'weft-worker',
    poolSize: workerPoolSize(concurrency) + (companion?.poolSize ?? 0),
    logger,
  });
  let engine: Engine | undefined;
  let metricsServer: RunningServer | undefined;
  let served: { close(): Promise<void> } | undefined;
  let stopCleanup: (() => Promise<void>) | undefined;
  const shutdown = handleShutdown(logger, () => [
    { name: 'stop the cleanup of deleted environments', run: async () => stopCleanup?.() },
    { name: 'drain the HTTP server', run: async () => served?.close() },
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
    // split mode: also the distinct-database sentinel and live events on the run-ops databases
    await waitForDatabase(opened.stores, target, {
      timeoutMs: connectTimeoutMs,
      logger,
      liveEvents: true,
    });
    // run data of deleted environments, projects, organizations (cleanup-store.ts)
    stopCleanup = startCleanupLoop(opened.stores, logger);
    const environmentId = await ensureEnvironment(opened.stores.control, {
      project: options.project,
      environment: options.environment,
    });
    engine = await Engine.start({
      stores: opened.stores,
      environmentId,
      logger,
      reaperIntervalMs: timings.reaperIntervalMs,
      worker: {
        concurrency,
        shutdownGraceMs,
        leaseMs: timings.leaseMs,
        heartbeatMs: timings.heartbeatMs,
      },
    });
    if (options.metricsPort !== undefined) {
      const port = Number(options.metricsPort);
      if (!Number.isInteger(port) || port < 0 || port > 65535)
        throw new CliError(
          `--metrics-port must be a port number (0–65535); found "${options.metricsPort}".`,
        );
      const runOpsDb = opened.stores.runOpsDb;
      metricsServer = await startServer(
        createMetricsApp(processMetrics, { listener: () => runOpsDb.listenerHealth?.() }),
        {
          port,
          hostname: options.metricsHost ?? '127.0.0.1',
        },
      );
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
        ...timings,
      },
      'worker started',
    );
    served = await companion?.start(opened.stores, logger, describeTarget(target));
  } catch (error) {
    await shutdown.cleanup();
    throw error;
  }
}
