/**
 * Opening the stores: executors for the control plane and run-ops databases, migrations, and the
 * ControlStore / RunStore over them. One database by default (no extra cost); a separate run-ops
 * database when configured (docs/scale.md), guarded by the distinct-database sentinel.
 */
import { assertLocationTag } from '../core/ids.js';
import { WeftError } from '../core/errors.js';
import { DEFAULT_LOCATION_TAG, type LocationInfo } from './locations.js';
import type { SecretBox } from '../core/secret-box.js';
import { AuditStore } from './audit-store.js';
import { ControlStore, type ControlConsistency } from './control-store.js';
import { assertSplitDatabases, splitTargets } from './split.js';
import type { Executor, ExecutorLogger } from './executor.js';
import { migrateSchema, schemaBehind } from './migrator.js';
import type { PgExecutorOptions } from './pg-executor.js';
import { RunStore, type RunLocation } from './run-store.js';
import { ScheduleStore } from './schedule-store.js';
import { WebhookStore } from './webhook-store.js';

export { DEFAULT_LOCATION_TAG } from './locations.js';
export type { LocationInfo } from './locations.js';

export interface StoresOptions {
  control: Executor;
  /** Run-ops database; the control database when omitted. */
  runOps?: Executor;
  /** Schema name prefix: `<prefix>` (control), `<prefix>_ops`, `<prefix>_loc_<tag>`. Default `weft`. */
  schemaPrefix?: string;
  /** Location tags in the run-ops database. Default `["a0"]`. */
  locationTags?: string[];
  /**
   * Locations in several run-ops databases (src/store/locations.ts): `executor` omitted = the
   * run-ops database. Wins over `locationTags`. `url` is only reported back (listLocations).
   */
  locations?: Array<{ tag: string; executor?: Executor; url?: string }>;
  /** Where new runs go. Default: the first tag. */
  defaultLocationTag?: string;
  /**
   * How cached control-plane rows follow other processes' changes (control-store.ts): `strict`
   * (default in split mode: a change committed before a request is applied before it is served)
   * or `notify` (default with one database: no round trip added). `WEFT_CONTROL_CONSISTENCY`.
   */
  controlConsistency?: ControlConsistency;
  /** Keys that seal webhook secrets. Default: `WEFT_SECRET_KEY` / `WEFT_SECRET_KEY_PREVIOUS`. */
  secrets?: SecretBox;
}

/**
 * Why the stores can or cannot serve. `unreachable`: a database did not answer a trivial query
 * (down, wrong URL, closed pool). `not_migrated`: it answers, but a schema lacks migrations this
 * build knows (run `weft migrate`, or deploy the matching version).
 */
export type Readiness =
  | { ready: true }
  | { ready: false; reason: 'unreachable'; database: 'control' | 'run_ops'; message: string }
  | {
      ready: false;
      reason: 'not_migrated';
      schemas: string[];
      /** Per schema behind: what is missing (migrations, or SQL functions by hash) and the fix. */
      details: string[];
    };

export interface Stores {
  control: ControlStore;
  runs: RunStore;
  schedules: ScheduleStore;
  webhooks: WebhookStore;
  audit: AuditStore;
  controlDb: Executor;
  runOpsDb: Executor;
  schemas: { control: string; ops: string; locations: string[] };
  /** Every configured location: tag, URL, schema, executor (docs/scale.md). */
  listLocations(): LocationInfo[];
  /** Every distinct run-ops database (the home one first). */
  runOpsDbs: Executor[];
  migrate(): Promise<string[]>;
  isReady(): Promise<boolean>;
  /** Like isReady, with the reason: unreachable (which database) or not migrated (which schemas). */
  readiness(): Promise<Readiness>;
  close(): Promise<void>;
}

export function createStores(options: StoresOptions): Stores {
  const prefix = options.schemaPrefix ?? 'weft';
  const controlDb = options.control;
  const runOpsDb = options.runOps ?? options.control;
  const configured: Array<{ tag: string; executor?: Executor; url?: string }> =
    options.locations ?? (options.locationTags ?? [DEFAULT_LOCATION_TAG]).map((tag) => ({ tag }));
  const tags = configured.map((l) => l.tag);
  tags.forEach(assertLocationTag);
  const opsSchema = `${prefix}_ops`;
  const locations: RunLocation[] = configured.map((l) => ({
    tag: l.tag,
    db: l.executor ?? runOpsDb,
    schema: `${prefix}_loc_${l.tag}`,
    opsSchema,
  }));
  // One executor per distinct database; the home run-ops database first (it holds the ops
  // tables every location shares: cross-database idempotency claims, bulk reruns).
  const runOpsDbs = [...new Set<Executor>([runOpsDb, ...locations.map((l) => l.db)])];
  const defaultTag = options.defaultLocationTag ?? tags[0]!;
  // split mode: run data in a database other than the control plane's (split.ts)
  const split = runOpsDbs.some((db) => db !== controlDb);
  const control = new ControlStore(
    controlDb,
    prefix,
    options.controlConsistency ?? (split ? 'strict' : 'notify'),
  );
  const runs = new RunStore(locations, defaultTag, { db: runOpsDb, opsSchema });
  const schedules = new ScheduleStore(controlDb, prefix, () => runs.locations.values());
  const schemas = { control: prefix, ops: opsSchema, locations: locations.map((l) => l.schema) };
  const webhooks = new WebhookStore(controlDb, prefix, options.secrets);
  const audit = new AuditStore(controlDb, prefix);
  const readiness = async (): Promise<Readiness> => {
    const databases: Array<['control' | 'run_ops', Executor]> = [['control', controlDb]];
    for (const db of runOpsDbs) if (db !== controlDb) databases.push(['run_ops', db]);
    for (const [database, db] of databases) {
      try {
        await db.query('select 1');
      } catch (error) {
        return { ready: false, reason: 'unreachable', database, message: String(error) };
      }
    }
    // Migrations applied and the SQL functions this build ships (by hash): a process that does not
    // migrate refuses functions it does not know (migrator.ts).
    const checks: Array<[string, Promise<string | null>]> = [
      [prefix, schemaBehind(controlDb, 'control', prefix)],
      ...runOpsDbs.map((db, i): [string, Promise<string | null>] => [
        i === 0 ? opsSchema : `${opsSchema} (database of ${locationsIn(db)})`,
        schemaBehind(db, 'ops', opsSchema),
      ]),
      ...locations.map((l): [string, Promise<string | null>] => [
        l.schema,
        schemaBehind(l.db, 'location', l.schema),
      ]),
    ];
    let verdicts: Array<string | null>;
    try {
      verdicts = await Promise.all(checks.map(([, check]) => check));
    } catch (error) {
      // a check that could not run (a new connection refused mid-outage) is not "not migrated"
      const database = controlDb === runOpsDbs[0] ? 'control' : 'run_ops';
      return { ready: false, reason: 'unreachable', database, message: String(error) };
    }
    const behind = checks.filter((_, i) => verdicts[i] !== null).map(([schema]) => schema);
    return behind.length === 0
      ? { ready: true }
      : {
          ready: false,
          reason: 'not_migrated',
          schemas: behind,
          details: verdicts.filter((v): v is string => v !== null),
        };
  };
  const locationsIn = (db: Executor): string =>
    locations
      .filter((l) => l.db === db)
      .map((l) => l.tag)
      .join(', ');
  const urls = new Map(configured.map((l) => [l.tag, l.url]));
  return {
    control,
    runs,
    schedules,
    webhooks,
    audit,
    controlDb,
    runOpsDb,
    runOpsDbs,
    schemas,
    listLocations: () =>
      locations.map((l) => ({
        tag: l.tag,
        url: urls.get(l.tag),
        schema: l.schema,
        opsSchema: l.opsSchema,
        executor: l.db,
        isDefault: l.tag === defaultTag,
        home: l.db === runOpsDb,
      })),
    async migrate() {
      // the distinct-database sentinel (split.ts): fails closed, before anything is written
      if (split)
        await assertSplitDatabases(
          controlDb,
          splitTargets({
            controlDb,
            runOpsDb,
            listLocations: () => locations.map((l) => ({ tag: l.tag, executor: l.db })),
          }),
        );
      const applied: string[] = [];
      const note = (r: { schema: string; applied: string[] }) =>
        applied.push(...r.applied.map((a) => `${r.schema}.${a}`));
      note(await migrateSchema(controlDb, 'control', prefix));
      // every run-ops database gets the ops schema (claims are kept in the home one only) and
      // the run tables of each location it holds
      for (const db of runOpsDbs) note(await migrateSchema(db, 'ops', opsSchema));
      for (const loc of locations)
        note(await migrateSchema(loc.db, 'location', loc.schema, { tag: loc.tag }));
      return applied;
    },
    async isReady() {
      return (await readiness()).ready;
    },
    readiness,
    async close() {
      await controlDb.close();
      for (const db of runOpsDbs) if (db !== controlDb) await db.close();
    },
  };
}

/**
 * Split mode must really be split: refuse when `b` reaches the same physical database as the
 * control plane `a` (split.ts; fails closed when the probe fails). Kept for embedders.
 */
export async function assertDistinctDatabases(a: Executor, b: Executor): Promise<void> {
  await assertSplitDatabases(a, [{ setting: 'RUN_OPS_DATABASE_URL', db: b }]);
}

/** Open an executor from a URL: `postgres://…`, `pglite:<dir>` or `pglite:memory`. */
export async function openExecutor(
  url: string,
  options: { poolSize?: number; applicationName?: string; logger?: ExecutorLogger } = {},
): Promise<Executor> {
  if (url.startsWith('pglite:')) {
    const dir = url.slice('pglite:'.length);
    const { createPgliteExecutor } = await loadDriver(
      () => import('./pglite-executor.js'),
      '@electric-sql/pglite',
      'An embedded database (pglite:…, what `weft dev` uses)',
    );
    // WEFT_PGLITE_DURABILITY=os trades the flush per commit for losing recent commits to an OS
    // crash (pglite-executor.ts, docs/semantics.md); anything else keeps the default, `fsync`.
    const durability = process.env.WEFT_PGLITE_DURABILITY === 'os' ? 'os' : 'fsync';
    return createPgliteExecutor(dir === 'memory' || dir === '' ? {} : { dataDir: dir, durability });
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    const { createPgExecutor } = await loadDriver(
      () => import('./pg-executor.js'),
      'pg',
      'A PostgreSQL database (postgres://…)',
    );
    const opts: PgExecutorOptions = { connectionString: url };
    if (options.poolSize !== undefined) opts.max = options.poolSize;
    if (options.applicationName !== undefined) opts.applicationName = options.applicationName;
    if (options.logger !== undefined) opts.logger = options.logger;
    return createPgExecutor(opts);
  }
  throw new WeftError(
    'invalid_config',
    `database URL "${url.replace(/\/\/[^@]*@/, '//***@')}" is not supported: use postgres://…, pglite:<directory> or pglite:memory`,
  );
}

/**
 * The drivers are optional dependencies of the package (installed by default; an embedder may
 * leave out the one it does not use): each is loaded only when a URL needs it, and a missing one
 * is an error that names the package to install.
 */
async function loadDriver<T>(load: () => Promise<T>, pkg: string, what: string): Promise<T> {
  try {
    return await load();
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (e.code === 'ERR_MODULE_NOT_FOUND' && e.message.includes(`'${pkg}'`)) {
      throw new WeftError(
        'invalid_config',
        `${what} needs the ${pkg} package, which is not installed (it is an optional dependency of weft, left out of this install). Install it next to weft: npm install ${pkg}`,
      );
    }
    throw error;
  }
}
