/**
 * Run creation: a new run in one statement (idempotency claim, input dataclip, run row, the
 * graph's top-level step runs, the `run.created` event), and the idempotent replay of a trigger
 * whose key is already claimed. Reruns are created by lineage.ts.
 */
import { WeftError } from '../../core/errors.js';
import type { SerializedGraph } from '../../core/graph.js';
import { mintRunScopedId } from '../../core/ids.js';
import { planOf } from '../../core/plan.js';
import type { ClaimedStep, RunRecord, TriggerKind } from '../rows.js';
import { planNodeColumns, RUN_COLUMNS, toClaimed, toRun, type Row } from './decoders.js';
import type { RunQueries } from './queries.js';
import type { RunLocation, RunResources } from './resources.js';
import { CreationLane, type NewRun, type NewStepRun } from './creation-batch.js';
import { CHANNELS } from '../channels.js';

export interface CreateRunParams {
  environmentId: string;
  workflowId: string;
  versionId: string;
  graph: SerializedGraph;
  /** Input as validated JSON text (see core/json.ts encodeJson). */
  inputText: string;
  inputBytes: number;
  saveDataclips: boolean;
  trigger: { kind: TriggerKind; ref?: string | null };
  idempotency?: { key: string; ttlMs: number };
  /** Location tag for the new run; the default location when omitted. */
  locationTag?: string;
  /** A child run: the parent run and the step run waiting on it. */
  parent?: { runId: string; stepRunId: string };
  /** Kind of the input dataclip: `webhook_request` for a run a webhook started. Default `input`. */
  inputKind?: 'input' | 'webhook_request';
  /**
   * Eager start: a worker of the triggering process has a free slot and claims the run's first
   * step in the trigger's own statement (see eagerSelect). Ignored where it cannot apply.
   */
  eager?: { workerId: string; leaseMs: number };
}

export interface CreateRunResult {
  run: RunRecord;
  deduplicated: boolean;
  /** With `eager`: the step claimed for that worker (none when the run was not created here). */
  claims?: ClaimedStep[];
}

/** How long a cross-database `pending` claim holds its key before a crashed claim is taken over. */
export const PENDING_CLAIM_TTL_MS = 30_000;
/** How often a trigger that met a `pending` key looks again (the claimer marks it in ~1 ms). */
const PENDING_POLL_MS = 10;

export class RunCreation {
  /** Group commit of triggers, per location (creation-batch.ts). */
  private readonly lanes = new Map<RunLocation, CreationLane>();

  constructor(
    private readonly r: RunResources,
    private readonly queries: RunQueries,
  ) {}

  /**
   * Create a run in one statement (one round trip, one transaction): idempotency claim, input
   * dataclip, run row, every step run of the graph (roots ready), the `run.created` event, and a
   * NOTIFY that wakes idle workers. With an idempotency key that is already claimed and unexpired
   * nothing is written and the existing run is returned (`deduplicated`), or `idempotency_conflict`
   * when the input differs. Concurrent identical triggers serialize on the key's unique index.
   */
  async createRun(p: CreateRunParams): Promise<CreateRunResult> {
    const loc = this.r.location(p.locationTag);
    const run = newRun(p, loc.tag);
    // A location in another database than the home run-ops database cannot share a transaction
    // with the key: claim it there first (`pending`), create the run, then mark the claim.
    const crossDb = p.idempotency !== undefined && loc.db !== this.r.home.db;
    if (crossDb && !(await this.claimPending(p, run.runId))) return this.resolveIdempotentRun(p);
    // No key: the trigger may join a group commit with others (creation-batch.ts) when the
    // location is busy; alone, it takes a slot and goes out as it is, eager start included.
    const lane = p.idempotency === undefined ? this.lane(loc) : undefined;
    if (lane && !lane.tryEnter()) {
      const created = await lane.enqueue(run);
      return this.created(loc, run, created, undefined);
    }
    const key = crossDb ? null : (p.idempotency?.key ?? null);
    const eagerStep = crossDb ? undefined : eagerCandidate(p, run.steps);
    const eager = eagerStep === undefined ? undefined : { stepRunId: eagerStep, ...p.eager! };
    const rows = await this.insertRun(loc, run, { key, idempotency: p.idempotency, eager })
      .catch(async (error: unknown) => {
        // the run was not created: give the key back at once rather than at the claim's expiry
        if (crossDb) await this.releasePending(p, run.runId).catch(() => {});
        throw error;
      })
      .finally(() => lane?.leave());
    const created = rows[0];
    if (!created) return this.resolveIdempotentRun(p);
    if (crossDb) await this.markClaimed(p, run.runId);
    return this.created(
      loc,
      run,
      created,
      eager ? (created.eager_claims?.map(toClaimed) ?? []) : undefined,
    );
  }

  /** The result of a created run; wakes idle workers for the roots this process did not claim. */
  private created(
    loc: RunLocation,
    run: NewRun,
    row: Row,
    claims: ClaimedStep[] | undefined,
  ): CreateRunResult {
    const roots = run.steps.filter((step) => step.pending === 0).length;
    if (roots > (claims?.length ?? 0))
      this.r.signals.send(loc.db, CHANNELS.ready, run.environmentId);
    return { run: toRun(row), deduplicated: false, ...(claims ? { claims } : {}) };
  }

  private lane(loc: RunLocation): CreationLane {
    let lane = this.lanes.get(loc);
    if (!lane) {
      lane = new CreationLane(loc, (run) =>
        this.insertRun(loc, run, { key: null, idempotency: undefined, eager: undefined }).then(
          (rows) => rows[0]!,
        ),
      );
      this.lanes.set(loc, lane);
    }
    return lane;
  }

  /**
   * The single statement: one run in one round trip and one transaction — idempotency claim (with
   * `key`), input dataclip, run row, every top-level step run (roots ready), the `run.created`
   * event, and with `eager` the first step's claim. No row when the key is already claimed and
   * unexpired. The run row comes back from the statement that wrote it.
   */
  private async insertRun(
    loc: RunLocation,
    run: NewRun,
    opts: {
      key: string | null;
      idempotency: CreateRunParams['idempotency'];
      eager: { stepRunId: string; workerId: string; leaseMs: number } | undefined;
    },
  ): Promise<Array<Row & { eager_claims?: Row[] }>> {
    const s = loc.schema;
    const eager = opts.eager !== undefined;
    const createSql = `with key_claim as (
         insert into ${loc.opsSchema}.idempotency_keys (environment_id, workflow_id, key, run_id, input_hash, expires_at)
         select $1, $2, $9::text, $4, md5($6::jsonb::text), now() + $10::bigint * interval '1 millisecond'
          where $9::text is not null
         on conflict (environment_id, workflow_id, key) do update
            set run_id = excluded.run_id, input_hash = excluded.input_hash, expires_at = excluded.expires_at,
                state = 'claimed', created_at = now()
          where ${loc.opsSchema}.idempotency_keys.expires_at < now()
            and ${loc.opsSchema}.idempotency_keys.state = 'claimed'
         returning 1
       ), go as (
         select 1 as ok where $9::text is null or exists (select 1 from key_claim)
       ), input as (
         insert into ${s}.dataclips (id, run_id, environment_id, kind, body, body_hash, size_bytes)
         select $5, $4, $1, $17, $6::jsonb, md5($6::jsonb::text), $7 from go
         returning body_hash
       ), run as (
         insert into ${s}.runs (id, environment_id, workflow_id, version_id, status, trigger_kind, trigger_ref,
                                input_dataclip_id, save_dataclips, idempotency_key, parent_run_id, parent_step_run_id,
                                max_concurrency)
         select $4, $1, $2, $3, 'queued', $11, $12, $5, $8, coalesce($9, $18), $14, $15, $16 from go
         returning ${RUN_COLUMNS}
       ), steps as (
         insert into ${s}.step_runs (id, run_id, environment_id, workflow_id, step_id, step_key, kind, status, pending_parents,
                                     parents, successors, failure_successors, max_attempts, on_exhausted,
                                     concurrency_key, concurrency_limit, input_dataclip_id, input_hash)
         select u.id, $4, $1, $2, u.step_id, u.step_id, u.kind, case when u.pending = 0 then 'ready' else 'pending' end,
                u.pending, u.parents, u.successors, u.failure_successors, u.max_attempts, u.on_exhausted,
                u.concurrency_key, u.concurrency_limit,
                case when u.pending = 0 then $5 end, case when u.pending = 0 then input.body_hash end
           from jsonb_to_recordset($13::jsonb) as u(id text, step_id text, kind text, pending integer, parents text[],
                successors text[], failure_successors text[], max_attempts integer, on_exhausted text,
                concurrency_key text, concurrency_limit integer)
          cross join input${eager ? '\n         returning 1' : ''}
       ), logged as (
         insert into ${s}.run_events (run_id, kind, data)
         select $4, 'run.created', jsonb_build_object('trigger', $11::text) from go${eager ? '\n         returning 1' : ''}
       )
       ${eager ? eagerSelect(s) : 'select run.* from run'}`;
    const params = [
      run.environmentId,
      run.workflowId,
      run.versionId,
      run.runId,
      run.inputId,
      run.inputText,
      run.inputBytes,
      run.saveDataclips,
      opts.key,
      opts.idempotency?.ttlMs ?? 0,
      run.triggerKind,
      run.triggerRef,
      JSON.stringify(run.steps),
      run.parentRunId,
      run.parentStepRunId,
      run.maxConcurrency,
      run.inputKind,
      opts.idempotency?.key ?? null,
    ];
    // Eager start: $19–$21 (the step run, the worker, its lease) for eagerSelect.
    if (opts.eager) params.push(opts.eager.stepRunId, opts.eager.workerId, opts.eager.leaseMs);
    return (await loc.db.query<Row & { eager_claims?: Row[] }>(createSql, params)).rows;
  }

  /**
   * Cross-database claim, step 1 (SCALE.md): take the key in the home run-ops database in state
   * `pending`, naming the run about to be created, for PENDING_CLAIM_TTL_MS — a process that
   * crashes before step 3 leaves a claim that expires (resolveIdempotentRun decides then). An
   * expired claimed key is taken over; a live or pending one is not (false: resolve it instead).
   */
  private async claimPending(p: CreateRunParams, runId: string): Promise<boolean> {
    const h = this.r.home;
    const rows = await h.db.query(
      `insert into ${h.opsSchema}.idempotency_keys as k (environment_id, workflow_id, key, run_id, input_hash, state, expires_at)
       values ($1, $2, $3, $4, md5($5::jsonb::text), 'pending', now() + $6::bigint * interval '1 millisecond')
       on conflict (environment_id, workflow_id, key) do update
          set run_id = excluded.run_id, input_hash = excluded.input_hash, state = 'pending',
              expires_at = excluded.expires_at, created_at = now()
        where k.expires_at < now() and k.state = 'claimed'
       returning 1`,
      [p.environmentId, p.workflowId, p.idempotency!.key, runId, p.inputText, PENDING_CLAIM_TTL_MS],
    );
    return rows.rows.length > 0;
  }

  /** Step 3: the run exists; the claim now lives for the key's TTL. */
  private async markClaimed(p: CreateRunParams, runId: string): Promise<void> {
    const h = this.r.home;
    await h.db.query(
      `update ${h.opsSchema}.idempotency_keys
          set state = 'claimed', expires_at = now() + $5::bigint * interval '1 millisecond'
        where environment_id = $1 and workflow_id = $2 and key = $3 and run_id = $4`,
      [p.environmentId, p.workflowId, p.idempotency!.key, runId, p.idempotency!.ttlMs],
    );
  }

  private async releasePending(p: CreateRunParams, runId: string): Promise<void> {
    const h = this.r.home;
    await h.db.query(
      `delete from ${h.opsSchema}.idempotency_keys
        where environment_id = $1 and workflow_id = $2 and key = $3 and run_id = $4 and state = 'pending'`,
      [p.environmentId, p.workflowId, p.idempotency!.key, runId],
    );
  }

  /**
   * The key is taken: the run it names (same input), or `idempotency_conflict`. A `pending` key is
   * a concurrent trigger creating its run in another database: wait for its mark (or its expiry,
   * then take the key over).
   */
  private async resolveIdempotentRun(p: CreateRunParams): Promise<CreateRunResult> {
    const key = p.idempotency!.key;
    const h = this.r.home;
    const existing = await h.db.query<{ run_id: string; same_input: boolean; state: string }>(
      `select run_id, input_hash = md5($4::jsonb::text) as same_input,
              case when state = 'pending' and expires_at < now() then 'expired' else state end as state
         from ${h.opsSchema}.idempotency_keys where environment_id = $1 and workflow_id = $2 and key = $3`,
      [p.environmentId, p.workflowId, key, p.inputText],
    );
    const row = existing.rows[0];
    if (!row) {
      // The key expired and was removed between our statement and this read: try again.
      return this.createRun(p);
    }
    if (row.state === 'expired') {
      // A pending claim whose process crashed. Did it create its run before crashing (between
      // steps 2 and 3)? Then that run is the key's: mark it. Otherwise free the key and retry.
      const made = await this.queries.getRun(p.environmentId, row.run_id);
      await h.db.query(
        made
          ? `update ${h.opsSchema}.idempotency_keys
                set state = 'claimed', expires_at = now() + $5::bigint * interval '1 millisecond'
              where environment_id = $1 and workflow_id = $2 and key = $3 and run_id = $4 and state = 'pending'`
          : `delete from ${h.opsSchema}.idempotency_keys
              where environment_id = $1 and workflow_id = $2 and key = $3 and run_id = $4
                and state = 'pending' and expires_at < now()`,
        made
          ? [p.environmentId, p.workflowId, key, row.run_id, p.idempotency!.ttlMs]
          : [p.environmentId, p.workflowId, key, row.run_id],
      );
      return made ? this.resolveIdempotentRun(p) : this.createRun(p);
    }
    if (row.state === 'pending') {
      await new Promise((resolve) => setTimeout(resolve, PENDING_POLL_MS));
      return this.resolveIdempotentRun(p);
    }
    if (!row.same_input) {
      throw new WeftError(
        'idempotency_conflict',
        `Idempotency key "${key}" of workflow \`${p.workflowId}\` was already used for run ${row.run_id} with a different input. Use a new key for a different input, or send the same input to get that run back.`,
        { details: { runId: row.run_id, idempotencyKey: key } },
      );
    }
    const run = await this.queries.getRun(p.environmentId, row.run_id);
    if (!run)
      throw new WeftError(
        'internal',
        `idempotency key "${key}" points at run ${row.run_id}, which does not exist`,
      );
    return { run, deduplicated: true };
  }
}

/**
 * A new run's ids and rows: the run, its input dataclip, and its top-level step runs. Only the top
 * level is materialized now; loop and parallel bodies are materialized by their owner when it runs
 * (park_step). Edges come from the version's plan (core/plan.ts).
 */
function newRun(p: CreateRunParams, tag: string): NewRun {
  return {
    runId: mintRunScopedId('run', tag),
    inputId: mintRunScopedId('dc', tag),
    environmentId: p.environmentId,
    workflowId: p.workflowId,
    versionId: p.versionId,
    inputText: p.inputText,
    inputBytes: p.inputBytes,
    inputKind: p.inputKind ?? 'input',
    saveDataclips: p.saveDataclips,
    triggerKind: p.trigger.kind,
    triggerRef: p.trigger.ref ?? null,
    parentRunId: p.parent?.runId ?? null,
    parentStepRunId: p.parent?.stepRunId ?? null,
    maxConcurrency: p.graph.maxConcurrency ?? null,
    steps: planOf(p.graph)
      .level(null)
      .map((n) => ({
        id: mintRunScopedId('sr', tag),
        pending: n.parents.length,
        ...planNodeColumns(n, n.id, p.environmentId, p.workflowId),
      })),
  };
}

/**
 * The step run an eager start may claim: the first root in plan order, when neither it nor the
 * run has a concurrency limit (those go through claim_steps, which counts what runs).
 */
function eagerCandidate(p: CreateRunParams, steps: NewStepRun[]): string | undefined {
  if (!p.eager || p.graph.maxConcurrency != null) return undefined;
  const first = steps.find((s) => s.pending === 0);
  return first && first.concurrency_key === null ? first.id : undefined;
}

/**
 * Eager start (Temporal's "eager workflow start"): the triggering process runs a worker with a
 * free slot, so the run's first step is claimed for it by the trigger's own statement, through
 * the claim rule (claim_by_ids), and the worker starts it as soon as the commit returns. Saved:
 * the NOTIFY, the worker's wake-up and its claim round trip with its own commit (one WAL flush
 * of two). Still one statement and one round trip: claim_by_ids is called from the statement's
 * select list after `written` has counted every step run the statement inserted and
 * `created_event` its `run.created` (an unread data-modifying CTE runs after the main query,
 * and that event must come first in the run's log, before the claim's `step.started`); a volatile
 * function's statements see what the calling statement wrote before them (they run under a
 * later command id), so it finds the new row `ready` and updates it like any claim. Only a root
 * without a concurrency limit, in a run without one, in the trigger's location database
 * (eagerCandidate; createRun keeps cross-database triggers out). The other roots, if any, stay
 * ready and are signalled as usual; a deduplicated trigger writes nothing and claims nothing.
 * This is the statement's last select; $19–$21 are the step run, the worker and its lease.
 */
function eagerSelect(schema: string): string {
  return `select run.*, (select coalesce(jsonb_agg(to_jsonb(c)), '[]'::jsonb)
                  from ${schema}.claim_by_ids(array[$19::text], $20::text, $21::integer) c)
                 as eager_claims
         from run cross join (select count(*) from steps) as written
                  cross join (select count(*) from logged) as created_event`;
}
