/**
 * The control-plane / run-ops split's boot checks (docs/scale.md, docs/operations.md "Split the
 * databases"). Split mode = run data in a database other than the control plane's:
 * `RUN_OPS_DATABASE_URL`, or a location with a URL of its own (`WEFT_LOCATIONS`, locations.ts).
 *
 * - **Distinct-database sentinel** (`assertSplitDatabases`): every run-ops database must be a
 *   different physical database from the control plane — compared by the cluster's
 *   `system_identifier` and `current_database()` — because nothing protects the data across the
 *   split (no foreign key, no cascade: the engine checks references in code and deletes a tenant's
 *   run data with cleanup jobs, cleanup-store.ts). It fails closed: when the identity cannot be
 *   read (unreachable, or the role may not execute `pg_control_system()`), the process refuses
 *   to start, naming the setting and the fix.
 * - **Live events on the run-events database** (`assertLiveEventsReachable`): the notifications
 *   of runs (events, wake-ups, cancels) are sent by the run-ops databases; each one's LISTEN
 *   connection must hear a NOTIFY sent through its own pool (a transaction-mode pooler, or a URL
 *   that lands elsewhere, would leave every live stream and wake-up silent).
 *
 * With the split off (one database) none of this runs: no probe, no query.
 */
import { randomBytes } from 'node:crypto';
import { WeftError } from '../core/errors.js';
import type { Executor } from './executor.js';
import type { Stores } from './stores.js';

/** A database that must not be the control plane's, and the setting that names it. */
export interface SplitTarget {
  setting: string;
  db: Executor;
}

const CONTROL_SETTING = 'DATABASE_URL';

/** What the split checks read of the stores (Stores fits). */
export interface SplitLayout {
  controlDb: Executor;
  runOpsDb: Executor;
  listLocations?: () => ReadonlyArray<{ tag: string; executor: Executor }>;
}

/** The run-ops databases that are not the control plane's, each with the setting that names it. */
export function splitTargets(stores: SplitLayout): SplitTarget[] {
  const targets: SplitTarget[] = [];
  const seen = new Set<Executor>([stores.controlDb]);
  if (!seen.has(stores.runOpsDb)) {
    targets.push({ setting: 'RUN_OPS_DATABASE_URL', db: stores.runOpsDb });
    seen.add(stores.runOpsDb);
  }
  for (const location of stores.listLocations?.() ?? []) {
    if (seen.has(location.executor)) continue;
    seen.add(location.executor);
    targets.push({ setting: `WEFT_LOCATIONS (location ${location.tag})`, db: location.executor });
  }
  return targets;
}

/** True when run data lives in a database other than the control plane's. */
export function isSplit(stores: SplitLayout): boolean {
  return splitTargets(stores).length > 0;
}

interface Identity {
  system: string;
  database: string;
}

const IDENTITY_SQL = `select (select system_identifier::text from pg_control_system()) as system, current_database() as database`;

async function identityOf(setting: string, db: Executor): Promise<Identity> {
  try {
    const rows = await db.query<{ system: string | null; database: string }>(IDENTITY_SQL);
    const r = rows.rows[0];
    if (!r?.system) throw new Error('pg_control_system() returned no system_identifier');
    return { system: r.system, database: r.database };
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    const permission = /permission denied/i.test(why);
    throw new WeftError(
      'invalid_config',
      `split mode: cannot verify that ${setting} is a different database from ${CONTROL_SETTING} — reading its identity (system_identifier from pg_control_system(), current_database()) failed: ${why}. ` +
        `Weft refuses to start unverified (fail closed): with the databases split, no foreign key or cascade protects run data, so both on one database must be ruled out. ` +
        (permission
          ? `Fix: let the role of ${setting} execute it (as a superuser: GRANT pg_monitor TO <role>; or GRANT EXECUTE ON FUNCTION pg_control_system() TO <role>), or unset ${setting} to keep everything in one database.`
          : `Fix: check that ${setting} (and ${CONTROL_SETTING}) are right and the database accepts connections, or unset ${setting} to keep everything in one database.`),
      { details: { setting, reason: permission ? 'probe_permission' : 'probe_failed' } },
    );
  }
}

/**
 * Refuse split mode when a run-ops database is the control plane's database: same cluster
 * (`system_identifier`) and same `current_database()`. PGlite is one database per process, so a
 * PGlite control plane or target is skipped (the CLI compares PGlite folders itself).
 */
export async function assertSplitDatabases(
  control: Executor,
  targets: readonly SplitTarget[],
): Promise<void> {
  const probed = targets.filter((t) => t.db.kind === 'postgres' && control.kind === 'postgres');
  if (probed.length === 0) return;
  const [own, ...theirs] = await Promise.all([
    identityOf(CONTROL_SETTING, control),
    ...probed.map((t) => identityOf(t.setting, t.db)),
  ]);
  probed.forEach((target, i) => {
    const other = theirs[i]!;
    if (other.system === own!.system && other.database === own!.database) {
      throw new WeftError(
        'invalid_config',
        `split mode: ${target.setting} and ${CONTROL_SETTING} reach the same physical database — database "${own!.database}" on the PostgreSQL server with system_identifier ${own!.system} (both answered the same system_identifier and current_database(), whatever their host names). ` +
          `Weft refuses to start: with the databases split, the foreign keys and cascades that protect run data do not exist, so one database under two names would lose that protection silently. ` +
          `Fix: create a separate database for run data (e.g. createdb weft_ops), point ${target.setting} at it and run \`weft migrate\`; or unset ${target.setting} to keep everything in one database.`,
        {
          details: {
            setting: target.setting,
            database: own!.database,
            systemIdentifier: own!.system,
          },
        },
      );
    }
  });
}

/** The sentinel for open stores: every run-ops database distinct from the control plane's. */
export async function assertSplitSafe(stores: Stores): Promise<void> {
  await assertSplitDatabases(stores.controlDb, splitTargets(stores));
}

/**
 * Boot check of live events in split mode: each run-ops database's LISTEN connection hears a
 * NOTIFY sent through its own pool within `timeoutMs` (live events, wake-ups and cancels are sent
 * by the database that holds the runs, so that is where the process must listen). Refuses with
 * the setting and the fix otherwise. Not run with the split off.
 */
export async function assertLiveEventsReachable(stores: Stores, timeoutMs = 5_000): Promise<void> {
  const targets = splitTargets(stores).filter((t) => t.db.kind === 'postgres');
  for (const target of targets) {
    const channel = `weft_probe_${randomBytes(6).toString('hex')}`;
    let heard!: () => void;
    const arrived = new Promise<void>((resolve) => (heard = resolve));
    let unlisten: (() => Promise<void>) | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      unlisten = await target.db.listen(channel, () => heard());
      await target.db.query('select pg_notify($1, $2)', [channel, 'probe']);
      const ok = await Promise.race([
        arrived.then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
      ]);
      if (!ok) {
        throw new WeftError(
          'invalid_config',
          `split mode: live events would never arrive — the LISTEN connection of ${target.setting} did not hear a NOTIFY sent through the same setting within ${timeoutMs} ms, so run events, wake-ups and cancels (sent by the database that holds the runs) would reach nobody. ` +
            `Fix: point ${target.setting} at the PostgreSQL server itself or at a session-mode pooler (a transaction-mode pooler such as PgBouncer in transaction mode drops LISTEN), and check the database accepts LISTEN.`,
          { details: { setting: target.setting } },
        );
      }
    } catch (error) {
      if (error instanceof WeftError) throw error;
      throw new WeftError(
        'invalid_config',
        `split mode: cannot check live events on ${target.setting}: ${error instanceof Error ? error.message : String(error)}. Fix: check that ${target.setting} is right and the database accepts connections and LISTEN.`,
        { details: { setting: target.setting } },
      );
    } finally {
      clearTimeout(timer);
      await unlisten?.().catch(() => {});
    }
  }
}
