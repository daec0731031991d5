/**
 * Lineage: what a rerun reads from its source run (its step runs along `rerun_of`, the input's
 * hash, a body's iterations) and the rerun's creation in the source run's location, optionally
 * replaying the lineage's state patches in the same transaction.
 */
import { mintRunScopedId } from '../../core/ids.js';
import type { Queryable } from '../executor.js';
import {
  loadSourceIterations,
  type SourceIterationsRecord,
  type StateReplay,
} from './rerun-iterations.js';
import type { RunRecord, StepRunRecord } from '../rows.js';
import { planNodeColumns, RUN_COLUMNS, toRun, type Row } from './decoders.js';
import type { ParkRequest } from './queue.js';
import type { RunResources } from './resources.js';
import { CHANNELS } from '../channels.js';

/** One step run of a rerun to materialize (see create_rerun in migration 0003). */
export interface RerunStepRow {
  stepId: string;
  kind: string;
  /** Reused: the source step run whose result this row points at. Absent: the step reruns. */
  reusedFrom?: string;
  /** Rerun steps: parents not yet resolved (rerun parents, or 1 for the all-reused case). */
  pending: number;
  parents: string[];
  successors: string[];
  failureSuccessors: string[];
  /**
   * Reused: a successor of this step ran in an earlier run of the lineage and is not materialized
   * here, so the run's end must not count this step as a leaf (step_runs.successor_ran).
   */
  successorRan?: boolean;
  /** Reused parents whose edge was live in the source run. */
  liveFrom: string[];
  maxAttempts: number;
  onExhausted: 'fail' | 'pause';
  concurrency: number | undefined;
}

export interface CreateRerunParams {
  environmentId: string;
  workflowId: string;
  versionId: string;
  maxConcurrency: number | undefined;
  saveDataclips: boolean;
  source: RunRecord;
  fromStep: string;
  /** A new input (validated JSON text); absent: the source's input dataclip, by reference. */
  input?: { text: string; bytes: number };
  /** Every reused step id (body steps included): their state patches seed the run state. */
  reusedStepIds: string[];
  steps: RerunStepRow[];
  /** Rerun steps whose parents are all reused: resolved (ready or pruned) on creation. */
  resolve: string[];
  /** Steps skipped (after untilStep): recorded so a rerun of this run does not reuse older results. */
  skipped: string[];
  /**
   * A rerun from one iteration or branch (`s[3]`): the owner's kept iterations, copied from the
   * source's rows, and for a parallel the branches that rerun (create_rerun_iterations, 0004).
   */
  iterationBody?: {
    owner: string;
    sourceRunId: string;
    sourceOwnerKey: string;
    reuse: number[];
    park: {
      onScopeFailure: 'fail' | 'collect';
      nodes: NonNullable<ParkRequest['body']>['nodes'];
      iterations: Array<{ iteration: number; gated: boolean }>;
    } | null;
    /** The targeted iteration when only part of it reruns (migration 0006). */
    partial?: { iteration: number; rerun: string[]; reuse: string[] };
  };
}

/** What a rerun plan needs from its source run: top-level step runs and the input's hash. */
export interface RerunSource {
  steps: Array<{
    stepId: string;
    stepRunId: string;
    status: StepRunRecord['status'];
    outputDataclipId: string | null;
    outputWiped: boolean;
    inputHash: string | null;
    liveFrom: string[];
  }>;
  input: { hash: string | null; available: boolean };
  /** md5 of a new input's canonical text (as step runs record input hashes), when one was given. */
  newInputHash: string | null;
}

export class RunLineage {
  constructor(private readonly r: RunResources) {}

  /**
   * Read what the rerun planner needs from a source run: its top-level step runs (status, output
   * and whether its body was wiped, input hash, live parents) and its input's hash. With
   * `newInputText`, also the hash a new input will have (computed by the database, the same
   * canonical jsonb text the step runs' input hashes use). Two reads, no writes.
   */
  async loadRerunSource(source: RunRecord, newInputText?: string): Promise<RerunSource> {
    const loc = this.r.locationOf(source.id)!;
    const [steps, input] = await Promise.all([
      this.loadLineageSteps(source.id),
      loc.db.query<{ hash: string | null; available: boolean; new_hash: string | null }>(
        `select (select body_hash from ${loc.schema}.dataclips where id = $1) as hash,
                coalesce((select wiped_at is null from ${loc.schema}.dataclips where id = $1), false) as available,
                case when $2::text is null then null else md5($2::text::jsonb::text) end as new_hash`,
        [source.inputDataclipId, newInputText ?? null],
      ),
    ]);
    const i = input.rows[0]!;
    return { steps, input: { hash: i.hash, available: i.available }, newInputHash: i.new_hash };
  }

  /**
   * The top-level step runs that stand for a run's results. A rerun materializes only part of the
   * graph; a step it reused without a row of its own is found along `rerun_of` (the run whose
   * result it reused), unless a run on the way skipped it (untilStep: it did not run there, and
   * an older result would be stale). One read per run of the lineage, at most 100 runs.
   */
  private async loadLineageSteps(runId: string): Promise<RerunSource['steps']> {
    const found = new Map<string, RerunSource['steps'][number]>();
    const skipped = new Set<string>();
    let current: string | null = runId;
    for (let hop = 0; current !== null && hop < 100; hop++) {
      const loc = this.r.locationOf(current);
      if (!loc) break;
      const rows: {
        rows: Array<{ rerun_of: string | null; skipped: string[] | null; steps: Row[] }>;
      } = await loc.db.query(
        `select r.rerun_of,
                  (select array(select jsonb_array_elements_text(e.data -> 'skipped')) from ${loc.schema}.run_events e
                    where e.run_id = r.id and e.kind = 'run.created' and jsonb_typeof(e.data -> 'skipped') = 'array'
                    order by e.id limit 1) as skipped,
                  coalesce((select jsonb_agg(jsonb_build_object(
                             'id', s.id, 'step_id', s.step_id, 'status', s.status, 'output_dataclip_id', s.output_dataclip_id,
                             'input_hash', s.input_hash, 'live_from', to_jsonb(s.live_from),
                             'wiped', d.id is not null and d.wiped_at is not null))
                      from ${loc.schema}.step_runs s left join ${loc.schema}.dataclips d on d.id = s.output_dataclip_id
                     where s.run_id = r.id and s.scope_key is null), '[]'::jsonb) as steps
             from ${loc.schema}.runs r where r.id = $1`,
        [current],
      );
      const run = rows.rows[0];
      if (!run) break;
      for (const r of run.steps) {
        const stepId = r.step_id as string;
        if (found.has(stepId) || skipped.has(stepId)) continue;
        found.set(stepId, {
          stepId,
          stepRunId: r.id as string,
          status: r.status as StepRunRecord['status'],
          outputDataclipId: (r.output_dataclip_id as string | null) ?? null,
          outputWiped: r.wiped as boolean,
          inputHash: (r.input_hash as string | null) ?? null,
          liveFrom: (r.live_from as string[] | null) ?? [],
        });
      }
      for (const id of run.skipped ?? []) skipped.add(id);
      current = run.rerun_of;
    }
    // A step skipped on the way never ran there: no result (the planner reruns it).
    for (const stepId of skipped) {
      if (!found.has(stepId)) {
        found.set(stepId, {
          stepId,
          stepRunId: '',
          status: 'pending',
          outputDataclipId: null,
          outputWiped: false,
          inputHash: null,
          liveFrom: [],
        });
      }
    }
    return [...found.values()];
  }

  /**
   * Create a rerun in one statement (create_rerun, migration 0003): in the source run's location,
   * so reused dataclips are referenced, never copied. Writes the run row, a new input dataclip
   * only when a new input is given, the step runs of the restart scope plus the reused ones that
   * feed it or end the run, and one event. If the process dies before the statement commits,
   * nothing of the rerun exists.
   */
  async createRerun(p: CreateRerunParams, tx?: Queryable): Promise<RunRecord> {
    const loc = this.r.locationOf(p.source.id)!;
    const runId = mintRunScopedId('run', loc.tag);
    const input = p.input
      ? { dataclipId: mintRunScopedId('dc', loc.tag), text: p.input.text, bytes: p.input.bytes }
      : { dataclipId: p.source.inputDataclipId };
    const payload = {
      runId,
      environmentId: p.environmentId,
      workflowId: p.workflowId,
      versionId: p.versionId,
      saveDataclips: p.saveDataclips,
      maxConcurrency: p.maxConcurrency ?? null,
      rerunOf: p.source.id,
      fromStep: p.fromStep,
      input,
      reusedStepIds: p.reusedStepIds,
      resolve: p.resolve,
      skipped: p.skipped,
      steps: p.steps.map((s) => ({
        id: mintRunScopedId('sr', loc.tag),
        ...planNodeColumns(s, s.stepId, p.environmentId, p.workflowId),
        reused_from: s.reusedFrom ?? null,
        pending: s.pending,
        successor_ran: s.successorRan ?? false,
        live_from: s.liveFrom,
      })),
    };
    const body = p.iterationBody;
    const withBody = body && {
      ...payload,
      body: {
        ...body,
        park: body.park && {
          ...body.park,
          nodes: body.park.nodes.map((n) =>
            planNodeColumns(n, n.stepId, p.environmentId, p.workflowId),
          ),
        },
      },
    };
    const rows = await (tx ?? loc.db).query<Row>(
      `select ${RUN_COLUMNS} from ${loc.schema}.${withBody ? 'create_rerun_iterations' : 'create_rerun'}($1::jsonb)`,
      [JSON.stringify(withBody ?? payload)],
    );
    const run = toRun(rows.rows[0]!);
    // Wake-ups after the commit: here, or in a caller's transaction by the caller after its commit
    // (BulkRerunProcessor signals weft_ready once per batch).
    if (!tx) {
      this.r.signals.send(loc.db, CHANNELS.ready, p.environmentId);
      this.r.signalRunEnd(run.id, run.status);
    }
    return run;
  }

  /**
   * Create a rerun (createRerun) and, in the same transaction, set its starting state with
   * replay_rerun_state (migration 0008): the patches of every reused step from the run of the lineage
   * where it ran, not only from the source run. With `tx`, inside the caller's transaction (on the
   * source run's location); otherwise in one of its own. If the process dies before the commit,
   * neither exists.
   */
  async createRerunReplayingState(
    params: CreateRerunParams,
    replay: readonly StateReplay[],
    tx?: Queryable,
  ): Promise<RunRecord> {
    const loc = this.r.locationOf(params.source.id)!;
    const write = async (q: Queryable): Promise<RunRecord> => {
      const run = await this.createRerun(params, q);
      await q.query(`select ${loc.schema}.replay_rerun_state($1, $2::jsonb)`, [
        run.id,
        JSON.stringify(replay.map((r) => ({ step_run_id: r.stepRunId, step_ids: r.stepIds }))),
      ]);
      return run;
    };
    return tx ? write(tx) : loc.db.transaction(write);
  }

  /** The body of a source run's loop or parallel step run, per iteration (rerun from `s[k]`). */
  async loadSourceIterations(ownerStepRunId: string): Promise<SourceIterationsRecord | undefined> {
    const loc = this.r.locationOf(ownerStepRunId);
    if (!loc) return undefined;
    return loadSourceIterations(loc.db, loc.schema, ownerStepRunId);
  }
}
