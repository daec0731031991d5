/**
 * Which database a command talks to: a server named by `DATABASE_URL` (plus an optional
 * `RUN_OPS_DATABASE_URL` for the run-ops split, see SCALE.md), or the PGlite folder of `weft dev`.
 * Opening goes through src/store/stores.ts; the CLI never touches a driver.
 */
import { createStores, openExecutor, type Stores } from '../store/stores.js';
import { acquireDataDirLock, databaseDir, displayPath } from './local-state.js';
import { CliError } from './output.js';

export type DatabaseTarget =
  { kind: 'url'; url: string; runOpsUrl: string | undefined } | { kind: 'dev'; dataDir: string };

/** Hide the password of a URL before printing it. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

/** `DATABASE_URL` (or `--database-url`), required: what `weft worker` and `weft migrate` run against. */
export function serverDatabase(option: string | undefined, command: string): DatabaseTarget {
  const url = option ?? process.env.DATABASE_URL;
  if (!url) {
    throw new CliError(
      `weft ${command} needs a database: set DATABASE_URL (e.g. DATABASE_URL=postgres://user:password@host:5432/weft) or pass --database-url. For local development use \`weft dev\`, which needs no database.`,
    );
  }
  return { kind: 'url', url, runOpsUrl: process.env.RUN_OPS_DATABASE_URL || undefined };
}

/** `DATABASE_URL` when set, else the PGlite folder of `weft dev` (the `weft keys` commands). */
export function serverOrDevDatabase(option: string | undefined, dataDir: string): DatabaseTarget {
  const url = option ?? process.env.DATABASE_URL;
  return url
    ? { kind: 'url', url, runOpsUrl: process.env.RUN_OPS_DATABASE_URL || undefined }
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
  options: { applicationName: string; poolSize?: number; lockAs?: string },
): Promise<OpenedStores> {
  let release = (): void => {};
  try {
    if (target.kind === 'dev') {
      release = acquireDataDirLock(
        target.dataDir,
        options.lockAs ?? `weft ${options.applicationName}`,
      );
      const control = await openExecutor(`pglite:${databaseDir(target.dataDir)}`);
      const stores = createStores({ control });
      return { stores, close: async () => void (await stores.close().finally(release)) };
    }
    const common: { applicationName: string; poolSize?: number } = {
      applicationName: options.applicationName,
    };
    if (options.poolSize !== undefined) common.poolSize = options.poolSize;
    const control = await openExecutor(target.url, common);
    const runOps = target.runOpsUrl ? await openExecutor(target.runOpsUrl, common) : undefined;
    const stores = createStores(runOps ? { control, runOps } : { control });
    return { stores, close: () => stores.close() };
  } catch (error) {
    release();
    throw error;
  }
}

/**
 * Fail with the fix when the schema is not migrated. A worker does not migrate on its own: in
 * production migrations are a deliberate step (`weft migrate`), run once per deploy.
 */
export async function assertMigrated(stores: Stores, target: DatabaseTarget): Promise<void> {
  if (await stores.isReady()) return;
  // isReady() reads "unreachable" as "not ready"; a trivial round trip tells the two apart.
  try {
    await stores.controlDb.query('select 1');
  } catch (error) {
    throw new CliError(
      `cannot reach the database ${describeTarget(target)}: ${(error as Error).message}`,
    );
  }
  throw new CliError(
    `the database ${describeTarget(target)} is not migrated to this version of Weft. Run \`weft migrate\` (same DATABASE_URL) first.`,
  );
}
