/**
 * `weft dev`: everything in one process on an embedded database. PGlite in `<data-dir>/db`
 * (migrated on start), the `default/dev` environment (`--environment staging` serves another one
 * of the same project: the worker registers the workflows there), a local admin API key kept in
 * `<data-dir>/dev.json` (reused across restarts while it opens that environment), the API server,
 * a worker and the reaper; the workflow modules are loaded and reloaded on change.
 */
import type { Logger } from '../engine/logger.js';
import { Engine } from '../engine/engine.js';
import { ensureEnvironment } from '../engine/tenant.js';
import { createApp, startServer } from '../server/index.js';
import type { Stores } from '../store/stores.js';
import { openStores } from './database.js';
import {
  databaseDir,
  displayPath,
  readDevState,
  resolveDataDir,
  writeDevState,
  type DevState,
} from './local-state.js';
import { CliError, createCliLogger, parseLogFormat } from './output.js';
import { handleShutdown } from './shutdown.js';
import { startCleanupLoop } from '../store/cleanup-store.js';
import {
  describeSource,
  resolveWorkflowSource,
  WorkflowLoader,
  type ActiveWorkflow,
} from './workflow-loader.js';

export interface DevOptions {
  port?: string;
  host?: string;
  dataDir?: string;
  workflows?: string[];
  config?: string;
  watch: boolean;
  concurrency?: string;
  logFormat?: string;
  logLevel?: string;
  /** The environment of project `default` to serve (created when missing). Default `dev`. */
  environment?: string;
}

/** Also the default shown by `weft dev --help` (main.ts). */
export const DEFAULT_DEV_PORT = 3700;

export async function runDev(options: DevOptions): Promise<void> {
  const port = parsePort(
    options.port ?? process.env.WEFT_PORT ?? process.env.PORT ?? String(DEFAULT_DEV_PORT),
  );
  const hostname = options.host ?? '127.0.0.1';
  const dataDir = resolveDataDir(options.dataDir);
  const logger = createCliLogger({
    format: parseLogFormat(options.logFormat, 'pretty'),
    ...(options.logLevel ? { level: options.logLevel } : {}),
  });
  const source = resolveWorkflowSource({
    ...(options.workflows ? { workflows: options.workflows } : {}),
    ...(options.config ? { config: options.config } : {}),
  });

  const opened = await openStores(
    { kind: 'dev', dataDir },
    { applicationName: 'dev', lockAs: 'weft dev' },
  );
  const { stores } = opened;
  let engine: Engine | undefined;
  let loader: WorkflowLoader | undefined;
  let server: { url: string; close(): Promise<void> } | undefined;
  let stopCleanup: (() => Promise<void>) | undefined;
  const shutdown = handleShutdown(logger, () => [
    { name: 'stop watching', run: () => loader?.close() },
    { name: 'stop the cleanup of deleted environments', run: async () => stopCleanup?.() },
    { name: 'close the HTTP server', run: () => server?.close() },
    { name: 'stop the engine', run: () => engine?.stop() },
    { name: 'close the database', run: () => opened.close() },
  ]);
  try {
    const applied = await stores.migrate();
    if (applied.length > 0) logger.debug({ applied }, `applied ${applied.length} migrations`);
    const environmentId = await ensureEnvironment(stores.control, {
      project: 'default',
      environment: options.environment ?? 'dev',
    });
    const key = await devApiKey(stores, dataDir, environmentId, logger);

    // The folder is this process's alone (locked above; PGlite is single-process), so a step run
    // still `running` was claimed by an earlier `weft dev` that died (kill -9, a crash) holding
    // it. Nobody can renew that lease: end it now, and the reaper below requeues the step at once
    // rather than after the lease (30 s).
    const orphaned = await stores.runs.expireAllLeases();
    const concurrency =
      options.concurrency === undefined
        ? 10
        : parsePositiveInt(options.concurrency, '--concurrency');
    engine = await Engine.start({
      stores,
      environmentId,
      logger,
      worker: { concurrency, shutdownGraceMs: 10_000 },
    });
    if (orphaned > 0)
      logger.info(
        { orphaned },
        'steps left running by an earlier process on this folder are handed back now',
      );
    // the reaper's first pass now, not after its interval: those leases, and any that had run out
    await engine.reapOnce();
    // run data of environments deleted in the dev folder (cleanup-store.ts)
    stopCleanup = startCleanupLoop(stores, logger);
    loader = new WorkflowLoader(source, engine, logger, { strict: false });
    await loader.load();
    if (options.watch) loader.watch();

    // One line per HTTP request drowns the workflow logs in dev: requests show at debug level.
    const serverLogger = logger.isLevelEnabled('debug')
      ? logger
      : logger.child({}, { level: 'warn' });
    const app = createApp({ stores, logger: serverLogger });
    try {
      server = await startServer(app, { port, hostname });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
        throw new CliError(
          `port ${port} on ${hostname} is in use. Stop the process that holds it, or pass --port <n> (--port 0 picks a free one).`,
        );
      }
      throw error;
    }
    const state: DevState = {
      url: server.url,
      apiKey: key.token,
      keyId: key.id,
      environmentId,
      pid: process.pid,
      updatedAt: new Date().toISOString(),
    };
    writeDevState(dataDir, state);
    process.stdout.write(
      banner({
        state,
        dataDir,
        loader,
        sourceText: describeSource(source),
        watching: options.watch,
        environment: options.environment ?? 'dev',
      }),
    );
  } catch (error) {
    await shutdown.cleanup();
    throw error;
  }
}

/** The key from dev.json when it still opens this environment; else a new one (written by the caller). */
async function devApiKey(
  stores: Stores,
  dataDir: string,
  environmentId: string,
  logger: Logger,
): Promise<{ id: string; token: string }> {
  const saved = readDevState(dataDir);
  if (saved) {
    const identity = await stores.control.resolveApiKey(saved.apiKey);
    if (identity && identity.environmentId === environmentId)
      return { id: identity.keyId, token: saved.apiKey };
    logger.warn(
      `the API key in ${displayPath(dataDir)}/dev.json is no longer valid (revoked, or the database was reset); creating a new one`,
    );
  }
  // Admin: the CLI's keys/environments/projects commands use it while dev runs.
  return stores.control.createApiKey(environmentId, 'weft dev', ['admin']);
}

function banner(args: {
  state: DevState;
  dataDir: string;
  loader: WorkflowLoader;
  sourceText: string;
  watching: boolean;
  environment: string;
}): string {
  const { state, loader } = args;
  const workflows = loader.workflows;
  const sample = pickSample(workflows, loader.sampleInputs);
  const lines = [
    '',
    '  Weft dev server is ready',
    '',
    `  Dashboard  ${dashboardSignInLink(state.url, state.apiKey)}   (signs this browser in)`,
    // A page that answers (GET /api/v1 itself is no route; the docs list every route under it).
    `  API docs   ${state.url}/api/docs   (every route is under /api/v1; OpenAPI: ${state.url}/api/openapi.json)`,
    `  API key    ${state.apiKey}   (kept in ${displayPath(args.dataDir)}/dev.json)`,
    `  Database   ${displayPath(databaseDir(args.dataDir))} (PGlite), environment default/${args.environment}`,
    `  Workflows  ${workflows.length === 0 ? 'none loaded' : workflows.map((w) => `${w.id} v${w.version}`).join(', ')}`,
    `             from ${args.sourceText}`,
  ];
  if (sample) {
    const body = JSON.stringify({ input: sample.input });
    lines.push(
      '',
      '  Try it:',
      `    curl -X POST ${state.url}/api/v1/workflows/${sample.id}/runs \\`,
      `      -H 'Authorization: Bearer ${state.apiKey}' -H 'Content-Type: application/json' \\`,
      `      -d ${shellQuote(body)}`,
      '',
      `    npx weft trigger ${sample.id} --input ${shellQuote(JSON.stringify(sample.input))} --wait`,
      '    npx weft runs list',
    );
  }
  lines.push(
    '',
    args.watching ? '  Watching the workflow files for changes. Ctrl-C stops.' : '  Ctrl-C stops.',
    '',
    '',
  );
  return lines.join('\n');
}

/**
 * The dashboard with the dev key in the fragment: the page keeps the key and removes it from the
 * address bar; a fragment never reaches the server or its logs. Always 127.0.0.1 (a wildcard
 * bind address is not one a browser can open).
 */
export function dashboardSignInLink(url: string, apiKey: string): string {
  const local = url.replace(/^http:\/\/(0\.0\.0\.0|\[::\]|localhost)(?=:)/, 'http://127.0.0.1');
  return `${local}/#key=${encodeURIComponent(apiKey)}`;
}

function pickSample(
  workflows: readonly ActiveWorkflow[],
  inputs: Readonly<Record<string, unknown>>,
): { id: string; input: unknown } | undefined {
  const ids = new Set(workflows.map((w) => w.id));
  const withInput = Object.keys(inputs).find((id) => ids.has(id));
  if (withInput) return { id: withInput, input: inputs[withInput] };
  const first = workflows[0];
  return first ? { id: first.id, input: {} } : undefined;
}

export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new CliError(
      `--port must be a port number (0–65535, 0 picks a free one); found "${value}".`,
    );
  return port;
}

export function parsePositiveInt(value: string, option: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new CliError(`${option} must be a whole number ≥ 1; found "${value}".`);
  return n;
}
