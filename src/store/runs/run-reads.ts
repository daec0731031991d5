/**
 * Reads the run view needs beyond queries.ts: a run's step runs with the steps a rerun reused
 * from earlier runs (so a rerun reads as a whole run), each with its state patch; the run state
 * and final state in one read; and run counts per status. Pure reads, one location each (a rerun
 * lives in its source's location, so a lineage never leaves it).
 */
import type { Queryable } from '../executor.js';
import type { AttemptRecord, RunStatus, StepRunRecord } from '../rows.js';
import { iso, isoOrNull, type Row } from './decoders.js';

/** What a committed step changed in the run state (the `step.succeeded` event's `statePatch`). */
export interface StatePatch {
  set: Record<string, unknown> | null;
  delete: string[] | null;
}

export interface ListedStepRun extends StepRunRecord {
  /** The loop or parallel step run whose body holds it, and its iteration; null at the top level. */
  scopeKey: string | null;
  iteration: number | null;
  /** For a reused step: the run holding the step run it reuses (`reusedFrom`). */
  reusedFromRunId: string | null;
  /** True when the row is not in this run but in an earlier run of its lineage (reused, not copied). */
  inherited: boolean;
  statePatch: StatePatch | null;
}

const STEP_COLUMNS = `s.id, s.run_id, s.step_id, s.step_key, s.scope_key, s.iteration, s.status, s.attempt_count,
  s.max_attempts, s.input_dataclip_id, s.input_hash, s.output_dataclip_id, s.reused_from, s.error, s.created_at,
  s.started_at, s.finished_at`;

async function readRunSteps(
  db: Queryable,
  schema: string,
  runId: string,
): Promise<{ steps: ListedStepRun[]; rerunOf: string | null; skipped: string[] } | undefined> {
  const [run, steps, attempts] = await Promise.all([
    db.query<{ rerun_of: string | null; skipped: string[] | null }>(
      `select r.rerun_of,
              (select array(select jsonb_array_elements_text(e.data -> 'skipped')) from ${schema}.run_events e
                where e.run_id = r.id and e.kind = 'run.created' and jsonb_typeof(e.data -> 'skipped') = 'array'
                order by e.id limit 1) as skipped
         from ${schema}.runs r where r.id = $1`,
      [runId],
    ),
    db.query<Row>(
      `select ${STEP_COLUMNS} from ${schema}.step_runs s where s.run_id = $1 order by s.created_at, s.id`,
      [runId],
    ),
    db.query<Row>(
      `select step_run_id, number, worker_id, status, error, started_at, finished_at
         from ${schema}.attempts where run_id = $1 order by step_run_id, number`,
      [runId],
    ),
  ]);
  const r = run.rows[0];
  if (!r) return undefined;
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
  return {
    rerunOf: r.rerun_of,
    skipped: r.skipped ?? [],
    steps: steps.rows.map((s) => ({
      id: s.id as string,
      runId: s.run_id as string,
      stepId: s.step_id as string,
      stepKey: s.step_key as string,
      scopeKey: (s.scope_key as string | null) ?? null,
      iteration: s.iteration === null ? null : Number(s.iteration),
      status: s.status as StepRunRecord['status'],
      attemptCount: Number(s.attempt_count),
      maxAttempts: Number(s.max_attempts),
      inputDataclipId: (s.input_dataclip_id as string | null) ?? null,
      inputHash: (s.input_hash as string | null) ?? null,
      outputDataclipId: (s.output_dataclip_id as string | null) ?? null,
      reusedFrom: (s.reused_from as string | null) ?? null,
      reusedFromRunId: null,
      inherited: false,
      error: (s.error as StepRunRecord['error']) ?? null,
      createdAt: iso(s.created_at),
      startedAt: isoOrNull(s.started_at),
      finishedAt: isoOrNull(s.finished_at),
      attempts: byStep.get(s.id as string) ?? [],
      statePatch: null,
    })),
  };
}

/** The top-level key a step run belongs to: itself, or the owner its scope chain ends at. */
function topKeyOf(step: ListedStepRun, byKey: ReadonlyMap<string, ListedStepRun>): string {
  let current = step;
  for (let hops = 0; current.scopeKey !== null && hops < 100; hops++) {
    const owner = byKey.get(current.scopeKey);
    if (!owner) return current.scopeKey;
    current = owner;
  }
  return current.stepKey;
}

/**
 * A run's step runs as one whole run. A rerun writes rows only for what it reruns and what it
 * must (docs/rerun.md); every other step keeps its result in an earlier run of the lineage. Those are
 * listed too, `inherited` and `reusedFrom` that run's row, following `rerun_of` the way
 * RunStore.loadLineageSteps does (a step skipped by untilStep on the way is not taken from an
 * older run). A body row of an older run is listed when its top-level owner is listed as reused.
 * Each row carries its state patch: the `step.succeeded` event of the row that ran (reused rows:
 * `reused_from` followed). Undefined when the run does not exist in the environment.
 * Cost: three reads per run of the lineage (at most 100), then one for patches and reuse origins.
 */
export async function listStepRunsWithLineage(
  db: Queryable,
  schema: string,
  environmentId: string,
  runId: string,
): Promise<ListedStepRun[] | undefined> {
  const owned = await db.query(
    `select 1 from ${schema}.runs where id = $1 and environment_id = $2`,
    [runId, environmentId],
  );
  if (owned.rows.length === 0) return undefined;
  const first = await readRunSteps(db, schema, runId);
  if (!first) return undefined;
  const result = [...first.steps];
  const byKey = new Map(result.map((s) => [s.stepKey, s]));
  const skipped = new Set(first.skipped);
  let next = first.rerunOf;
  for (let hop = 0; next !== null && hop < 100; hop++) {
    const older = await readRunSteps(db, schema, next);
    if (!older) break;
    const olderByKey = new Map(older.steps.map((s) => [s.stepKey, s]));
    for (const s of older.steps) {
      if (byKey.has(s.stepKey)) continue;
      if (s.scopeKey === null) {
        if (skipped.has(s.stepId)) continue;
      } else {
        const top = byKey.get(topKeyOf(s, olderByKey));
        if (!top || top.reusedFrom === null) continue;
      }
      const inherited: ListedStepRun = {
        ...s,
        reusedFrom: s.id,
        reusedFromRunId: s.runId,
        inherited: true,
        runId,
      };
      result.push(inherited);
      byKey.set(s.stepKey, inherited);
    }
    for (const id of older.skipped) skipped.add(id);
    next = older.rerunOf;
  }
  await attachOrigins(db, schema, result);
  return result;
}

/** Fill `statePatch` (from the row that ran) and `reusedFromRunId` in one statement. */
async function attachOrigins(db: Queryable, schema: string, steps: ListedStepRun[]): Promise<void> {
  if (steps.length === 0) return;
  const rows = await db.query<{ start_id: string; first_run: string | null; patch: unknown }>(
    `with recursive chain as (
       select s.id as start_id, s.id, s.run_id, s.step_key, s.reused_from, 0 as depth
         from ${schema}.step_runs s where s.id = any($1::text[])
       union all
       select c.start_id, s.id, s.run_id, s.step_key, s.reused_from, c.depth + 1
         from chain c join ${schema}.step_runs s on s.id = c.reused_from where c.depth < 100
     ), origin as (
       select distinct on (start_id) start_id, run_id, step_key from chain order by start_id, depth desc
     ), first_hop as (
       select start_id, run_id from chain where depth = 1
     ), patches as (
       select distinct on (e.run_id, e.step_key) e.run_id, e.step_key, e.data -> 'statePatch' as patch
         from ${schema}.run_events e
        where e.run_id in (select run_id from origin) and e.kind = 'step.succeeded'
        order by e.run_id, e.step_key, e.id desc
     )
     select o.start_id, f.run_id as first_run, p.patch
       from origin o
       left join first_hop f on f.start_id = o.start_id
       left join patches p on p.run_id = o.run_id and p.step_key = o.step_key`,
    [steps.map((s) => (s.inherited ? s.reusedFrom! : s.id))],
  );
  const byId = new Map(rows.rows.map((r) => [r.start_id, r]));
  for (const s of steps) {
    const r = byId.get(s.inherited ? s.reusedFrom! : s.id);
    const patch = r?.patch as { set?: unknown; delete?: unknown } | null | undefined;
    s.statePatch =
      patch && typeof patch === 'object'
        ? {
            set: (patch.set as StatePatch['set']) ?? null,
            delete: (patch.delete as StatePatch['delete']) ?? null,
          }
        : null;
    if (!s.inherited && s.reusedFrom !== null) s.reusedFromRunId = r?.first_run ?? null;
  }
}

export interface RunStateRecord {
  state: Record<string, unknown>;
  finalDataclipId: string | null;
  /** The final dataclip's body; null when there is none yet or it was wiped. */
  finalState: unknown;
  finalWiped: boolean;
}

/** A run's state and final state in one read (runs pk, dataclips pk). */
export async function readRunState(
  db: Queryable,
  schema: string,
  environmentId: string,
  runId: string,
): Promise<RunStateRecord | undefined> {
  const rows = await db.query<Row>(
    `select r.state, r.final_dataclip_id, d.body, d.wiped_at
       from ${schema}.runs r left join ${schema}.dataclips d on d.id = r.final_dataclip_id
      where r.id = $1 and r.environment_id = $2`,
    [runId, environmentId],
  );
  const r = rows.rows[0];
  if (!r) return undefined;
  return {
    state: (r.state as Record<string, unknown>) ?? {},
    finalDataclipId: (r.final_dataclip_id as string | null) ?? null,
    finalState: r.body ?? null,
    finalWiped: r.wiped_at !== null && r.wiped_at !== undefined,
  };
}

export interface RunCountsQuery {
  environmentId: string;
  workflowId?: string | undefined;
  createdFrom?: string | undefined;
  createdTo?: string | undefined;
}

/**
 * Runs per status in one location: one grouped query. With `workflowId` and no time filter it
 * reads index runs_env_workflow_status (environment_id, workflow_id, status, …) — the status is in
 * the index, so no heap column decides the group; with a time filter, runs_env_workflow_created
 * (or runs_env_created without a workflow) bounds the scan to the range. Either way the cost is
 * the number of runs counted: counts over a long range of a busy environment are a scan.
 */
export async function countRunsByStatus(
  db: Queryable,
  schema: string,
  q: RunCountsQuery,
): Promise<Array<{ status: RunStatus; n: number }>> {
  const where = ['environment_id = $1'];
  const params: unknown[] = [q.environmentId];
  const add = (sql: string, value: unknown): void => {
    params.push(value);
    where.push(sql.replace('$?', `$${params.length}`));
  };
  if (q.workflowId !== undefined) add('workflow_id = $?', q.workflowId);
  if (q.createdFrom !== undefined) add('created_at >= $?::timestamptz', q.createdFrom);
  if (q.createdTo !== undefined) add('created_at < $?::timestamptz', q.createdTo);
  const rows = await db.query<{ status: RunStatus; n: number }>(
    `select status, count(*)::int as n from ${schema}.runs where ${where.join(' and ')} group by status`,
    params,
  );
  return rows.rows.map((r) => ({ status: r.status, n: Number(r.n) }));
}

/**
 * The first body step run that failed inside the loop or parallel step run `ownerKey` of a run
 * (lowest iteration), e.g. `charge[3]`; undefined when none did (or the step has no body). A
 * bulk rerun starts a failed loop there instead of from its first iteration. Index: the
 * `unique (run_id, step_key)` range of the run.
 */
export async function firstFailedBodyKey(
  db: Queryable,
  schema: string,
  runId: string,
  ownerKey: string,
): Promise<string | undefined> {
  const rows = await db.query<{ step_key: string }>(
    `select step_key from ${schema}.step_runs
      where run_id = $1 and scope_key = $2 and status = 'failed'
      order by iteration, created_at limit 1`,
    [runId, ownerKey],
  );
  return rows.rows[0]?.step_key;
}
