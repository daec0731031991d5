/**
 * The chained commit: a succeeded attempt whose one live edge leads to a successor that waits on
 * it alone is committed, and that successor claimed for the same worker, by ONE statement the
 * store sends itself, not by a call of complete_step.
 *
 * Why a statement and not the function: the same writes cost less as one prepared statement than
 * through the PL/pgSQL call, which pays per transaction for what a loop inside one transaction
 * pays once (the call and its SET clauses, an executor start for each of its statements, its
 * simple expressions prepared again in each new transaction); a chain commits one transaction per
 * step. bench/chain-floor.ts, 1,000-step chains, 5 interleaved repetitions: from node-pg 0.747 →
 * 0.696 ms per step (×0.93), from C 0.650 → 0.632 (×0.97). End to end the engine's gain
 * (×0.93–0.98 by three tools) was within that machine's noise (bench/RESULTS.md, "Issue 8,
 * session 12").
 *
 * What it does is complete_step's chain fast path (complete_step.sql), in the same order:
 *   1. `succ`: the successor by (run_id, step_key), eligible for the chain's take (pending, its only
 *      parent this step, no concurrency limit). Not eligible: nothing below is done, and the
 *      statement answers `eligible = 0`; the store then calls complete_step, which takes every
 *      other path (propagate: joins, limits, pruned edges, the run's end). `succ` spells out the
 *      claim rule's take condition on purpose, where complete_step's fast path finds the row by
 *      key alone: the answer's input is this statement's output (`outp`), which is right only for
 *      a take; a successor already `ready` keeps an input of its own. The claim rule checks
 *      again, and a row that changed in between is the WF001 case below.
 *   2. `fenced`: the commit fence, placed from fragments/fence.sql (the one copy, also placed in
 *      complete_step), with its `step.succeeded` event id taken first; its step run id is bound
 *      only when the successor is eligible.
 *   3. `outp`: the output dataclip.
 *   4. the claim rule, placed from fragments/claim.sql (the one copy); it runs after the fence (its ids are read through `fenced`),
 *      so the successor's `step.started` follows this step's `step.succeeded` in the event log.
 *   5. If the fence held but the claim took no row (a transaction that committed after this
 *      statement's snapshot changed the successor), chain_take_conflict raises WF001: the
 *      statement is rolled back whole and the store commits with complete_step instead.
 * The answer is one row: `fenced` and `eligible` (0 or 1 each), and the claimed successor's
 * columns as claim_rows gives them (null when none; those of its run are the committed step's),
 * with its input from `outp`: the claim rule's
 * own join cannot see a dataclip inserted by the same statement. Columns, not a jsonb object:
 * building and parsing one cost ~0.05 ms per step (pgbench, same chain).
 *
 * Round trips: one. Indexes: step_runs (run_id, step_key) for `succ`, the primary keys of
 * step_runs, dataclips and runs; writes as complete_step's fast path (bench --diagnose).
 * Locks: the same rows in the same order as complete_step (the fence's row, then the successor's).
 */
import { readFragment } from '../migrator.js';
import type { ClaimedStep } from '../rows.js';
import { keyed } from './decoders.js';
import type { CommitPayload, CompleteResult } from './queue.js';
import type { RunLocation } from './resources.js';

/** SQLSTATE of chain_take_conflict.sql: the statement rolled back, commit with complete_step. */
const CHAIN_TAKE_CONFLICT = 'WF001';

/**
 * A commit the chained statement can take: it claims the next step, has one live edge and no
 * dead one, its plan says the successor waits on it alone with no limit, and it patches no state
 * (complete_step writes the state and its event).
 */
export function takesChainedCommit(c: CommitPayload): boolean {
  return (
    c.claimNext &&
    c.takesSuccessor === true &&
    c.live.length === 1 &&
    c.dead.length === 0 &&
    c.stateSet === null &&
    c.stateDelete === null
  );
}

/**
 * Commit with the chained statement. Null when it did nothing and complete_step must commit: the
 * successor was not eligible for the chain's take, or it changed while the statement ran (WF001,
 * rolled back).
 */
export async function commitChained(
  loc: RunLocation,
  claim: ClaimedStep,
  workerId: string,
  c: CommitPayload,
  outputId: string,
): Promise<CompleteResult | null> {
  let row: ChainedRow;
  try {
    const rows = await loc.db.query<ChainedRow>(completeChainedStepSql(loc.schema), [
      claim.stepRunId,
      claim.attempt,
      workerId,
      c.outputText,
      outputId,
      claim.runId,
      keyed(claim.stepKey, c.live)[0],
      claim.stepKey,
      c.leaseMs,
    ]);
    row = rows.rows[0]!;
  } catch (error) {
    if ((error as { code?: string }).code === CHAIN_TAKE_CONFLICT) return null;
    throw error;
  }
  if (row.fenced === 0) return row.eligible === 0 ? null : { status: 'fenced' };
  return {
    status: 'committed',
    runStatus: 'running',
    // the successor belongs to the same run: its run, workflow, version, environment and
    // dataclip setting are this step's
    next:
      row.step_run_id === null
        ? null
        : {
            ...claim,
            stepRunId: row.step_run_id,
            stepId: row.step_id!,
            stepKey: row.step_key!,
            attempt: row.attempt!,
            maxAttempts: row.max_attempts!,
            input: row.input ?? null,
            state: row.state ?? {},
          },
  };
}

/** The statement's one row (the successor's columns null when none was claimed). */
interface ChainedRow {
  fenced: number;
  eligible: number;
  step_run_id: string | null;
  step_id: string | null;
  step_key: string | null;
  attempt: number | null;
  max_attempts: number | null;
  input: unknown;
  state: Record<string, unknown> | null;
}

/**
 * The PL/pgSQL variables of the fragments placed here (fragments/fence.sql, fragments/claim.sql),
 * bound to this statement's values. The fence's step run id is given only while the successor is
 * eligible (`succ` has its row): otherwise the fence matches nothing and the statement writes
 * nothing.
 */
const BINDINGS: Record<string, string> = {
  p_step_run_id: '(select $1::text from succ)',
  p_attempt: '$2::integer',
  p_worker: '$3::text',
  p_output_id: '$5::text',
  p_state_set: 'null::jsonb',
  p_state_del: 'null::text[]',
  p_ids: 'array[(select succ.id::text from succ, fenced)]',
  p_lease_ms: '$9::integer',
  p_take_from: '$8::text',
  p_take_input_id: '$5::text',
  p_take_input_hash: '(select outp.body_hash from outp)',
};

const statements = new Map<string, string>();

/**
 * The statement, per location schema. Parameters: step run id, attempt, worker, output text,
 * output dataclip id, run id, successor key, this step's key, lease ms.
 */
export function completeChainedStepSql(schema: string): string {
  let sql = statements.get(schema);
  if (sql === undefined) {
    sql = render(schema);
    statements.set(schema, sql);
  }
  return sql;
}

function render(schema: string): string {
  const fence = placed('fence').replaceAll('{{schema}}', schema);
  // the claim rule is a `with` list of its own: its CTEs join this statement's list
  const claim = placed('claim')
    .replace(/^with\s+/i, '')
    .replaceAll('{{schema}}', schema);
  const s = schema;
  return `with succ as (
  select sr.id from ${s}.step_runs sr
   where sr.run_id = $6::text and sr.step_key = $7::text and sr.concurrency_key is null
     and (sr.status || '') = 'pending' and sr.pending_parents = 1 and sr.parents = array[$8::text]::text[]
), fenced as (
  ${fence}), outp as (
  insert into ${s}.dataclips (id, run_id, environment_id, kind, body, body_hash, size_bytes)
  select $5::text, f.run_id, f.environment_id, 'output', $4::jsonb, md5($4::jsonb::text), octet_length($4::text)
    from fenced f
  returning body, body_hash
), ${claim}
select f.n as fenced, e.n as eligible,
       t.step_run_id, t.step_id, t.step_key, t.attempt, t.max_attempts, o.body as input, t.state,
       case when f.n > 0 and t.step_run_id is null then ${s}.chain_take_conflict($1::text, $7::text) end as conflict
  from (select count(*)::integer as n from fenced) f
 cross join (select count(*)::integer as n from succ) e
  left join claim_rows t on true
  left join outp o on true`;
}

/** A fragment of the location set without its comments, its variables bound (BINDINGS). */
function placed(name: 'fence' | 'claim'): string {
  return readFragment('location', name)
    .split('\n')
    .filter((line) => !/^\s*--/.test(line))
    .map((line) => line.replace(/\s--.*$/, ''))
    .join('\n')
    .trim()
    .replace(/\bp_[a-z_]+\b/g, (variable) => {
      const bound = BINDINGS[variable];
      if (bound === undefined)
        throw new Error(
          `fragments/${name}.sql reads ${variable}, which chain-commit.ts does not bind`,
        );
      return bound;
    });
}
