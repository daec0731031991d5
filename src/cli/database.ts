/**
 * Which database a command talks to: a server named by `DATABASE_URL` (plus an optional
 * `RUN_OPS_DATABASE_URL` for the run-ops split, see docs/scale.md), or the PGlite folder of `weft dev`.
 * Opening goes through src/store/stores.ts; the CLI never touches a driver.
 */
import { resolve } from 'node:path';
import { WeftError } from '../core/errors.js';
import { parseDuration } from '../core/retry.js';
import { assertLiveEventsReachable, assertSplitSafe, isSplit } from '../store/split.js';
import { isTransientDatabaseError } from '../store/db-errors.js';
import type { Executor, ExecutorLogger } from '../store/executor.js';
import { parseLocationsEnv } from '../store/locations.js';
import { createStores, openExecutor, type Stores, type StoresOptions } from '../store/stores.js';
import { acquireDataDirLock, databaseDir, displayPath } from './local-state.js';
import { CliError } from './output.js';
import { devSecretBox } from './secret-key.js';

export type DatabaseTarget =
  { kind: 'url'; url: string; runOpsUrl: string | undefined } | { kind: 'dev'; dataDir: string };

/** Hide the password of a URL before printing it. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

/** `DATABASE_URL` (or `--database-url`), required: what `weft worker` and `weft migrate` run against. */
export function serverDatabase(option: string | undefined, command: string): DatabaseTarget {
  const url = option ?? process.env.DATABASE_URL;
  const runOpsUrl = process.env.RUN_OPS_DATABASE_URL || undefined;
  if (!url) {
    throw new CliError(
      runOpsUrl
        ? `weft ${command}: RUN_OPS_DATABASE_URL is set (run data on its own database) but DATABASE_URL is not: the control plane needs its own database too. Set DATABASE_URL (e.g. DATABASE_URL=postgres://user:password@host:5432/weft) or pass --database-url; or unset RUN_OPS_DATABASE_URL to keep everything in one database.`
        : `weft ${command} needs a database: set DATABASE_URL (e.g. DATABASE_URL=postgres://user:password@host:5432/weft) or pass --database-url. For local development use \`weft dev\`, which needs no database.`,
    );
  }
  return checkedTarget(url, runOpsUrl);
}

/**
 * Two PGlite URLs for one folder would open one database twice (PGlite is single-process): the
 * one same-database case the PostgreSQL sentinel (split.ts) cannot see, refused here.
 */
function checkedTarget(url: string, runOpsUrl: string | undefined): DatabaseTarget {
  const folder = (u: string) =>
    u.startsWith('pglite:') && !['pglite:', 'pglite:memory'].includes(u)
      ? resolve(u.slice('pglite:'.length))
      : undefined;
  if (runOpsUrl && folder(url) !== undefined && folder(url) === folder(runOpsUrl))
    throw new CliError(
      `split mode: DATABASE_URL and RUN_OPS_DATABASE_URL name the same PGlite folder (${folder(url)}). Point RUN_OPS_DATABASE_URL at another folder, or unset it to keep everything in one database.`,
    );
  return { kind: 'url', url, runOpsUrl };
}

/**
 * The split's boot checks (split.ts), in every process that opens the stores: the
 * distinct-database sentinel (fails closed when it cannot probe) and, for processes that listen
 * for run notifications (`liveEvents`), that each run-ops database's LISTEN connection hears its
 * own NOTIFYs. Nothing at all with the split off.
 */
export async function assertSplitAtBoot(
  stores: Stores,
  options: { liveEvents: boolean },
): Promise<void> {
  if (!isSplit(stores)) return;
  try {
    await assertSplitSafe(stores);
    if (options.liveEvents) await assertLiveEventsReachable(stores);
  } catch (error) {
    if (error instanceof WeftError) throw new CliError(error.message);
    throw error;
  }
}

/** `DATABASE_URL` when set, else the PGlite folder of `weft dev` (the `weft keys` commands). */
export function serverOrDevDatabase(option: string | undefined, dataDir: string): DatabaseTarget {
  const url = option ?? process.env.DATABASE_URL;
  return url
    ? checkedTarget(url, process.env.RUN_OPS_DATABASE_URL || undefined)
    : { kind: 'dev', dataDir };
}

export function describeTarget(target: DatabaseTarget): string {
  if (target.kind === 'dev') return `${displayPath(databaseDir(target.dataDir))} (PGlite)`;
  return (
    redactUrl(target.url) + (target.runOpsUrl ? ` (run-ops: ${redactUrl(target.runOpsUrl)})` : '')
  );
}

export interface OpenedStores {
  stores: Stores;
  /** Closes the stores and releases the dev folder. */
  close(): Promise<void>;
}

/**
 * Open the stores. The dev folder is locked for the duration (PGlite is single-process), so a
 * command that needs it while `weft dev` runs fails with a message that says so.
 */
export async function openStores(
  target: DatabaseTarget,
  options: {
    applicationName: string;
    poolSize?: number;
    lockAs?: string;
    /** Where the LISTEN connection logs going down and coming back (PostgreSQL). */
    logger?: ExecutorLogger;
  },
): Promise<OpenedStores> {
  let release = (): void => {};
  try {
    if (target.kind === 'dev') {
      release = acquireDataDirLock(
        target.dataDir,
        options.lockAs ?? `weft ${options.applicationName}`,
      );
      const specs = parseLocationsEnv();
      const remote = specs.find((l) => l.url !== undefined);
      if (remote) {
        throw new CliError(
          `WEFT_LOCATIONS gives location "${remote.tag}" a URL, but this command uses the PGlite folder of \`weft dev\`, which keeps every location in its one database. Drop the "=url" part (e.g. WEFT_LOCATIONS="a0,b1"), or set DATABASE_URL to run on PostgreSQL.`,
        );
      }
      const control = await openExecutor(`pglite:${databaseDir(target.dataDir)}`);
      // without WEFT_SECRET_KEY, the folder keeps a key of its own (secrets-command.ts)
      const stores = createStores({
        control,
        secrets: devSecretBox(target.dataDir),
        locationTags: specs.map((l) => l.tag),
        defaultLocationTag: specs.find((l) => l.isDefault)!.tag,
      });
      return { stores, close: async () => void (await stores.close().finally(release)) };
    }
    const common: { applicationName: string; poolSize?: number; logger?: ExecutorLogger } = {
      applicationName: options.applicationName,
    };
    if (options.poolSize !== undefined) common.poolSize = options.poolSize;
    if (options.logger !== undefined) common.logger = options.logger;
    // Locations (WEFT_LOCATIONS, src/store/locations.ts): one executor per distinct URL; a
    // location without a URL lives in the home run-ops database.
    const specs = parseLocationsEnv();
    const opened: Executor[] = [];
    try {
      const control = await openExecutor(target.url, common);
      opened.push(control);
      const runOps = target.runOpsUrl
        ? await openExecutor(target.runOpsUrl, common).catch((error: unknown) => {
            throw new CliError(
              `RUN_OPS_DATABASE_URL: ${(error as Error).message}. Fix RUN_OPS_DATABASE_URL, or unset it to keep run data in DATABASE_URL's database.`,
            );
          })
        : undefined;
      if (runOps) opened.push(runOps);
      const byUrl = new Map<string, Executor>();
      const locations: NonNullable<StoresOptions['locations']> = [];
      for (const spec of specs) {
        if (spec.url === undefined) {
          locations.push({ tag: spec.tag });
          continue;
        }
        let executor = byUrl.get(spec.url);
        if (!executor) {
          executor = await openExecutor(spec.url, common);
          opened.push(executor);
          byUrl.set(spec.url, executor);
        }
        locations.push({ tag: spec.tag, executor, url: spec.url });
      }
      const options: StoresOptions = {
        control,
        locations,
        defaultLocationTag: specs.find((l) => l.isDefault)!.tag,
      };
      if (runOps) options.runOps = runOps;
      const consistency = controlConsistencyEnv();
      if (consistency) options.controlConsistency = consistency;
      const stores = createStores(options);
      return { stores, close: () => stores.close() };
    } catch (error) {
      await Promise.all(opened.map((db) => db.close().catch(() => {})));
      throw error;
    }
  } catch (error) {
    release();
    throw error;
  }
}

/**
 * `WEFT_CONTROL_CONSISTENCY` (control-store.ts): `strict` or `notify`; unset = the default
 * (strict in split mode, notify with one database).
 */
function controlConsistencyEnv(): 'strict' | 'notify' | undefined {
  const value = process.env.WEFT_CONTROL_CONSISTENCY;
  if (value === undefined || value === '') return undefined;
  if (value === 'strict' || value === 'notify') return value;
  throw new CliError(
    `WEFT_CONTROL_CONSISTENCY must be "strict" (a control-plane change committed before a request is applied before it is served: one round trip on the LISTEN connection per request) or "notify" (applied when the notification arrives, milliseconds later; no added round trip); found ${JSON.stringify(value)}. Unset it for the default: strict in split mode, notify with one database.`,
  );
}

/**
 * Fail with the fix when the schema is not migrated. A worker does not migrate on its own: in
 * production migrations are a deliberate step (`weft migrate`), run once per deploy.
 */
export async function assertMigrated(stores: Stores, target: DatabaseTarget): Promise<void> {
  const readiness = await stores.readiness();
  if (readiness.ready) return;
  // isReady() reads "unreachable" as "not ready"; a trivial round trip tells the two apart.
  try {
    await stores.controlDb.query('select 1');
  } catch (error) {
    throw new CliError(
      `cannot reach the database ${describeTarget(target)}: ${(error as Error).message}`,
    );
  }
  // what is behind: migrations, or SQL functions this build does not know (both hashes named)
  const why = readiness.reason === 'not_migrated' ? `: ${readiness.details.join('; ')}` : '';
  throw new CliError(
    `the database ${describeTarget(target)} is not migrated to this version of Weft. Run \`weft migrate\` (same DATABASE_URL) first${why}.`,
  );
}

/** How long `weft worker` / `weft server` wait for the database at startup by default. */
export const DEFAULT_CONNECT_TIMEOUT = '60s';

/**
 * `--connect-timeout` (or `WEFT_CONNECT_TIMEOUT`): how long a starting process waits for the
 * database to accept connections. `0` fails at once, as before.
 */
export function parseConnectTimeout(option: string | undefined): number {
  const value = option ?? process.env.WEFT_CONNECT_TIMEOUT ?? DEFAULT_CONNECT_TIMEOUT;
  const source = option !== undefined ? '--connect-timeout' : 'WEFT_CONNECT_TIMEOUT';
  try {
    return parseDuration((/^\d+$/.test(value) ? Number(value) : value) as `${number}s`, source);
  } catch {
    throw new CliError(
      `${source} must be a duration like "30s", "2m" or "500ms" (0 to fail at once when the database is down); found "${value}".`,
    );
  }
}

/** Retries at startup: first after ~250 ms, doubling, capped at 5 s, jittered to 50–100 %. */
const CONNECT_RETRY_BASE_MS = 250;
const CONNECT_RETRY_CAP_MS = 5_000;
/** While waiting, one "still waiting" line this often (not one per attempt). */
const CONNECT_LOG_EVERY_MS = 15_000;

/**
 * Wait until the databases of `stores` answer, then check they are migrated (assertMigrated).
 * Used by `weft worker` and `weft server` at startup, so a process started while PostgreSQL is
 * down, starting up or restarting (a deploy that starts both, a container restart) waits for it
 * with capped, jittered backoff instead of exiting — for up to `timeoutMs`, then it fails with
 * the driver's last error. Errors that waiting cannot fix (wrong password, no such database) fail
 * at once. Logs once when it starts waiting, every 15 s while it waits, and once when connected.
 */
export async function waitForDatabase(
  stores: Stores,
  target: DatabaseTarget,
  options: {
    timeoutMs: number;
    logger?: ExecutorLogger;
    /** Also check, in split mode, that live events are heard on the run-ops databases. */
    liveEvents?: boolean;
  },
): Promise<void> {
  const databases: Array<[string, Executor]> = [['DATABASE_URL', stores.controlDb]];
  if (stores.runOpsDb !== stores.controlDb)
    databases.push(['RUN_OPS_DATABASE_URL', stores.runOpsDb]);
  for (const db of stores.runOpsDbs) {
    if (db === stores.runOpsDb || db === stores.controlDb) continue;
    const tags = stores
      .listLocations()
      .filter((l) => l.executor === db)
      .map((l) => l.tag);
    databases.push([`WEFT_LOCATIONS (location ${tags.join(', ')})`, db]);
  }
  const started = performance.now();
  let lastLog = 0;
  for (let failures = 0; ;) {
    let failed: { which: string; error: unknown } | undefined;
    for (const [which, db] of databases) {
      try {
        await db.query('select 1');
      } catch (error) {
        failed = { which, error };
        break;
      }
    }
    const waited = Math.round(performance.now() - started);
    if (!failed) {
      if (failures > 0)
        options.logger?.info(
          { waitedMs: waited, attempts: failures + 1 },
          'the database is up; continuing',
        );
      break;
    }
    const message = failed.error instanceof Error ? failed.error.message : String(failed.error);
    if (!isTransientDatabaseError(failed.error) || waited >= options.timeoutMs) {
      const why = isTransientDatabaseError(failed.error)
        ? `it did not accept connections within ${options.timeoutMs} ms (--connect-timeout / WEFT_CONNECT_TIMEOUT; raise it to wait longer)`
        : 'waiting would not help';
      throw new CliError(
        `cannot reach the database ${describeTarget(target)} (${failed.which}): ${message}; ${why}.`,
      );
    }
    failures++;
    if (failures === 1 || performance.now() - lastLog >= CONNECT_LOG_EVERY_MS) {
      lastLog = performance.now();
      options.logger?.warn(
        { database: failed.which, err: message, waitedMs: waited, timeoutMs: options.timeoutMs },
        failures === 1
          ? 'the database is not accepting connections yet; waiting for it (retrying with backoff)'
          : 'still waiting for the database',
      );
    }
    const exp = Math.min(
      CONNECT_RETRY_CAP_MS,
      CONNECT_RETRY_BASE_MS * 2 ** Math.min(failures - 1, 10),
    );
    const delay = Math.min(
      Math.round(exp / 2 + Math.random() * (exp / 2)),
      Math.max(0, options.timeoutMs - waited),
    );
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
  // split mode: the sentinel before anything else is read (split.ts); nothing with the split off
  await assertSplitAtBoot(stores, { liveEvents: options.liveEvents ?? false });
  await assertMigrated(stores, target);
}
