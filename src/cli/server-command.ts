/**
 * `weft server`: the HTTP API (and the dashboard) on PostgreSQL (`DATABASE_URL`, optional
 * `RUN_OPS_DATABASE_URL`). It keeps nothing of its own — every request reads and writes the
 * database, event streams follow the database's notifications — so any number of server
 * processes can run behind a load balancer, next to any number of `weft worker`s. It does not
 * migrate (run `weft migrate` first) and runs no workflow code.
 *
 * SIGTERM/SIGINT drains: the listening socket closes, `/readyz` turns 503, requests in flight
 * finish, event streams end with a `retry:` hint so clients reconnect elsewhere with
 * `Last-Event-ID`, and after `--drain-timeout` whatever is still open is cut.
 *
 * Every setting has a flag and an environment variable; the flag wins.
 */
import { pino, type Logger } from 'pino';
import { parseDuration } from '../core/retry.js';
import { DEFAULT_MAX_BODY_BYTES } from '../server/body.js';
import { createApp, startServer, type RunningServer } from '../server/index.js';
import { requestLogFields } from '../server/edge.js';
import { runObserverFor } from '../engine/run-observer.js';
import { parseRateLimit, type RateLimit } from '../server/rate-limit.js';
import type { Stores } from '../store/stores.js';
import { isSplit } from '../store/split.js';
import { startCleanupLoop } from '../store/cleanup-store.js';
import {
  describeTarget,
  openStores,
  parseConnectTimeout,
  serverDatabase,
  waitForDatabase,
} from './database.js';
import { CliError, parseLogFormat, prettyDestination } from './output.js';
import { handleShutdown } from './shutdown.js';
import type { WorkerCommandOptions } from './worker-command.js';

export const DEFAULT_SERVER_PORT = 3700;

export interface ServerCommandOptions {
  databaseUrl?: string;
  /** Also run the analytics replicator in this process (`weft replicate`). */
  replicate?: boolean;
  host?: string;
  port?: string;
  trustProxy?: boolean;
  corsOrigin?: string[];
  maxBody?: string;
  requestTimeout?: string;
  drainTimeout?: string;
  keepAliveTimeout?: string;
  poolSize?: string;
  rateLimit?: string;
  logFormat?: string;
  logLevel?: string;
}

/** Validated settings of `weft server` (and the server half of `weft start`). */
export interface ServerSettings {
  host: string;
  port: number;
  trustProxy: boolean;
  corsOrigins: string[];
  maxBodyBytes: number;
  /** 0: no deadline. */
  requestTimeoutMs: number;
  drainTimeoutMs: number;
  keepAliveTimeoutMs: number;
  poolSize: number;
  /** Requests per API key in this process; undefined: no limit. */
  rateLimit?: RateLimit;
}

/** The environment variable behind each flag (flag wins), as `--help` and docs/deploy.md list them. */
export const SERVER_ENV = {
  host: 'WEFT_HOST',
  port: 'WEFT_PORT (then PORT)',
  trustProxy: 'WEFT_TRUST_PROXY',
  corsOrigin: 'WEFT_CORS_ORIGINS',
  maxBody: 'WEFT_MAX_BODY',
  requestTimeout: 'WEFT_REQUEST_TIMEOUT',
  drainTimeout: 'WEFT_DRAIN_TIMEOUT',
  keepAliveTimeout: 'WEFT_KEEP_ALIVE_TIMEOUT',
  poolSize: 'WEFT_POOL_SIZE',
  rateLimit: 'WEFT_RATE_LIMIT',
} as const;

export const SERVER_DEFAULTS = {
  host: '127.0.0.1',
  requestTimeout: '30s',
  drainTimeout: '20s',
  // Longer than the 60 s idle timeout of common load balancers: the balancer closes first.
  keepAliveTimeout: '65s',
  poolSize: 10,
} as const;

type Env = Readonly<Record<string, string | undefined>>;

/** A value and where it came from, for error messages that name the right knob. */
function pick(
  flag: string,
  value: string | undefined,
  env: Env,
  ...names: string[]
): { value: string; from: string } | undefined {
  if (value !== undefined) return { value, from: flag };
  for (const name of names) {
    const v = env[name];
    if (v !== undefined && v !== '') return { value: v, from: name };
  }
  return undefined;
}

function bad(from: string, value: string, expected: string): CliError {
  return new CliError(`${from} must be ${expected}; found ${JSON.stringify(value)}.`);
}

/**
 * Read and check every setting: flags first, then their environment variables, then defaults.
 * A bad value fails with the flag (or variable) it came from, what was expected and an example.
 */
export function resolveServerSettings(
  options: ServerCommandOptions,
  env: Env = process.env,
): ServerSettings {
  const port = pick('--port', options.port, env, 'WEFT_PORT', 'PORT');
  const portNumber = port === undefined ? DEFAULT_SERVER_PORT : Number(port.value);
  if (port && (!/^\d+$/.test(port.value) || portNumber > 65535))
    throw bad(port.from, port.value, 'a port number (0–65535, 0 picks a free one), e.g. 3700');

  const host = pick('--host', options.host, env, 'WEFT_HOST');
  if (host && !/^[a-zA-Z0-9.:[\]%_-]+$/.test(host.value))
    throw bad(
      host.from,
      host.value,
      'an interface address or host name, e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)',
    );

  let trustProxy = options.trustProxy === true;
  const trustEnv = env.WEFT_TRUST_PROXY;
  if (options.trustProxy === undefined && trustEnv !== undefined && trustEnv !== '') {
    if (/^(1|true|yes|on)$/i.test(trustEnv)) trustProxy = true;
    else if (!/^(0|false|no|off)$/i.test(trustEnv))
      throw bad('WEFT_TRUST_PROXY', trustEnv, 'true or false (1 or 0)');
  }

  const corsOrigins =
    options.corsOrigin ??
    (env.WEFT_CORS_ORIGINS ?? '')
      .split(',')
      .map((o) => o.trim())
      .filter((o) => o !== '');
  const corsFrom = options.corsOrigin ? '--cors-origin' : 'WEFT_CORS_ORIGINS';
  for (const origin of corsOrigins) {
    if (origin !== '*' && !/^https?:\/\/[^/\s?#]+$/i.test(origin))
      throw bad(
        corsFrom,
        origin,
        'an origin: scheme://host[:port] with no path or trailing slash, e.g. https://admin.example.com (or * for any origin)',
      );
  }

  const maxBody = pick('--max-body', options.maxBody, env, 'WEFT_MAX_BODY');
  const maxBodyBytes = maxBody === undefined ? DEFAULT_MAX_BODY_BYTES : parseBytes(maxBody);

  const requestTimeoutMs = durationSetting(
    pick('--request-timeout', options.requestTimeout, env, 'WEFT_REQUEST_TIMEOUT'),
    SERVER_DEFAULTS.requestTimeout,
    { min: 1000, allowZero: true },
  );
  const drainTimeoutMs = durationSetting(
    pick('--drain-timeout', options.drainTimeout, env, 'WEFT_DRAIN_TIMEOUT'),
    SERVER_DEFAULTS.drainTimeout,
    { min: 0 },
  );
  const keepAliveTimeoutMs = durationSetting(
    pick('--keep-alive-timeout', options.keepAliveTimeout, env, 'WEFT_KEEP_ALIVE_TIMEOUT'),
    SERVER_DEFAULTS.keepAliveTimeout,
    { min: 1000 },
  );

  const pool = pick('--pool-size', options.poolSize, env, 'WEFT_POOL_SIZE');
  const poolSize = pool === undefined ? SERVER_DEFAULTS.poolSize : Number(pool.value);
  if (pool && (!/^\d+$/.test(pool.value) || poolSize < 2 || poolSize > 1000))
    throw bad(
      pool.from,
      pool.value,
      'a whole number from 2 to 1000 (database connections of this process), e.g. 10',
    );

  const rate = pick('--rate-limit', options.rateLimit, env, 'WEFT_RATE_LIMIT');
  let rateLimit: RateLimit | undefined;
  try {
    rateLimit = rate === undefined ? undefined : parseRateLimit(rate.value, rate.from);
  } catch (error) {
    throw new CliError((error as Error).message);
  }

  return {
    ...(rateLimit ? { rateLimit } : {}),
    host: host?.value ?? SERVER_DEFAULTS.host,
    port: portNumber,
    trustProxy,
    corsOrigins,
    maxBodyBytes,
    requestTimeoutMs,
    drainTimeoutMs,
    keepAliveTimeoutMs,
    poolSize,
  };
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1024,
  kib: 1024,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
};

function parseBytes(setting: { value: string; from: string }): number {
  const match = /^(\d+)\s*([a-z]*)$/i.exec(setting.value.trim());
  const unit = SIZE_UNITS[match?.[2]?.toLowerCase() ?? 'x'];
  const bytes = match && unit !== undefined ? Number(match[1]) * unit : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1024 || bytes > 1024 ** 3)
    throw bad(
      setting.from,
      setting.value,
      'a size from 1kb to 1024mb: bytes, or a number with kb or mb (1024-based), e.g. 1048576 or 12mb',
    );
  return bytes;
}

function durationSetting(
  setting: { value: string; from: string } | undefined,
  fallback: string,
  limits: { min: number; allowZero?: boolean },
): number {
  const value = setting?.value ?? fallback;
  let ms: number;
  try {
    ms = parseDuration(/^\d+$/.test(value) ? Number(value) : (value as `${number}s`), '');
  } catch {
    ms = NaN;
  }
  if (limits.allowZero && ms === 0) return 0;
  if (!Number.isFinite(ms) || ms < limits.min)
    throw bad(
      setting?.from ?? 'the default',
      value,
      `a duration${limits.min > 0 ? ` of at least ${limits.min / 1000}s` : ''} like "500ms", "30s" or "2m" (a bare number is milliseconds)${limits.allowZero ? '; 0 turns it off' : ''}`,
    );
  return ms;
}

const LOG_LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

/**
 * The server's logger: JSON lines by default (what log collectors parse), each line logged while
 * a request is served carrying its `requestId`.
 */
export function createServerLogger(options: { logFormat?: string; logLevel?: string }): Logger {
  const format = parseLogFormat(options.logFormat, 'json');
  const level = options.logLevel ?? process.env.WEFT_LOG_LEVEL ?? 'info';
  if (!LOG_LEVELS.has(level))
    throw bad(
      options.logLevel !== undefined ? '--log-level' : 'WEFT_LOG_LEVEL',
      level,
      `one of ${[...LOG_LEVELS].join(', ')}`,
    );
  const config = { name: 'weft', level, mixin: requestLogFields };
  return format === 'json'
    ? pino(config)
    : pino(
        config,
        prettyDestination(process.stderr, { stacks: level === 'debug' || level === 'trace' }),
      );
}

/**
 * Serve the API over open stores with validated settings: what `weft server` and `weft start`
 * share. Refuses a database that is not migrated; one that does not answer yet is served anyway
 * (`/readyz` says 503 until it does, so a balancer holds traffic back meanwhile).
 */
export async function serveApi(
  stores: Stores,
  settings: ServerSettings,
  logger: Logger,
  describe: string,
): Promise<RunningServer> {
  const readiness = await stores.readiness();
  if (!readiness.ready && readiness.reason === 'not_migrated')
    throw new CliError(
      `the database ${describe} is not migrated to this version of Weft (${readiness.details.join('; ')}). Run \`weft migrate\` (same DATABASE_URL) first.`,
    );
  if (!readiness.ready)
    logger.warn(
      { database: readiness.database, err: readiness.message },
      'the database does not answer yet; serving anyway (/readyz answers 503 until it does)',
    );
  // The analytics mirror answers filtered run lists and /api/v1/metrics when configured.
  const clickhouse = process.env.WEFT_CLICKHOUSE_URL
    ? await (
        await import('../analytics/clickhouse.js')
      ).Clickhouse.connect((await import('./replicate-command.js')).clickhouseSettings(undefined))
    : undefined;
  const runsListFrom = runsListSetting(process.env.WEFT_RUNS_LIST_FROM, clickhouse !== undefined);
  const app = createApp({
    stores,
    logger,
    runsListFrom,
    ...(clickhouse
      ? {
          analytics: new (await import('../analytics/run-analytics.js')).ClickhouseRunAnalytics(
            clickhouse,
          ),
        }
      : {}),
    maxBodyBytes: settings.maxBodyBytes,
    corsOrigins: settings.corsOrigins,
    trustProxy: settings.trustProxy,
    ...(settings.requestTimeoutMs > 0 ? { requestTimeoutMs: settings.requestTimeoutMs } : {}),
    ...(settings.rateLimit ? { rateLimit: settings.rateLimit } : {}),
  });
  try {
    return await startServer(app, {
      port: settings.port,
      hostname: settings.host,
      drainTimeoutMs: settings.drainTimeoutMs,
      keepAliveTimeoutMs: settings.keepAliveTimeoutMs,
      ...(settings.requestTimeoutMs > 0 ? { requestTimeoutMs: settings.requestTimeoutMs } : {}),
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE')
      throw new CliError(
        `port ${settings.port} on ${settings.host} is in use. Stop the process that holds it, or pass --port <n> (env WEFT_PORT).`,
      );
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EACCES')
      throw new CliError(
        `cannot listen on ${settings.host}:${settings.port} (${code}). Pass --host with an address of this machine (0.0.0.0 for every interface), or a port ≥ 1024.`,
      );
    throw error;
  }
}

export async function runServer(options: ServerCommandOptions): Promise<void> {
  const settings = resolveServerSettings(options);
  const logger = createServerLogger(options);
  const target = serverDatabase(options.databaseUrl, 'server');
  const opened = await openStores(target, {
    applicationName: 'weft-server',
    poolSize: settings.poolSize,
    // the LISTEN connection says once when it is lost and once when it is back
    logger,
  });
  let server: RunningServer | undefined;
  let stopCleanup: (() => Promise<void>) | undefined;
  let stopReplicators: (() => Promise<void>) | undefined;
  const shutdown = handleShutdown(logger, () => [
    { name: 'stop the analytics replicator', run: async () => stopReplicators?.() },
    { name: 'stop the cleanup of deleted environments', run: async () => stopCleanup?.() },
    {
      name: 'drain the HTTP server',
      run: async () => {
        if (!server) return;
        logger.info(`draining: finishing open requests (up to ${settings.drainTimeoutMs} ms)`);
        await server.close();
      },
    },
    { name: 'stop listening for events', run: () => runObserverFor(opened.stores.runs).close() },
    { name: 'close the database', run: () => opened.close() },
  ]);
  try {
    if (isSplit(opened.stores)) {
      // Split mode fails closed: the databases must answer (WEFT_CONNECT_TIMEOUT) and prove
      // distinct, and live events must be heard on the run-ops databases, before serving.
      await waitForDatabase(opened.stores, target, {
        timeoutMs: parseConnectTimeout(undefined),
        logger,
        liveEvents: true,
      });
    }
    server = await serveApi(opened.stores, settings, logger, describeTarget(target));
    // run data of deleted environments, projects, organizations (cleanup-store.ts)
    stopCleanup = startCleanupLoop(opened.stores, logger);
    if (options.replicate) {
      const r = await import('./replicate-command.js');
      const { Clickhouse } = await import('../analytics/clickhouse.js');
      const clickhouse = await Clickhouse.connect(r.clickhouseSettings(undefined));
      const running = await r.startReplicators(
        r.replicationSources(options.databaseUrl),
        clickhouse,
        logger,
      );
      stopReplicators = async () => {
        await running.stop();
        await clickhouse.close();
      };
      // a replicator that stops for good (lost slot, unknown location) is logged; the API serves on
      running.done.catch((error: unknown) =>
        logger.error({ err: error }, 'analytics: the replicator stopped; see docs/analytics.md'),
      );
    }
    logger.info(
      {
        url: server.url,
        database: describeTarget(target),
        maxBodyBytes: settings.maxBodyBytes,
        requestTimeoutMs: settings.requestTimeoutMs,
        trustProxy: settings.trustProxy,
        corsOrigins: settings.corsOrigins,
      },
      `server listening on ${server.url} (API docs: ${server.url}/api/docs)`,
    );
  } catch (error) {
    await shutdown.cleanup();
    throw error;
  }
}

export type StartCommandOptions = ServerCommandOptions & WorkerCommandOptions;

/**
 * `weft start`: `weft worker` with the API served from the same process and database pool — one
 * process for a small install. The worker's code runs it (runWorker); this adds the server, which
 * drains first on SIGTERM, then the worker drains its steps.
 */
export async function runStart(options: StartCommandOptions): Promise<void> {
  // Checked before anything starts, like `weft server`'s.
  const settings = resolveServerSettings(options);
  const { runWorker } = await import('./worker-command.js');
  await runWorker(options, {
    poolSize: settings.poolSize,
    start: async (stores, logger, database) => {
      const server = await serveApi(stores, settings, logger, database);
      logger.info(
        { url: server.url, database },
        `server listening on ${server.url} (API docs: ${server.url}/api/docs)`,
      );
      return server;
    },
  });
}

/**
 * `WEFT_RUNS_LIST_FROM`: where `GET /api/v1/runs` is answered once the analytics mirror is
 * configured — `postgres` (the default: its indexes serve the list's filters fastest) or
 * `clickhouse` (takes the read off the run databases, fresh to the replication lag).
 */
export function runsListSetting(
  value: string | undefined,
  clickhouse: boolean,
): 'postgres' | 'analytics' {
  if (value === undefined || value === '' || value === 'postgres') return 'postgres';
  if (value !== 'clickhouse')
    throw new CliError(
      `WEFT_RUNS_LIST_FROM must be "postgres" or "clickhouse"; found "${value}". Unset it to answer the runs list from PostgreSQL.`,
    );
  if (!clickhouse)
    throw new CliError(
      'WEFT_RUNS_LIST_FROM=clickhouse needs the analytics mirror: set WEFT_CLICKHOUSE_URL too (docs/analytics.md), or unset WEFT_RUNS_LIST_FROM.',
    );
  return 'analytics';
}
