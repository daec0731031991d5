/**
 * Run queries: reads of runs, step runs, dataclips and counts by id (one location) or by predicate
 * (every location, merged), keyset cursors for the runs list, and the metrics snapshot. No writes.
 */
import { WeftError } from '../../core/errors.js';
import { createHash } from 'node:crypto';
import { parseRunScopedId } from '../../core/ids.js';
import type {
  AttemptRecord,
  DataclipRecord,
  RunRecord,
  RunStatus,
  StepRunRecord,
  StepRunStatus,
} from '../rows.js';
import { iso, isoOrNull, RUN_COLUMNS, toRun, type Row } from './decoders.js';
import type { RunResources } from './resources.js';

export interface ListRunsQuery {
  environmentId: string;
  workflowId?: string;
  statuses?: RunStatus[];
  createdFrom?: string;
  createdTo?: string;
  limit: number;
  cursor?: string;
  /**
   * Only these runs (at most 100): only the locations their ids name are queried (no query at all
   * when every id is malformed).
   */
  runIds?: string[];
  /**
   * The location tags that can hold the environment's runs (its organization's history,
   * engine/cutover.ts readLocations); every location when omitted.
   */
  locations?: string[];
}

/**
 * Keyset cursor: the (created_at, id) of the last row, created_at exact to the microsecond, and a
 * fingerprint of the query it pages (environment and filters), so that a cursor of another query
 * (a foreign cursor) is refused instead of silently skipping or repeating rows.
 */
interface Cursor {
  t: string;
  id: string;
  q?: string;
}

function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify([c.t, c.id, c.q])).toString('base64url');
}

/**
 * What a cursor is bound to: the environment and every filter (not the limit). Shared with the
 * ClickHouse list (src/analytics/run-analytics.ts), so a cursor of either source continues on the other.
 */
export function queryFingerprint(q: ListRunsQuery): string {
  const key = JSON.stringify([
    q.environmentId,
    q.workflowId ?? null,
    [...new Set(q.statuses ?? [])].sort(),
    q.createdFrom ?? null,
    q.createdTo ?? null,
    q.runIds ? [...new Set(q.runIds)].sort() : null,
  ]);
  return createHash('sha256').update(key).digest('base64url').slice(0, 12);
}

/**
 * Exactly what encodeCursor writes (created_at to the microsecond, UTC) and a date that exists:
 * the cursor comes from the client, and a value PostgreSQL cannot cast (month 13, year 0000) or
 * a `\u0000` in the id would otherwise fail the query instead of being an invalid cursor.
 */
function isCursorTime(t: string): boolean {
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(t) || t < '0001') return false;
  const ms = Date.parse(t);
  return !Number.isNaN(ms) && new Date(ms).toISOString().slice(0, 19) === t.slice(0, 19);
}

function decodeCursor(cursor: string): Cursor {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (
      Array.isArray(parsed) &&
      (parsed.length === 2 || (parsed.length === 3 && typeof parsed[2] === 'string')) &&
      typeof parsed[0] === 'string' &&
      typeof parsed[1] === 'string' &&
      isCursorTime(parsed[0]) &&
      parseRunScopedId(parsed[1])?.prefix === 'run'
    ) {
      // a cursor of an earlier build carries no fingerprint: accepted as before
      return parsed.length === 3
        ? { t: parsed[0], id: parsed[1], q: parsed[2] as string }
        : { t: parsed[0], id: parsed[1] };
    }
  } catch {
    // fall through
  }
  throw new WeftError(
    'invalid_cursor',
    `cursor "${cursor.slice(0, 40)}" is not a cursor this API issued; pass the nextCursor of a previous page, or omit it for the first page.`,
  );
}

export class RunQueries {
  constructor(private readonly r: RunResources) {}

  async getRun(environmentId: string, runId: string): Promise<RunRecord | undefined> {
    const loc = this.r.locationOf(runId);
    if (!loc) return undefined;
    // By primary key alone, the environment compared here: with `and environment_id = $2` in the
    // statement, a table not yet analyzed (a fresh database's first minute, a burst) let the
    // planner take runs_env_workflow_status by environment and filter every run of it by id
    // (1,627 buffers for one run at 2,100 runs), where the key reads 3.
    const rows = await loc.db.query<Row>(
      `select ${RUN_COLUMNS} from ${loc.schema}.runs where id = $1`,
      [runId],
    );
    const row = rows.rows[0];
    return row && row.environment_id === environmentId ? toRun(row) : undefined;
  }

  /**
   * How many step runs of a run are in each status, in one query on the run's location (an index
   * range scan of `unique (run_id, step_key)`); every status is present, zero when none. Undefined
   * when the run does not exist in the environment.
   */
  async countStepRuns(
    environmentId: string,
    runId: string,
  ): Promise<Record<StepRunStatus, number> | undefined> {
    const loc = this.r.locationOf(runId);
    if (!loc) return undefined;
    const rows = await loc.db.query<{ status: StepRunStatus | null; n: number }>(
      `select s.status, count(s.id)::int as n
         from ${loc.schema}.runs r left join ${loc.schema}.step_runs s on s.run_id = r.id
        where r.id = $1 and r.environment_id = $2
        group by s.status`,
      [runId, environmentId],
    );
    if (rows.rows.length === 0) return undefined;
    const counts: Record<StepRunStatus, number> = {
      pending: 0,
      ready: 0,
      running: 0,
      waiting: 0,
      succeeded: 0,
      failed: 0,
      pruned: 0,
      canceled: 0,
    };
    for (const r of rows.rows) if (r.status !== null) counts[r.status] = Number(r.n);
    return counts;
  }

  /**
   * What `GET /metrics` reports from the database, over every location: step runs ready now
   * (queue depth), ready but not yet due (retry backoff), and running, by environment and
   * workflow (partial indexes step_runs_ready and step_runs_leases); and runs in an active status
   * (queued, running, waiting, paused). The runs count reads index runs_env_workflow_status,
   * which also holds finished runs: a scrape costs a scan of that index (tens of ms at 1M runs).
   * A partial index on active runs would make it proportional to the active set.
   */
  async metricsSnapshot(): Promise<{
    steps: Array<{
      environmentId: string;
      workflowId: string;
      state: 'ready' | 'delayed' | 'running';
      count: number;
    }>;
    runs: Array<{ environmentId: string; workflowId: string; status: RunStatus; count: number }>;
  }> {
    const parts = await Promise.all(
      [...this.r.locations.values()].map(async (loc) => {
        const [steps, runs] = await Promise.all([
          loc.db.query<{ environment_id: string; workflow_id: string; state: string; n: number }>(
            `select environment_id, workflow_id,
                    case when status = 'running' then 'running' when available_at <= now() then 'ready' else 'delayed' end as state,
                    count(*)::int as n
               from ${loc.schema}.step_runs where status in ('ready', 'running')
              group by 1, 2, 3`,
          ),
          loc.db.query<{ environment_id: string; workflow_id: string; status: string; n: number }>(
            `select environment_id, workflow_id, status, count(*)::int as n
               from ${loc.schema}.runs where status in ('queued', 'running', 'waiting', 'paused')
              group by 1, 2, 3`,
          ),
        ]);
        return { steps: steps.rows, runs: runs.rows };
      }),
    );
    const steps = new Map<
      string,
      {
        environmentId: string;
        workflowId: string;
        state: 'ready' | 'delayed' | 'running';
        count: number;
      }
    >();
    const runs = new Map<
      string,
      { environmentId: string; workflowId: string; status: RunStatus; count: number }
    >();
    for (const part of parts) {
      for (const r of part.steps) {
        const key = `${r.environment_id}\u0000${r.workflow_id}\u0000${r.state}`;
        const entry = steps.get(key) ?? {
          environmentId: r.environment_id,
          workflowId: r.workflow_id,
          state: r.state as 'ready' | 'delayed' | 'running',
          count: 0,
        };
        entry.count += Number(r.n);
        steps.set(key, entry);
      }
      for (const r of part.runs) {
        const key = `${r.environment_id}\u0000${r.workflow_id}\u0000${r.status}`;
        const entry = runs.get(key) ?? {
          environmentId: r.environment_id,
          workflowId: r.workflow_id,
          status: r.status as RunStatus,
          count: 0,
        };
        entry.count += Number(r.n);
        runs.set(key, entry);
      }
    }
    return { steps: [...steps.values()], runs: [...runs.values()] };
  }

  /**
   * Keyset page over every location, newest first: each location returns `limit + 1` rows after
   * the cursor from runs_env_created (or runs_env_workflow_created) — an index range scan — and
   * the pages are merged here with the same (created_at, id) order the database uses (ids are
   * COLLATE "C", i.e. byte order, like JavaScript's `<` on ASCII). One round trip per location.
   */
  async listRuns(q: ListRunsQuery): Promise<{ data: RunRecord[]; nextCursor: string | null }> {
    const fingerprint = queryFingerprint(q);
    const cursor = q.cursor ? decodeCursor(q.cursor) : undefined;
    if (cursor?.q !== undefined && cursor.q !== fingerprint) {
      throw new WeftError(
        'invalid_cursor',
        `cursor "${q.cursor!.slice(0, 40)}" was issued for another listing (another environment, workflowId, status, createdFrom/createdTo or runId filter); a cursor only continues the listing that returned it. Repeat that listing's filters with it, or omit the cursor for the first page of this one.`,
      );
    }
    // Which locations can hold a match: those the ids name, else those the organization has
    // minted into (every location when not told). A location not asked costs nothing.
    let targets = [...this.r.locations.values()];
    const idsByLoc = q.runIds ? this.r.groupByLocation(q.runIds) : undefined;
    if (idsByLoc) targets = targets.filter((l) => idsByLoc.has(l));
    if (q.locations) targets = targets.filter((l) => q.locations!.includes(l.tag));
    const pages = await Promise.all(
      targets.map(async (loc) => {
        const where = ['environment_id = $1'];
        const params: unknown[] = [q.environmentId];
        const add = (sql: string, value: unknown): void => {
          params.push(value);
          where.push(sql.replaceAll('$?', `$${params.length}`));
        };
        if (q.workflowId) add('workflow_id = $?', q.workflowId);
        if (idsByLoc) add('id = any($?::text[])', idsByLoc.get(loc));
        if (q.createdFrom) add('created_at >= $?::timestamptz', q.createdFrom);
        if (q.createdTo) add('created_at < $?::timestamptz', q.createdTo);
        if (cursor) {
          params.push(cursor.t, cursor.id);
          where.push(
            `(created_at, id) < ($${params.length - 1}::timestamptz, $${params.length}::text)`,
          );
        }
        // A status filter is one `status = $n` branch per status, each an ordered, limited scan of
        // runs_env_status_created (location 0009), merged. Rejected: `status = any($n::text[])`:
        // the named statement's generic plan (from the sixth execution on) walked
        // runs_env_created and filtered, 92–102 ms a page at 256,000 runs (bench/RESULTS.md).
        const statuses = q.statuses && q.statuses.length > 0 ? [...new Set(q.statuses)] : [null];
        const statusParams = statuses.map((status) => {
          if (status === null) return '';
          params.push(status);
          return ` and status = $${params.length}::text`;
        });
        params.push(q.limit + 1);
        const branches = statusParams.map(
          (status) =>
            `(select ${RUN_COLUMNS}, to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as created_key
               from ${loc.schema}.runs where ${where.join(' and ')}${status}
              order by created_at desc, id desc limit $${params.length})`,
        );
        const rows = await loc.db.query<Row>(
          branches.length === 1
            ? branches[0]!
            : `select * from (${branches.join(' union all ')}) b
                order by created_at desc, id desc limit $${params.length}`,
          params,
        );
        return rows.rows;
      }),
    );
    const merged = pages.flat().sort((a, b) => {
      const ta = a.created_key as string;
      const tb = b.created_key as string;
      if (ta !== tb) return ta < tb ? 1 : -1;
      const ia = a.id as string;
      const ib = b.id as string;
      return ia < ib ? 1 : ia > ib ? -1 : 0;
    });
    const page = merged.slice(0, q.limit);
    const last = page[page.length - 1];
    const nextCursor =
      merged.length > q.limit && last
        ? encodeCursor({ t: last.created_key as string, id: last.id as string, q: fingerprint })
        : null;
    return { data: page.map(toRun), nextCursor };
  }

  async listStepRuns(environmentId: string, runId: string): Promise<StepRunRecord[] | undefined> {
    const loc = this.r.locationOf(runId);
    if (!loc) return undefined;
    const run = await loc.db.query(
      `select 1 from ${loc.schema}.runs where id = $1 and environment_id = $2`,
      [runId, environmentId],
    );
    if (run.rows.length === 0) return undefined;
    const [steps, attempts] = await Promise.all([
      loc.db.query<Row>(
        `select id, run_id, step_id, step_key, status, attempt_count, max_attempts, input_dataclip_id, input_hash,
                output_dataclip_id, reused_from, error, created_at, started_at, finished_at
           from ${loc.schema}.step_runs where run_id = $1 order by created_at, id`,
        [runId],
      ),
      loc.db.query<Row>(
        `select step_run_id, number, worker_id, status, error, started_at, finished_at
           from ${loc.schema}.attempts where run_id = $1 order by step_run_id, number`,
        [runId],
      ),
    ]);
    const byStep = new Map<string, AttemptRecord[]>();
    for (const a of attempts.rows) {
      const list = byStep.get(a.step_run_id as string) ?? [];
      list.push({
        number: Number(a.number),
        workerId: a.worker_id as string,
        status: a.status as AttemptRecord['status'],
        error: (a.error as AttemptRecord['error']) ?? null,
        startedAt: iso(a.started_at),
        finishedAt: isoOrNull(a.finished_at),
      });
      byStep.set(a.step_run_id as string, list);
    }
    return steps.rows.map((r) => ({
      id: r.id as string,
      runId: r.run_id as string,
      stepId: r.step_id as string,
      stepKey: r.step_key as string,
      status: r.status as StepRunRecord['status'],
      attemptCount: Number(r.attempt_count),
      maxAttempts: Number(r.max_attempts),
      inputDataclipId: (r.input_dataclip_id as string | null) ?? null,
      inputHash: (r.input_hash as string | null) ?? null,
      outputDataclipId: (r.output_dataclip_id as string | null) ?? null,
      reusedFrom: (r.reused_from as string | null) ?? null,
      error: (r.error as StepRunRecord['error']) ?? null,
      createdAt: iso(r.created_at),
      startedAt: isoOrNull(r.started_at),
      finishedAt: isoOrNull(r.finished_at),
      attempts: byStep.get(r.id as string) ?? [],
    }));
  }

  async getDataclip(
    environmentId: string,
    dataclipId: string,
  ): Promise<DataclipRecord | undefined> {
    const loc = this.r.locationOf(dataclipId);
    if (!loc) return undefined;
    const rows = await loc.db.query<Row>(
      `select id, run_id, kind, body, size_bytes, wiped_at, created_at from ${loc.schema}.dataclips where id = $1 and environment_id = $2`,
      [dataclipId, environmentId],
    );
    const r = rows.rows[0];
    if (!r) return undefined;
    return {
      id: r.id as string,
      runId: (r.run_id as string | null) ?? null,
      kind: r.kind as DataclipRecord['kind'],
      body: r.body ?? null,
      sizeBytes: Number(r.size_bytes),
      wipedAt: isoOrNull(r.wiped_at),
      createdAt: iso(r.created_at),
    };
  }

  /** Of the given run ids, those that have ended or paused (one query per location). */
  async findEndedRuns(runIds: string[]): Promise<string[]> {
    const byLoc = this.r.groupByLocation(runIds);
    const found = await Promise.all(
      [...byLoc].map(async ([loc, ids]) => {
        const rows = await loc.db.query<{ id: string }>(
          `select id from ${loc.schema}.runs where id = any($1::text[]) and (${loc.schema}.run_ended(status) or status = 'paused')`,
          [ids],
        );
        return rows.rows.map((r) => r.id);
      }),
    );
    return found.flat();
  }
}
