/**
 * Cleanup of a deleted tenant's run data. No foreign key crosses the control-plane / run-ops split
 * (the run tables may live in other databases), so deleting an environment, a project or an
 * organization (ControlStore.deleteEnvironment / deleteProject / deleteOrganization) records one
 * `cleanup_jobs` row per environment in the same control transaction as the delete, and this
 * store works the jobs off in every location and every run-ops database.
 *
 * Documented choice: run data is **deleted**, not archived (an operator who wants an archive
 * exports first: docs/operations.md). The control plane's audit log keeps its rows (it records
 * the deletion itself).
 *
 * - **Bounded**: one batch deletes at most `batchSize` runs of one location with their step runs,
 *   attempts, waitpoints, events, event watchers and dataclips, by id, in one statement (no
 *   reliance on cascades: a location's tables have no foreign keys since location 0010);
 *   `runOnce` does at most `maxBatches` batches.
 * - **Resumable**: every batch is its own transaction and selects by environment id, so a crash
 *   (or a lost lease) repeats nothing that committed; the next pass, here or in another process,
 *   continues where the rows left off. A job is done only after a full pass over every table found
 *   nothing to delete.
 * - **Grace**: a job starts `graceMs` after the delete (default 15 s: three times the control
 *   cache TTL), so a trigger another process accepted on a cached environment row just before the
 *   delete has landed before the sweep; the last pass then finds it.
 * - **Concurrency**: a job is leased (`lease_owner`, `lease_expires_at`, claimed with SKIP LOCKED),
 *   so several processes running cleanup work on different jobs.
 *
 * Indexes: cleanup_jobs_pending; runs_env_created (environment_id first); step_runs (run_id,
 * step_key) unique; attempts primary key (step_run_id first); waitpoints_step; run_events_run;
 * run_event_watchers primary key; dataclips_run; idempotency_keys primary key;
 * bulk_reruns_environment (ops 0004). Dataclips with no run (rare) are found by a scan.
 */
import { WeftError } from '../core/errors.js';
import { parseDuration, type Duration } from '../core/retry.js';
import type { Executor } from './executor.js';
import { quoteIdent } from './migrator.js';
import type { Stores } from './stores.js';

export interface CleanupPass {
  /** Environments worked on in this pass. */
  environments: string[];
  /** Environments whose cleanup finished in this pass. */
  finished: string[];
  /** Rows deleted, by table. */
  deleted: Record<string, number>;
  batches: number;
}

export interface CleanupJob {
  environmentId: string;
  organizationId: string;
  projectId: string;
  reason: 'environment' | 'project' | 'organization';
  status: 'pending' | 'done';
  deleted: Record<string, number>;
  batches: number;
  requestedAt: string;
  doneAt: string | null;
}

export const CLEANUP_GRACE_MS = 15_000;

export class CleanupStore {
  private readonly control: Executor;
  private readonly s: string;
  private readonly attemptTables = new Map<string, Promise<string>>();

  constructor(private readonly stores: Stores) {
    this.control = stores.controlDb;
    this.s = quoteIdent(stores.schemas.control);
  }

  /** Jobs, newest first (for operators and tests). */
  async listJobs(): Promise<CleanupJob[]> {
    const rows = await this.control.query<Record<string, unknown>>(
      `select * from ${this.s}.cleanup_jobs order by requested_at desc, environment_id`,
    );
    return rows.rows.map((r) => ({
      environmentId: r.environment_id as string,
      organizationId: r.organization_id as string,
      projectId: r.project_id as string,
      reason: r.reason as CleanupJob['reason'],
      status: r.status as CleanupJob['status'],
      deleted: r.deleted as Record<string, number>,
      batches: Number(r.batches),
      requestedAt: new Date(r.requested_at as string).toISOString(),
      doneAt: r.done_at ? new Date(r.done_at as string).toISOString() : null,
    }));
  }

  /**
   * Work on pending jobs: claim one at a time (lease), delete in batches until it is done or
   * `maxBatches` batches were spent in this call. Safe to call from several processes at once.
   */
  async runOnce(
    options: {
      owner?: string;
      batchSize?: number;
      maxBatches?: number;
      graceMs?: number;
      leaseMs?: number;
    } = {},
  ): Promise<CleanupPass> {
    const owner = options.owner ?? `pid-${process.pid}`;
    const batchSize = options.batchSize ?? 500;
    const maxBatches = options.maxBatches ?? 50;
    const graceMs = options.graceMs ?? CLEANUP_GRACE_MS;
    const leaseMs = options.leaseMs ?? 60_000;
    const pass: CleanupPass = { environments: [], finished: [], deleted: {}, batches: 0 };
    while (pass.batches < maxBatches) {
      const job = await this.claim(owner, graceMs, leaseMs, pass.environments);
      if (!job) break;
      pass.environments.push(job);
      let clean = false;
      while (!clean && pass.batches < maxBatches) {
        const counts = await this.sweep(job, batchSize);
        pass.batches++;
        const total = Object.values(counts).reduce((a, b) => a + b, 0);
        for (const [table, n] of Object.entries(counts))
          pass.deleted[table] = (pass.deleted[table] ?? 0) + n;
        clean = total === 0;
        await this.control.query(
          `update ${this.s}.cleanup_jobs
              set deleted = (select coalesce(jsonb_object_agg(k, coalesce((deleted ->> k)::bigint, 0) + coalesce((($3::jsonb) ->> k)::bigint, 0)), '{}')
                               from jsonb_object_keys(deleted || $3::jsonb) k),
                  batches = batches + 1, updated_at = now(),
                  lease_expires_at = now() + $4 * interval '1 millisecond',
                  status = case when $5 then 'done' else status end,
                  done_at = case when $5 then now() else done_at end,
                  lease_owner = case when $5 then null else lease_owner end
            where environment_id = $1 and lease_owner = $2`,
          [job, owner, JSON.stringify(counts), leaseMs, clean],
        );
      }
      if (clean) pass.finished.push(job);
      else break; // out of batches for this call; the lease lets this process resume it next time
    }
    return pass;
  }

  private async claim(
    owner: string,
    graceMs: number,
    leaseMs: number,
    skip: string[],
  ): Promise<string | undefined> {
    const rows = await this.control.query<{ environment_id: string }>(
      `update ${this.s}.cleanup_jobs j
          set lease_owner = $1, lease_expires_at = now() + $3 * interval '1 millisecond', updated_at = now()
        where j.environment_id = (
          select c.environment_id from ${this.s}.cleanup_jobs c
           where c.status = 'pending'
             and c.requested_at <= now() - $2 * interval '1 millisecond'
             and (c.lease_expires_at is null or c.lease_expires_at < now() or c.lease_owner = $1)
             and not (c.environment_id = any($4::text[]))
           order by c.requested_at
           limit 1
           for update skip locked)
        returning j.environment_id`,
      [owner, graceMs, leaseMs, skip],
    );
    return rows.rows[0]?.environment_id;
  }

  /**
   * Where attempt rows are stored: `attempts`, or `attempt_rows` where a location migration made
   * `attempts` a view over it (location 0010). Asked once per location schema.
   */
  private attemptsTable(db: Executor, schema: string): Promise<string> {
    let known = this.attemptTables.get(schema);
    if (!known) {
      known = db
        .query<{ rows: boolean }>(`select to_regclass($1) is not null as rows`, [
          `${schema}.attempt_rows`,
        ])
        .then((r) => (r.rows[0]?.rows ? 'attempt_rows' : 'attempts'));
      this.attemptTables.set(schema, known);
      known.catch(() => this.attemptTables.delete(schema));
    }
    return known;
  }

  /** One bounded batch in every location and run-ops database; rows deleted, by table. */
  private async sweep(environmentId: string, batchSize: number): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    const add = (table: string, n: unknown) => {
      counts[table] = (counts[table] ?? 0) + Number(n);
    };
    for (const loc of this.stores.runs.locations.values()) {
      const l = loc.schema;
      const attempts = await this.attemptsTable(loc.db, l);
      // One statement: the batch's runs and everything hanging off them, by id (explicit deletes:
      // the location's tables need not have foreign keys, location 0010). All sub-statements see
      // one snapshot, so the step runs are read before any is deleted.
      const rows = await loc.db.query<Record<string, string>>(
        `with doomed as (
           select id from ${l}.runs where environment_id = $1 order by created_at, id limit $2
         ), steps as (
           select id from ${l}.step_runs where run_id in (select id from doomed)
         ), at as (
           delete from ${l}.${attempts} where step_run_id in (select id from steps) returning 1
         ), wp as (
           delete from ${l}.waitpoints where step_run_id in (select id from steps) returning 1
         ), sr as (
           delete from ${l}.step_runs where id in (select id from steps) returning 1
         ), ev as (
           delete from ${l}.run_events where run_id in (select id from doomed) returning 1
         ), wa as (
           delete from ${l}.run_event_watchers where run_id in (select id from doomed) returning 1
         ), dc as (
           delete from ${l}.dataclips where run_id in (select id from doomed) returning 1
         ), ru as (
           delete from ${l}.runs where id in (select id from doomed) returning 1
         )
         select (select count(*) from ru) as runs, (select count(*) from sr) as step_runs,
                (select count(*) from at) as attempts, (select count(*) from wp) as waitpoints,
                (select count(*) from ev) as run_events, (select count(*) from wa) as run_event_watchers,
                (select count(*) from dc) as dataclips`,
        [environmentId, batchSize],
      );
      for (const [table, n] of Object.entries(rows.rows[0] ?? {})) add(table, n);
      // Dataclips of no run (a webhook request that started nothing): by environment, bounded.
      const loose = await loc.db.query(
        `delete from ${l}.dataclips where id in (
           select id from ${l}.dataclips where environment_id = $1 limit $2)
         returning 1`,
        [environmentId, batchSize],
      );
      add('dataclips', loose.rows.length);
    }
    for (const db of this.stores.runOpsDbs) {
      const ops = this.stores.schemas.ops;
      const keys = await db.query(
        `delete from ${ops}.idempotency_keys where (environment_id, workflow_id, key) in (
           select environment_id, workflow_id, key from ${ops}.idempotency_keys
            where environment_id = $1 limit $2)
         returning 1`,
        [environmentId, batchSize],
      );
      add('idempotency_keys', keys.rows.length);
      const bulk = await db.query(
        `delete from ${ops}.bulk_reruns where id in (
           select id from ${ops}.bulk_reruns where environment_id = $1 limit $2)
         returning 1`,
        [environmentId, batchSize],
      );
      add('bulk_reruns', bulk.rows.length);
    }
    return counts;
  }
}

/** What a cleanup loop logs through (pino fits). */
interface CleanupLogger {
  info(data: Record<string, unknown>, message: string): void;
  warn(data: Record<string, unknown>, message: string): void;
}

/**
 * `WEFT_CLEANUP_INTERVAL` (default 30s; `off`: this process cleans nothing) and
 * `WEFT_CLEANUP_GRACE` (default 15s): how often a process works on cleanup jobs, and how long after
 * a delete a job waits. A bad value names the variable.
 */
export function cleanupSettings(env: Readonly<Record<string, string | undefined>> = process.env): {
  intervalMs: number | false;
  graceMs: number;
} {
  const read = (name: string, fallback: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    try {
      return parseDuration((/^\d+$/.test(raw) ? Number(raw) : raw) as Duration, name);
    } catch {
      throw new WeftError(
        'invalid_config',
        `${name} must be a duration like "500ms", "30s" or "5m"${name === 'WEFT_CLEANUP_INTERVAL' ? ' (or "off": another process cleans)' : ''}; found ${JSON.stringify(raw)}.`,
      );
    }
  };
  return {
    intervalMs: env.WEFT_CLEANUP_INTERVAL === 'off' ? false : read('WEFT_CLEANUP_INTERVAL', 30_000),
    graceMs: read('WEFT_CLEANUP_GRACE', CLEANUP_GRACE_MS),
  };
}

/**
 * Run cleanup passes every `intervalMs` in a long-lived process (`weft server`, `weft worker`).
 * One query per interval when there is nothing to clean (an index probe of cleanup_jobs_pending).
 * Returns a function that stops it (waiting for a pass in progress). Settings: cleanupSettings().
 */
export function startCleanupLoop(
  stores: Stores,
  logger: CleanupLogger,
  options: { intervalMs?: number | false; graceMs?: number; owner?: string } = {},
): () => Promise<void> {
  const settings = cleanupSettings();
  const intervalMs = options.intervalMs ?? settings.intervalMs;
  if (intervalMs === false) return async () => {};
  const graceMs = options.graceMs ?? settings.graceMs;
  const cleanup = new CleanupStore(stores);
  let running: Promise<void> | undefined;
  let stopped = false;
  const tick = () => {
    if (running || stopped) return;
    running = cleanup
      .runOnce({ graceMs, ...(options.owner ? { owner: options.owner } : {}) })
      .then((pass) => {
        if (pass.batches > 0 && Object.values(pass.deleted).some((n) => n > 0))
          logger.info(
            { environments: pass.environments, finished: pass.finished, deleted: pass.deleted },
            'cleaned run data of deleted environments',
          );
        else if (pass.finished.length > 0)
          logger.info({ finished: pass.finished }, 'cleanup of deleted environments finished');
      })
      .catch((error: unknown) =>
        logger.warn({ err: String(error) }, 'cleanup of deleted environments failed; retrying'),
      )
      .finally(() => (running = undefined));
  };
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return async () => {
    stopped = true;
    clearInterval(timer);
    await running;
  };
}
