/**
 * What a rerun from one loop iteration or parallel branch (`s[3]`) needs from the source run: the
 * owner's body step runs, per iteration. A function over one location's executor, apart from
 * lineage.ts (which routes to it): the rerun planner (engine/rerun.ts) calls it directly.
 */
import type { Queryable } from '../executor.js';
import type { StepRunStatus } from '../rows.js';

export interface SourceIterationsRecord {
  /** The run and owner key whose rows hold the body (the owner row that ran, reused_from followed). */
  runId: string;
  ownerKey: string;
  /** Iterations materialized: 0 … count-1. */
  count: number;
  /** Iterations whose step runs all succeeded or were pruned. */
  reusable: number[];
  /** Per iteration: the input dataclip of its root step runs, and whether its body was wiped. */
  rootInputs: Map<number, { dataclipId: string; wiped: boolean }>;
  /** The direct body step runs of `targetIteration` (when asked for). */
  targetRows: Array<{ stepId: string; status: StepRunStatus; outputWiped: boolean }>;
}

/**
 * Read the body of the loop or parallel step run `ownerStepRunId`. A reused owner row has no body
 * of its own: `reused_from` is followed (at most 100 hops) to the row that ran. Two statements on
 * one location; index: step_runs_open does not apply (finished rows), so the body is read through
 * `unique (run_id, step_key)` filtered by scope_key — one run's rows.
 */
export async function loadSourceIterations(
  db: Queryable,
  schema: string,
  ownerStepRunId: string,
  targetIteration?: number,
): Promise<SourceIterationsRecord | undefined> {
  const origin = await db.query<{ run_id: string; step_key: string }>(
    `with recursive chain as (
       select id, run_id, step_key, reused_from, 0 as depth from ${schema}.step_runs where id = $1
       union all
       select s.id, s.run_id, s.step_key, s.reused_from, c.depth + 1
         from chain c join ${schema}.step_runs s on s.id = c.reused_from where c.depth < 100
     )
     select run_id, step_key from chain order by depth desc limit 1`,
    [ownerStepRunId],
  );
  const o = origin.rows[0];
  if (!o) return undefined;
  const rows = await db.query<{
    iteration: number;
    reusable: boolean;
    root_input: string | null;
    wiped: boolean | null;
  }>(
    `select s.iteration,
            bool_and(s.status in ('succeeded', 'pruned')) as reusable,
            min(s.input_dataclip_id) filter (where cardinality(s.parents) = 0) as root_input,
            bool_or(d.wiped_at is not null) filter (where cardinality(s.parents) = 0) as wiped
       from ${schema}.step_runs s left join ${schema}.dataclips d on d.id = s.input_dataclip_id
      where s.run_id = $1 and s.scope_key = $2
      group by s.iteration order by s.iteration`,
    [o.run_id, o.step_key],
  );
  const rootInputs = new Map<number, { dataclipId: string; wiped: boolean }>();
  for (const r of rows.rows) {
    if (r.root_input !== null)
      rootInputs.set(Number(r.iteration), { dataclipId: r.root_input, wiped: r.wiped === true });
  }
  const count = rows.rows.reduce((n, r) => Math.max(n, Number(r.iteration) + 1), 0);
  const target =
    targetIteration === undefined
      ? { rows: [] }
      : await db.query<{ step_id: string; status: StepRunStatus; wiped: boolean }>(
          `select s.step_id, s.status, coalesce(d.wiped_at is not null, false) as wiped
             from ${schema}.step_runs s left join ${schema}.dataclips d on d.id = s.output_dataclip_id
            where s.run_id = $1 and s.scope_key = $2 and s.iteration = $3`,
          [o.run_id, o.step_key, targetIteration],
        );
  return {
    targetRows: target.rows.map((r) => ({
      stepId: r.step_id,
      status: r.status,
      outputWiped: r.wiped === true,
    })),
    runId: o.run_id,
    ownerKey: o.step_key,
    count,
    reusable: rows.rows.filter((r) => r.reusable).map((r) => Number(r.iteration)),
    rootInputs,
  };
}

/** A reused top-level step: the lineage row standing for its result, and the ids whose patches count. */
export interface StateReplay {
  stepRunId: string;
  /** The step and, for a loop or parallel, its body's step ids. */
  stepIds: string[];
}
