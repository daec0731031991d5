/**
 * The run store: runs, step runs, attempts, dataclips and events across run locations.
 *
 * Routing (docs/scale.md): a run-scoped id names its location tag, so any read or write by id touches
 * exactly one location with no lookup. A well-formed id with an unknown tag goes to the default
 * (legacy) location; a malformed id is "not found". Reads by predicate (list) ask every location
 * and merge.
 */
import { WeftError } from '../core/errors.js';
import type { SerializedGraph } from '../core/graph.js';
import { mintRunScopedId, parseRunScopedId } from '../core/ids.js';
import type { Executor, Queryable } from './executor.js';
import { quoteIdent } from './migrator.js';
import { loadSourceIterations, type SourceIterationsRecord } from './rerun-iterations.js';
import { Signals } from './signals.js';
import { ENDED_RUN_STATUSES } from '../core/statuses.js';
import type {
  AttemptRecord,
  ClaimedStep,
  DataclipRecord,
  RunEventRecord,
  RunRecord,
  RunStatus,
  StepRunRecord,
  StepRunStatus,
  TriggerKind,
} from './rows.js';

export interface RunLocation {
  tag: string;
  db: Executor;
  /** Schema holding this location's run tables. */
  schema: string;
  /** Schema holding the run-ops database's idempotency keys. */
  opsSchema: string;
}

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
}

export interface CreateRunResult {
  run: RunRecord;
  deduplicated: boolean;
}

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

export interface ListRunsQuery {
  environmentId: string;
  workflowId?: string;
  statuses?: RunStatus[];
  createdFrom?: string;
  createdTo?: string;
  limit: number;
  cursor?: string;
}

/** The concurrency-limit key of a step: limits hold per environment, workflow and step. */
function concurrencyKey(environmentId: string, workflowId: string, stepId: string): string {
  return `${environmentId}:${workflowId}:${stepId}`;
}

/** Successor ids of a step run's graph level, as step run keys (the owner's index path appended). */
function keyed(stepKey: string, ids: string[]): string[] {
  const at = stepKey.indexOf('[');
  const path = at === -1 ? '' : stepKey.slice(at);
  return ids.map((id) => id + path);
}

export interface ParkRequest {
  waitpoint?: {
    id?: string;
    kind: 'sleep' | 'approval' | 'child_run';
    resumeAt?: Date;
    childRunId?: string;
    schema?: Record<string, unknown>;
  };
  body?: {
    onScopeFailure: 'fail' | 'collect';
    nodes: Array<{
      stepId: string;
      kind: string;
      parents: string[];
      successors: string[];
      failureSuccessors: string[];
      maxAttempts: number;
      onExhausted: 'fail' | 'pause';
      concurrency: number | undefined;
    }>;
    /** Body inputs per iteration, as JSON text; gated iterations wait for a free branch slot. */
    iterations: Array<{ iteration: number; input: string; gated: boolean }>;
  };
}

export interface ControlState {
  /** Body iterations materialized so far (0 before the first transition). */
  started: number;
  scopeFailure: { stepKey: string; error: unknown } | null;
  waitpoint: {
    id: string;
    kind: string;
    status: string;
    childRunId: string | null;
    payload: unknown;
  } | null;
  iterations: Map<number, { outputs: Map<string, unknown>; errors: Map<string, unknown> }>;
}

export interface WaitpointRecord {
  id: string;
  runId: string;
  stepKey: string;
  kind: 'sleep' | 'approval' | 'child_run';
  status: 'waiting' | 'completed' | 'timed_out' | 'canceled';
  resumeAt: string | null;
  payloadSchema: Record<string, unknown> | null;
  payloadDataclipId: string | null;
  childRunId: string | null;
  createdAt: string;
  completedAt: string | null;
}

export type WaitpointCompletion =
  | { status: 'not_found' }
  | { status: 'not_waiting'; waitpointStatus: string; completedAt: string | null; runId: string }
  | { status: 'wrong_kind'; kind: string; runId: string }
  | { status: 'completed'; runId: string; stepRunId: string; payloadDataclipId: string };

/** What the worker commits for a succeeded attempt. */
export interface CommitPayload {
  /** Output as validated JSON text. */
  outputText: string;
  /** JSON text of the state keys set, or null. */
  stateSet: string | null;
  stateDelete: string[] | null;
  /** Successor keys reached (live) and not reached (dead) by this outcome. */
  live: string[];
  dead: string[];
  /** Claim the next ready step of the same run for this worker in the same transaction. */
  claimNext: boolean;
  leaseMs: number;
}

export type CompleteResult =
  { status: 'fenced' } | { status: 'committed'; runStatus: RunStatus; next: ClaimedStep | null };

/** A run that failed cancels the child runs it was waiting on, like a canceled run does. */
type FailedWithChildren = { status: string; runId?: string; children?: string[] };

export type FailResult =
  { status: 'fenced' } | { status: 'retrying' | 'failed'; runStatus?: RunStatus; runId: string };

type Row = Record<string, unknown>;

const iso = (v: unknown): string => (v instanceof Date ? v.toISOString() : String(v));
const isoOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : iso(v));

function toRun(r: Row): RunRecord {
  return {
    id: r.id as string,
    environmentId: r.environment_id as string,
    workflowId: r.workflow_id as string,
    versionId: r.version_id as string,
    status: r.status as RunStatus,
    trigger: { kind: r.trigger_kind as TriggerKind, ref: (r.trigger_ref as string | null) ?? null },
    inputDataclipId: (r.input_dataclip_id as string | null) ?? null,
    finalDataclipId: (r.final_dataclip_id as string | null) ?? null,
    saveDataclips: r.save_dataclips as boolean,
    idempotencyKey: (r.idempotency_key as string | null) ?? null,
    rerunOf: (r.rerun_of as string | null) ?? null,
    rerunFromStep: (r.rerun_from_step as string | null) ?? null,
    parentRunId: (r.parent_run_id as string | null) ?? null,
    error: (r.error as RunRecord['error']) ?? null,
    createdAt: iso(r.created_at),
    startedAt: isoOrNull(r.started_at),
    finishedAt: isoOrNull(r.finished_at),
    updatedAt: iso(r.updated_at),
  };
}

function toClaimed(r: Row): ClaimedStep {
  return {
    stepRunId: r.step_run_id as string,
    runId: r.run_id as string,
    stepId: r.step_id as string,
    stepKey: r.step_key as string,
    workflowId: r.workflow_id as string,
    versionId: r.version_id as string,
    environmentId: r.environment_id as string,
    attempt: Number(r.attempt),
    maxAttempts: Number(r.max_attempts),
    input: r.input ?? null,
    state: (r.state as Record<string, unknown>) ?? {},
    saveDataclips: r.save_dataclips as boolean,
  };
}

const RUN_COLUMNS = `id, environment_id, workflow_id, version_id, status, trigger_kind, trigger_ref, input_dataclip_id,
  final_dataclip_id, save_dataclips, idempotency_key, rerun_of, rerun_from_step, parent_run_id, error,
  created_at, started_at, finished_at, updated_at`;

/** Keyset cursor: the (created_at, id) of the last row, created_at exact to the microsecond. */
interface Cursor {
  t: string;
  id: string;
}

function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify([c.t, c.id])).toString('base64url');
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
      parsed.length === 2 &&
      typeof parsed[0] === 'string' &&
      typeof parsed[1] === 'string' &&
      isCursorTime(parsed[0]) &&
      parseRunScopedId(parsed[1])?.prefix === 'run'
    ) {
      return { t: parsed[0], id: parsed[1] };
    }
  } catch {
    // fall through
  }
  throw new WeftError(
    'invalid_cursor',
    `cursor "${cursor.slice(0, 40)}" is not a cursor this API issued; pass the nextCursor of a previous page, or omit it for the first page.`,
  );
}

/**
 * After a PostgreSQL (re)start, how long the reaper waits before reaping (see reapExpiredLeases):
 * longer than a worker needs to notice the database is back (its LISTEN reconnect backoff is
 * capped at 5 s, then it renews its leases at once) and release what it could not commit.
 */
export const REAP_GRACE_AFTER_RESTART_MS = 15_000;

const ENDED_OR_PAUSED = new Set<string>([...ENDED_RUN_STATUSES, 'paused']);

export class RunStore {
  readonly locations: ReadonlyMap<string, RunLocation>;
  /** Post-commit wake-ups (ready work, ended runs), coalesced per tick. */
  readonly signals = new Signals();

  /** Tell waiters (RunWatcher, SSE) that a run ended or paused; after its transaction committed. */
  private signalRunEnd(runId: string, runStatus: string | undefined): void {
    if (runStatus === undefined || !ENDED_OR_PAUSED.has(runStatus)) return;
    const loc = this.locationOf(runId);
    if (loc) this.signals.send(loc.db, 'weft_run_finished', runId);
  }

  /**
   * Wake workers of the environments a location function made work ready in: the `wake` list of
   * its result (src/store/sql/location/wake.sql), sent after the commit, never inside it.
   */
  private signalWoken(loc: RunLocation, result: unknown): void {
    const wake = (result as { wake?: unknown } | null)?.wake;
    if (!Array.isArray(wake)) return;
    for (const env of wake)
      if (typeof env === 'string') this.signals.send(loc.db, 'weft_ready', env);
  }
  readonly defaultTag: string;

  constructor(locations: RunLocation[], defaultTag: string) {
    if (locations.length === 0)
      throw new WeftError('invalid_config', 'at least one run location is required');
    for (const l of locations) {
      quoteIdent(l.schema);
      quoteIdent(l.opsSchema);
    }
    this.locations = new Map(locations.map((l) => [l.tag, l]));
    if (!this.locations.has(defaultTag)) {
      throw new WeftError(
        'invalid_config',
        `default run location "${defaultTag}" is not among the configured locations (${[...this.locations.keys()].join(', ')})`,
      );
    }
    this.defaultTag = defaultTag;
  }

  /** The location an id routes to, or undefined for a malformed id. O(1), no query. */
  locationOf(id: string): RunLocation | undefined {
    const parsed = parseRunScopedId(id);
    if (!parsed) return undefined;
    return this.locations.get(parsed.tag) ?? this.locations.get(this.defaultTag);
  }

  private location(tag: string | undefined): RunLocation {
    const loc = this.locations.get(tag ?? this.defaultTag);
    if (!loc) throw new WeftError('invalid_config', `run location "${tag}" is not configured`);
    return loc;
  }

  /**
   * Create a run in one statement (one round trip, one transaction): idempotency claim, input
   * dataclip, run row, every step run of the graph (roots ready), the `run.created` event, and a
   * NOTIFY that wakes idle workers. With an idempotency key that is already claimed and unexpired
   * nothing is written and the existing run is returned (`deduplicated`), or `idempotency_conflict`
   * when the input differs. Concurrent identical triggers serialize on the key's unique index.
   */
  async createRun(p: CreateRunParams): Promise<CreateRunResult> {
    const loc = this.location(p.locationTag);
    const s = loc.schema;
    const runId = mintRunScopedId('run', loc.tag);
    const inputId = mintRunScopedId('dc', loc.tag);
    const parents = new Map<string, string[]>();
    const successors = new Map<string, string[]>();
    const failureSuccessors = new Map<string, string[]>();
    for (const node of p.graph.nodes) {
      parents.set(node.id, []);
      successors.set(node.id, []);
      failureSuccessors.set(node.id, []);
    }
    for (const e of p.graph.edges) {
      parents.get(e.to)!.push(e.from);
      successors.get(e.from)!.push(e.to);
      if (e.on === 'failure' || e.on === 'always') failureSuccessors.get(e.from)!.push(e.to);
    }
    // Only the top level is materialized now; loop and parallel bodies are materialized by their
    // owner when it runs (park_step).
    const steps = p.graph.nodes
      .filter((n) => n.scope === undefined)
      .map((n) => ({
        id: mintRunScopedId('sr', loc.tag),
        step_id: n.id,
        kind: n.kind,
        pending: parents.get(n.id)!.length,
        parents: parents.get(n.id)!,
        successors: successors.get(n.id)!,
        failure_successors: failureSuccessors.get(n.id)!,
        max_attempts: n.maxAttempts,
        on_exhausted: n.onExhausted,
        concurrency_key:
          n.concurrency === undefined ? null : concurrencyKey(p.environmentId, p.workflowId, n.id),
        concurrency_limit: n.concurrency ?? null,
      }));
    const key = p.idempotency?.key ?? null;
    // One round trip: the run row comes back from the statement that wrote it.
    const rows = await loc.db.query<Row>(
      `with key_claim as (
         insert into ${loc.opsSchema}.idempotency_keys (environment_id, workflow_id, key, run_id, input_hash, expires_at)
         select $1, $2, $9::text, $4, md5($6::jsonb::text), now() + $10::bigint * interval '1 millisecond'
          where $9::text is not null
         on conflict (environment_id, workflow_id, key) do update
            set run_id = excluded.run_id, input_hash = excluded.input_hash, expires_at = excluded.expires_at,
                state = 'claimed', created_at = now()
          where ${loc.opsSchema}.idempotency_keys.expires_at < now()
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
         select $4, $1, $2, $3, 'queued', $11, $12, $5, $8, $9, $14, $15, $16 from go
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
          cross join input
       ), logged as (
         insert into ${s}.run_events (run_id, kind, data)
         select $4, 'run.created', jsonb_build_object('trigger', $11::text) from go
       )
       select run.* from run`,
      [
        p.environmentId,
        p.workflowId,
        p.versionId,
        runId,
        inputId,
        p.inputText,
        p.inputBytes,
        p.saveDataclips,
        key,
        p.idempotency?.ttlMs ?? 0,
        p.trigger.kind,
        p.trigger.ref ?? null,
        JSON.stringify(steps),
        p.parent?.runId ?? null,
        p.parent?.stepRunId ?? null,
        p.graph.maxConcurrency ?? null,
        p.inputKind ?? 'input',
      ],
    );
    const created = rows.rows[0];
    if (created) {
      this.signals.send(loc.db, 'weft_ready', p.environmentId);
      return { run: toRun(created), deduplicated: false };
    }
    return this.resolveIdempotentRun(loc, p);
  }

  private async resolveIdempotentRun(
    loc: RunLocation,
    p: CreateRunParams,
  ): Promise<CreateRunResult> {
    const key = p.idempotency!.key;
    const existing = await loc.db.query<{ run_id: string; same_input: boolean }>(
      `select run_id, input_hash = md5($4::jsonb::text) as same_input
         from ${loc.opsSchema}.idempotency_keys where environment_id = $1 and workflow_id = $2 and key = $3`,
      [p.environmentId, p.workflowId, key, p.inputText],
    );
    const row = existing.rows[0];
    if (!row) {
      // The key expired and was removed between our statement and this read: try again.
      return this.createRun(p);
    }
    if (!row.same_input) {
      throw new WeftError(
        'idempotency_conflict',
        `Idempotency key "${key}" of workflow \`${p.workflowId}\` was already used for run ${row.run_id} with a different input. Use a new key for a different input, or send the same input to get that run back.`,
        { details: { runId: row.run_id, idempotencyKey: key } },
      );
    }
    const run = await this.getRun(p.environmentId, row.run_id);
    if (!run)
      throw new WeftError(
        'internal',
        `idempotency key "${key}" points at run ${row.run_id}, which does not exist`,
      );
    return { run, deduplicated: true };
  }

  /**
   * Read what the rerun planner needs from a source run: its top-level step runs (status, output
   * and whether its body was wiped, input hash, live parents) and its input's hash. With
   * `newInputText`, also the hash a new input will have (computed by the database, the same
   * canonical jsonb text the step runs' input hashes use). Two reads, no writes.
   */
  async loadRerunSource(source: RunRecord, newInputText?: string): Promise<RerunSource> {
    const loc = this.locationOf(source.id)!;
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
      const loc = this.locationOf(current);
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
    const loc = this.locationOf(p.source.id)!;
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
        step_id: s.stepId,
        kind: s.kind,
        reused_from: s.reusedFrom ?? null,
        pending: s.pending,
        parents: s.parents,
        successors: s.successors,
        failure_successors: s.failureSuccessors,
        live_from: s.liveFrom,
        max_attempts: s.maxAttempts,
        on_exhausted: s.onExhausted,
        concurrency_key:
          s.concurrency === undefined
            ? null
            : concurrencyKey(p.environmentId, p.workflowId, s.stepId),
        concurrency_limit: s.concurrency ?? null,
      })),
    };
    const body = p.iterationBody;
    const withBody = body && {
      ...payload,
      body: {
        ...body,
        park: body.park && {
          ...body.park,
          nodes: body.park.nodes.map((n) => ({
            step_id: n.stepId,
            kind: n.kind,
            parents: n.parents,
            successors: n.successors,
            failure_successors: n.failureSuccessors,
            max_attempts: n.maxAttempts,
            on_exhausted: n.onExhausted,
            concurrency_key:
              n.concurrency === undefined
                ? null
                : concurrencyKey(p.environmentId, p.workflowId, n.stepId),
            concurrency_limit: n.concurrency ?? null,
          })),
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
      this.signals.send(loc.db, 'weft_ready', p.environmentId);
      this.signalRunEnd(run.id, run.status);
    }
    return run;
  }

  /** The body of a source run's loop or parallel step run, per iteration (rerun from `s[k]`). */
  async loadSourceIterations(ownerStepRunId: string): Promise<SourceIterationsRecord | undefined> {
    const loc = this.locationOf(ownerStepRunId);
    if (!loc) return undefined;
    return loadSourceIterations(loc.db, loc.schema, ownerStepRunId);
  }

  async getRun(environmentId: string, runId: string): Promise<RunRecord | undefined> {
    const loc = this.locationOf(runId);
    if (!loc) return undefined;
    const rows = await loc.db.query<Row>(
      `select ${RUN_COLUMNS} from ${loc.schema}.runs where id = $1 and environment_id = $2`,
      [runId, environmentId],
    );
    return rows.rows[0] ? toRun(rows.rows[0]) : undefined;
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
    const loc = this.locationOf(runId);
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
      [...this.locations.values()].map(async (loc) => {
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
    const cursor = q.cursor ? decodeCursor(q.cursor) : undefined;
    const pages = await Promise.all(
      [...this.locations.values()].map(async (loc) => {
        const where = ['environment_id = $1'];
        const params: unknown[] = [q.environmentId];
        const add = (sql: string, value: unknown): void => {
          params.push(value);
          where.push(sql.replaceAll('$?', `$${params.length}`));
        };
        if (q.workflowId) add('workflow_id = $?', q.workflowId);
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
        ? encodeCursor({ t: last.created_key as string, id: last.id as string })
        : null;
    return { data: page.map(toRun), nextCursor };
  }

  async listStepRuns(environmentId: string, runId: string): Promise<StepRunRecord[] | undefined> {
    const loc = this.locationOf(runId);
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
    const loc = this.locationOf(dataclipId);
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

  async listRunEvents(
    environmentId: string,
    runId: string,
    afterId = 0,
    limit = 1000,
  ): Promise<RunEventRecord[] | undefined> {
    const loc = this.locationOf(runId);
    if (!loc) return undefined;
    const rows = await loc.db.query<Row>(
      `select e.id::text as id, e.run_id, e.kind, e.step_key, e.attempt, e.data, e.created_at
         from ${loc.schema}.run_events e join ${loc.schema}.runs r on r.id = e.run_id
        where e.run_id = $1 and r.environment_id = $2 and e.id > $3 order by e.id limit $4`,
      [runId, environmentId, afterId, limit],
    );
    return rows.rows.map((r) => ({
      id: r.id as string,
      runId: r.run_id as string,
      kind: r.kind as string,
      stepKey: (r.step_key as string | null) ?? null,
      attempt: r.attempt === null ? null : Number(r.attempt),
      data: r.data ?? null,
      createdAt: iso(r.created_at),
    }));
  }

  /**
   * Register interest in a run's live events until `ttlMs` from now: while registered, the
   * commit of each of its events sends NOTIFY `weft_events` (location migration 0002). Renew
   * before it expires; a server that dies simply stops renewing. Expired registrations of the
   * location are deleted on the way.
   */
  async watchRunEvents(runIds: string[], watcherId: string, ttlMs: number): Promise<void> {
    const byLoc = new Map<RunLocation, string[]>();
    for (const id of runIds) {
      const loc = this.locationOf(id);
      if (loc) byLoc.set(loc, [...(byLoc.get(loc) ?? []), id]);
    }
    await Promise.all(
      [...byLoc].map(([loc, ids]) =>
        loc.db.query(
          `with swept as (
             delete from ${loc.schema}.run_event_watchers where expires_at < now() - interval '1 minute'
           )
           insert into ${loc.schema}.run_event_watchers (run_id, watcher_id, expires_at)
           select unnest($1::text[]), $2, now() + $3 * interval '1 millisecond'
           on conflict (run_id, watcher_id) do update set expires_at = excluded.expires_at`,
          [ids, watcherId, ttlMs],
        ),
      ),
    );
  }

  /**
   * Like listRunEvents, but only events no concurrent transaction can still slip in front of —
   * what a cursor (SSE `Last-Event-ID`) needs. Ids are allocated at insert, not at commit: two
   * transactions writing events of one run (parallel branches) can commit out of id order, and
   * a plain read between the commits would move a cursor past the lower id for good. So the
   * read also takes its snapshot; if transactions were in flight then, it waits (up to
   * `maxWaitMs`, polling their status) until they have ended, and returns the events up to the
   * last id of the first read, re-read: the late ones included. PGlite runs one transaction at
   * a time, so there the plain read is already settled.
   */
  async listSettledRunEvents(
    environmentId: string,
    runId: string,
    afterId = 0,
    limit = 1000,
    maxWaitMs = 2000,
  ): Promise<RunEventRecord[] | undefined> {
    const loc = this.locationOf(runId);
    if (!loc) return undefined;
    if (loc.db.kind === 'pglite') return this.listRunEvents(environmentId, runId, afterId, limit);
    const first = await loc.db.query<{ last: string | null; busy: boolean }>(
      `with page as (
         select e.id from ${loc.schema}.run_events e join ${loc.schema}.runs r on r.id = e.run_id
          where e.run_id = $1 and r.environment_id = $2 and e.id > $3 order by e.id limit $4
       )
       select (select max(id) from page)::text as last,
              exists (select 1 from pg_snapshot_xip(pg_current_snapshot()) x
                       where x <> coalesce(pg_current_xact_id_if_assigned(), '0'::xid8)) as busy,
              pg_current_snapshot()::text as snapshot`,
      [runId, environmentId, afterId, limit],
    );
    const row = first.rows[0] as { last: string | null; busy: boolean; snapshot: string };
    if (row.last === null) return [];
    if (row.busy) {
      const deadline = Date.now() + maxWaitMs;
      for (;;) {
        const status = await loc.db.query<{ busy: boolean }>(
          `select exists (select 1 from pg_snapshot_xip($1::pg_snapshot) x
                           where pg_xact_status(x) = 'in progress') as busy`,
          [row.snapshot],
        );
        if (!status.rows[0]?.busy || Date.now() >= deadline) break;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
    const upTo = Number(row.last);
    const events = await this.listRunEvents(environmentId, runId, afterId, limit);
    return events?.filter((e) => Number(e.id) <= upTo);
  }

  async unwatchRunEvents(runId: string, watcherId: string): Promise<void> {
    const loc = this.locationOf(runId);
    if (!loc) return;
    await loc.db.query(
      `delete from ${loc.schema}.run_event_watchers where run_id = $1 and watcher_id = $2`,
      [runId, watcherId],
    );
  }

  /**
   * Claim up to `limit` ready step runs across locations: one round trip per location asked
   * (claim_steps: partial index step_runs_ready, `for update skip locked`, attempt rows written in
   * the same statement). Locations are asked in rotation so none starves.
   */
  private claimRotation = 0;
  async claimSteps(
    workerId: string,
    environmentIds: string[],
    workflowIds: string[],
    limit: number,
    leaseMs: number,
  ): Promise<ClaimedStep[]> {
    const locs = [...this.locations.values()];
    const out: ClaimedStep[] = [];
    const start = this.claimRotation++ % locs.length;
    for (let i = 0; i < locs.length && out.length < limit; i++) {
      const loc = locs[(start + i) % locs.length]!;
      const rows = await loc.db.query<Row>(
        `select * from ${loc.schema}.claim_steps($1, $2, $3, $4, $5)`,
        [workerId, environmentIds, workflowIds, limit - out.length, leaseMs],
      );
      for (const r of rows.rows) out.push(toClaimed(r));
    }
    return out;
  }

  /** Commit a succeeded attempt: one round trip (complete_step). See the function's comment. */
  async completeStep(
    claim: ClaimedStep,
    workerId: string,
    c: CommitPayload,
  ): Promise<CompleteResult> {
    const loc = this.locationOf(claim.stepRunId)!;
    const outputId = mintRunScopedId('dc', loc.tag);
    const rows = await loc.db.query<{
      r: { status: string; runStatus?: RunStatus; next?: Row | null };
    }>(
      `select ${loc.schema}.complete_step($1, $2, $3, $4, $5, $6::jsonb, $7::text[], $8::text[], $9::text[], $10, $11) as r`,
      [
        claim.stepRunId,
        claim.attempt,
        workerId,
        c.outputText,
        outputId,
        c.stateSet,
        c.stateDelete,
        keyed(claim.stepKey, c.live),
        keyed(claim.stepKey, c.dead),
        c.claimNext,
        c.leaseMs,
      ],
    );
    const r = rows.rows[0]!.r;
    if (r.status === 'fenced') return { status: 'fenced' };
    this.signalWoken(loc, r);
    this.signalRunEnd(claim.runId, r.runStatus);
    return {
      status: 'committed',
      runStatus: r.runStatus!,
      // The next step belongs to the same run: same version and dataclip setting.
      next: r.next
        ? toClaimed({ ...r.next, version_id: claim.versionId, save_dataclips: claim.saveDataclips })
        : null,
    };
  }

  /**
   * Group commit: commit several succeeded attempts with one statement per location (one
   * transaction, one WAL flush for all of them). Items are sorted by run id inside each batch so
   * that concurrent batches take run-row locks in the same order. Results come back in the order
   * of `items`. If the batch statement fails as a whole (e.g. a deadlock with a batch of another
   * worker), the caller retries the items one by one.
   */
  async completeSteps(
    items: Array<{ claim: ClaimedStep; workerId: string; commit: CommitPayload }>,
  ): Promise<CompleteResult[]> {
    if (items.length === 1) {
      const only = items[0]!;
      return [await this.completeStep(only.claim, only.workerId, only.commit)];
    }
    const results = new Array<CompleteResult>(items.length);
    const byLoc = new Map<RunLocation, number[]>();
    items.forEach((item, i) => {
      const loc = this.locationOf(item.claim.stepRunId)!;
      byLoc.set(loc, [...(byLoc.get(loc) ?? []), i]);
    });
    await Promise.all(
      [...byLoc].map(async ([loc, indexes]) => {
        indexes.sort((a, b) => {
          const ra = items[a]!.claim.runId;
          const rb = items[b]!.claim.runId;
          return ra < rb ? -1 : ra > rb ? 1 : 0;
        });
        const payload = indexes.map((i) => {
          const { claim, workerId, commit } = items[i]!;
          return {
            stepRunId: claim.stepRunId,
            attempt: claim.attempt,
            worker: workerId,
            output: commit.outputText,
            outputId: mintRunScopedId('dc', loc.tag),
            stateSet: commit.stateSet === null ? null : (JSON.parse(commit.stateSet) as unknown),
            stateDelete: commit.stateDelete,
            live: keyed(claim.stepKey, commit.live),
            dead: keyed(claim.stepKey, commit.dead),
            claimNext: commit.claimNext,
            leaseMs: commit.leaseMs,
          };
        });
        const rows = await loc.db.query<{
          r: Array<{ status: string; runStatus?: RunStatus; next?: Row | null }>;
        }>(`select ${loc.schema}.complete_steps($1::jsonb) as r`, [JSON.stringify(payload)]);
        rows.rows[0]!.r.forEach((r, k) => {
          const claim = items[indexes[k]!]!.claim;
          this.signalWoken(loc, r);
          if (r.status !== 'fenced') this.signalRunEnd(claim.runId, r.runStatus);
          results[indexes[k]!] =
            r.status === 'fenced'
              ? { status: 'fenced' }
              : {
                  status: 'committed',
                  runStatus: r.runStatus!,
                  next: r.next
                    ? toClaimed({
                        ...r.next,
                        version_id: claim.versionId,
                        save_dataclips: claim.saveDataclips,
                      })
                    : null,
                };
        });
      }),
    );
    return results;
  }

  /**
   * Record a failed attempt (worker path: fenced by the worker's lease). `retryDelayMs` null means
   * no further attempt (terminal error or last attempt).
   */
  async failStep(
    claim: ClaimedStep,
    workerId: string,
    error: unknown,
    retryDelayMs: number | null,
    edges?: { live: string[]; dead: string[] },
  ): Promise<FailResult> {
    const loc = this.locationOf(claim.stepRunId)!;
    const rows = await loc.db.query<{ r: FailResult }>(
      `select ${loc.schema}.fail_step($1, $2, $3, 'failed', $4::jsonb, $5, $6::text[], $7::text[]) as r`,
      [
        claim.stepRunId,
        claim.attempt,
        workerId,
        JSON.stringify(error),
        retryDelayMs,
        edges ? keyed(claim.stepKey, edges.live) : null,
        edges ? keyed(claim.stepKey, edges.dead) : null,
      ],
    );
    const r = rows.rows[0]!.r;
    this.signalWoken(loc, r);
    if (r.status !== 'fenced') {
      await this.cancelChildren(claim.environmentId, r);
      this.signalRunEnd(r.runId, r.runStatus);
    }
    return r;
  }

  /**
   * Give an attempt back without charging it: the database failed, not the step (its commit could
   * not be made before the lease ran out, or its lease could not be renewed through an outage).
   * In one transaction: the step run's attempt budget (`max_attempts`) grows by one — as
   * resume_run grows it — and the attempt is recorded `lost` with `error` (whose `charged: false`
   * says why), the step requeued at once. Fenced like a commit, except that the lease may have
   * expired: the attempt must still be the step run's current one, running, owned by `workerId` —
   * so it was neither reaped (a reaped attempt stays charged), canceled, nor ended meanwhile.
   * Returns `fenced` otherwise, changing nothing.
   *
   * If the process dies before this commits, the reaper charges the attempt as usual.
   */
  async releaseAttempt(
    claim: ClaimedStep,
    workerId: string,
    error: unknown,
  ): Promise<'released' | 'fenced'> {
    const loc = this.locationOf(claim.stepRunId)!;
    const outcome = await loc.db.transaction(async (tx) => {
      const bumped = await tx.query<{ valid: boolean }>(
        `update ${loc.schema}.step_runs set max_attempts = max_attempts + 1
          where id = $1 and status = 'running' and attempt_count = $2 and lease_owner = $3
          returning lease_expires_at >= now() as valid`,
        [claim.stepRunId, claim.attempt, workerId],
      );
      const row = bumped.rows[0];
      if (!row) return 'fenced' as const;
      // fail_step's fence: the owner with a valid lease, or (null) an expired lease — the same
      // now() as the update above, so exactly one of the two matches.
      const failed = await tx.query<{ r: FailResult }>(
        `select ${loc.schema}.fail_step($1, $2, $3, 'lost', $4::jsonb, 0) as r`,
        [claim.stepRunId, claim.attempt, row.valid ? workerId : null, JSON.stringify(error)],
      );
      this.signalWoken(loc, failed.rows[0]!.r);
      return failed.rows[0]!.r.status === 'retrying' ? ('released' as const) : ('fenced' as const);
    });
    // (a woken environment of a rolled-back transaction gets a spare wake-up: harmless)
    if (outcome === 'released') this.signals.send(loc.db, 'weft_ready', claim.environmentId);
    return outcome;
  }

  /**
   * Step runs of a run that `workerId` holds (running, its lease). After a commit whose reply was
   * lost, the commit may have claimed the next step for this worker in the same transaction: the
   * worker finds it here and releases it rather than let it wait out its lease.
   */
  async heldStepRuns(runId: string, workerId: string): Promise<ClaimedStep[]> {
    const loc = this.locationOf(runId);
    if (!loc) return [];
    const rows = await loc.db.query<Row>(
      `select s.id as step_run_id, s.run_id, s.step_id, s.step_key, s.workflow_id, r.version_id,
              s.environment_id, s.attempt_count as attempt, s.max_attempts, null::jsonb as input,
              null::jsonb as state, r.save_dataclips
         from ${loc.schema}.step_runs s join ${loc.schema}.runs r on r.id = s.run_id
        where s.run_id = $1 and s.status = 'running' and s.lease_owner = $2`,
      [runId, workerId],
    );
    return rows.rows.map(toClaimed);
  }

  /**
   * A control node parks: it waits on a waitpoint and/or on the body step runs materialized here,
   * in one statement fenced like a commit. See park_step.
   */
  async parkStep(
    claim: ClaimedStep,
    workerId: string,
    park: ParkRequest,
  ): Promise<'parked' | 'fenced'> {
    const loc = this.locationOf(claim.stepRunId)!;
    const payload: Record<string, unknown> = {};
    if (park.waitpoint) {
      const w: Record<string, unknown> = {
        id: park.waitpoint.id ?? mintRunScopedId('wp', loc.tag),
        kind: park.waitpoint.kind,
      };
      if (park.waitpoint.resumeAt) w.resumeAt = park.waitpoint.resumeAt.toISOString();
      if (park.waitpoint.childRunId) w.childRunId = park.waitpoint.childRunId;
      if (park.waitpoint.schema) w.schema = park.waitpoint.schema;
      payload.waitpoint = w;
    }
    if (park.body) {
      payload.body = {
        onScopeFailure: park.body.onScopeFailure,
        nodes: park.body.nodes.map((n) => ({
          step_id: n.stepId,
          kind: n.kind,
          parents: n.parents,
          successors: n.successors,
          failure_successors: n.failureSuccessors,
          max_attempts: n.maxAttempts,
          on_exhausted: n.onExhausted,
          concurrency_key:
            n.concurrency === undefined
              ? null
              : concurrencyKey(claim.environmentId, claim.workflowId, n.stepId),
          concurrency_limit: n.concurrency ?? null,
        })),
        iterations: park.body.iterations,
      };
    }
    const rows = await loc.db.query<{ r: { status: 'parked' | 'fenced' } }>(
      `select ${loc.schema}.park_step($1, $2, $3, $4::jsonb) as r`,
      [claim.stepRunId, claim.attempt, workerId, JSON.stringify(payload)],
    );
    this.signalWoken(loc, rows.rows[0]!.r);
    return rows.rows[0]!.r.status;
  }

  /**
   * What a control node's next transition needs to know: its own step run (error set by a failed
   * body), the waitpoint it waited on, and the results of its body (per iteration: the leaves —
   * succeeded steps none of whose successors ran — and the steps that failed for good).
   */
  async controlState(claim: ClaimedStep): Promise<ControlState> {
    const loc = this.locationOf(claim.stepRunId)!;
    const [owner, waitpoint, results] = await Promise.all([
      loc.db.query<{
        error: { scopeFailure?: ControlState['scopeFailure'] } | null;
        started: number | null;
      }>(
        `select error, (select max(iteration) + 1 from ${loc.schema}.step_runs b where b.run_id = o.run_id and b.scope_key = o.step_key)::int as started
           from ${loc.schema}.step_runs o where id = $1`,
        [claim.stepRunId],
      ),
      loc.db.query<Row>(
        `select w.id, w.kind, w.status, w.child_run_id, d.body as payload from ${loc.schema}.waitpoints w
           left join ${loc.schema}.dataclips d on d.id = w.payload_dataclip_id
          where w.step_run_id = $1 order by w.created_at desc limit 1`,
        [claim.stepRunId],
      ),
      loc.db.query<Row>(
        `select s.iteration, s.step_id, s.status, d.body, s.error from ${loc.schema}.step_runs s
           left join ${loc.schema}.dataclips d on d.id = s.output_dataclip_id
          where s.run_id = $1 and s.scope_key = $2 and s.status in ('succeeded', 'failed')
            and not exists (select 1 from ${loc.schema}.step_runs c where c.run_id = s.run_id and c.step_key = any(s.successors)
                             and c.status in ('succeeded', 'failed'))
          order by s.iteration, s.step_id`,
        [claim.runId, claim.stepKey],
      ),
    ]);
    const w = waitpoint.rows[0];
    const iterations = new Map<
      number,
      { outputs: Map<string, unknown>; errors: Map<string, unknown> }
    >();
    for (const r of results.rows) {
      const i = Number(r.iteration);
      const entry = iterations.get(i) ?? { outputs: new Map(), errors: new Map() };
      if (r.status === 'succeeded') entry.outputs.set(r.step_id as string, r.body ?? null);
      else entry.errors.set(r.step_id as string, r.error ?? null);
      iterations.set(i, entry);
    }
    return {
      started: owner.rows[0]?.started ?? 0,
      scopeFailure: owner.rows[0]?.error?.scopeFailure ?? null,
      waitpoint: w
        ? {
            id: w.id as string,
            kind: w.kind as string,
            status: w.status as string,
            childRunId: (w.child_run_id as string | null) ?? null,
            payload: w.payload ?? null,
          }
        : null,
      iterations,
    };
  }

  /** Complete an approval token (payload already validated). Routed by the token's location tag. */
  async completeWaitpoint(
    environmentId: string,
    token: string,
    payloadText: string,
  ): Promise<WaitpointCompletion> {
    const loc = this.locationOf(token);
    if (!loc || parseRunScopedId(token)?.prefix !== 'wp') return { status: 'not_found' };
    const rows = await loc.db.query<{ r: WaitpointCompletion }>(
      `select ${loc.schema}.complete_waitpoint($1, $2, $3) as r`,
      [token, environmentId, payloadText],
    );
    this.signalWoken(loc, rows.rows[0]!.r);
    const { wake: _wake, ...r } = rows.rows[0]!.r as WaitpointCompletion & { wake?: unknown };
    return r;
  }

  async getWaitpoint(environmentId: string, token: string): Promise<WaitpointRecord | undefined> {
    const loc = this.locationOf(token);
    if (!loc || parseRunScopedId(token)?.prefix !== 'wp') return undefined;
    const rows = await loc.db.query<Row>(
      `select w.id, w.run_id, w.kind, w.status, w.resume_at, w.payload_schema, w.payload_dataclip_id, w.child_run_id,
              w.created_at, w.completed_at, s.step_key
         from ${loc.schema}.waitpoints w join ${loc.schema}.step_runs s on s.id = w.step_run_id
        where w.id = $1 and w.environment_id = $2`,
      [token, environmentId],
    );
    const r = rows.rows[0];
    if (!r) return undefined;
    return {
      id: r.id as string,
      runId: r.run_id as string,
      stepKey: r.step_key as string,
      kind: r.kind as WaitpointRecord['kind'],
      status: r.status as WaitpointRecord['status'],
      resumeAt: isoOrNull(r.resume_at),
      payloadSchema: (r.payload_schema as Record<string, unknown> | null) ?? null,
      payloadDataclipId: (r.payload_dataclip_id as string | null) ?? null,
      childRunId: (r.child_run_id as string | null) ?? null,
      createdAt: iso(r.created_at),
      completedAt: isoOrNull(r.completed_at),
    };
  }

  async listWaitpoints(environmentId: string, runId: string): Promise<WaitpointRecord[]> {
    const loc = this.locationOf(runId);
    if (!loc) return [];
    const rows = await loc.db.query<{ id: string }>(
      `select id from ${loc.schema}.waitpoints where run_id = $1 and environment_id = $2 order by created_at`,
      [runId, environmentId],
    );
    const out = await Promise.all(rows.rows.map((r) => this.getWaitpoint(environmentId, r.id)));
    return out.filter((w): w is WaitpointRecord => w !== undefined);
  }

  /**
   * A child run may end before its parent step has parked on it; then finish_run found no
   * waitpoint to complete. The parent calls this right after parking to close that gap.
   */
  async wakeParentIfChildEnded(parentStepRunId: string, childRunId: string): Promise<boolean> {
    const loc = this.locationOf(parentStepRunId)!;
    const child = this.locationOf(childRunId);
    if (!child) return false;
    const ended = await child.db.query(
      `select 1 from ${child.schema}.runs where id = $1 and ${child.schema}.run_ended(status)`,
      [childRunId],
    );
    if (ended.rows.length === 0) return false;
    const rows = await loc.db.query(
      `with done as (
         update ${loc.schema}.waitpoints set status = 'completed', completed_at = now()
          where step_run_id = $1 and child_run_id = $2 and status = 'waiting' returning step_run_id, environment_id
       ), woke as (
         update ${loc.schema}.step_runs s set status = 'ready', available_at = now()
           from done where s.id = done.step_run_id and s.status = 'waiting' returning s.environment_id
       )
       select environment_id from woke`,
      [parentStepRunId, childRunId],
    );
    this.signalWoken(loc, { wake: rows.rows.map((r) => r.environment_id) });
    return rows.rows.length > 0;
  }

  /** Due sleeps complete and expired approvals time out (every location). */
  async fireDueWaitpoints(limit = 100): Promise<number> {
    let n = 0;
    for (const loc of this.locations.values()) {
      const rows = await loc.db.query<{ r: { fired: number; wake: string[] } }>(
        `select ${loc.schema}.fire_due_waitpoints($1) as r`,
        [limit],
      );
      this.signalWoken(loc, rows.rows[0]?.r);
      n += Number(rows.rows[0]?.r.fired ?? 0);
    }
    return n;
  }

  /** Earliest time a waiting waitpoint comes due (to schedule the timer). */
  async nextWaitpointDue(): Promise<Date | null> {
    let earliest: Date | null = null;
    for (const loc of this.locations.values()) {
      const rows = await loc.db.query<{ t: Date | null }>(
        `select min(resume_at) as t from ${loc.schema}.waitpoints where status = 'waiting'`,
      );
      const t = rows.rows[0]?.t ?? null;
      if (t && (!earliest || new Date(t) < earliest)) earliest = new Date(t);
    }
    return earliest;
  }

  /**
   * Cancel a run and, in turn, the child runs it waits on (wherever they live). Returns
   * 'not_found', 'not_active' (already ended, with its status) or 'canceled'.
   */
  async cancelRun(
    environmentId: string,
    runId: string,
    reason: string,
  ): Promise<{ status: 'not_found' | 'not_active' | 'canceled'; runStatus?: RunStatus }> {
    const loc = this.locationOf(runId);
    if (!loc) return { status: 'not_found' };
    const rows = await loc.db.query<{
      r: {
        status: 'not_found' | 'not_active' | 'canceled';
        runStatus?: RunStatus;
        children?: string[];
      };
    }>(`select ${loc.schema}.cancel_run($1, $2, $3) as r`, [runId, environmentId, reason]);
    const r = rows.rows[0]!.r;
    this.signalWoken(loc, r);
    if (r.status === 'canceled') {
      // workers abort the attempts' ctx.signal at once (after the commit, like every signal)
      this.signals.send(loc.db, 'weft_cancel', runId);
      this.signalRunEnd(runId, 'canceled');
    }
    for (const child of r.children ?? [])
      await this.cancelRun(environmentId, child, `parent run ${runId} was canceled`);
    return r.runStatus ? { status: r.status, runStatus: r.runStatus } : { status: r.status };
  }

  async resumeRun(
    environmentId: string,
    runId: string,
    options: { versionId?: string; budgets: Record<string, number> },
  ): Promise<{
    status: 'not_found' | 'not_paused' | 'resumed';
    runStatus?: RunStatus;
    steps?: string[];
  }> {
    const loc = this.locationOf(runId);
    if (!loc) return { status: 'not_found' };
    const rows = await loc.db.query<{
      r: {
        status: 'not_found' | 'not_paused' | 'resumed';
        runStatus?: RunStatus;
        steps?: string[];
      };
    }>(`select ${loc.schema}.resume_run($1, $2, $3, $4::jsonb) as r`, [
      runId,
      environmentId,
      options.versionId ?? null,
      JSON.stringify(options.budgets),
    ]);
    this.signalWoken(loc, rows.rows[0]!.r);
    const { wake: _wake, ...r } = rows.rows[0]!.r as (typeof rows.rows)[0]['r'] & {
      wake?: unknown;
    };
    return r;
  }

  /** Extend the leases of step runs a worker holds; returns the ids it still holds. */
  async extendLeases(
    workerId: string,
    stepRunIds: string[],
    leaseMs: number,
  ): Promise<Set<string>> {
    const byLoc = new Map<RunLocation, string[]>();
    for (const id of stepRunIds) {
      const loc = this.locationOf(id);
      if (!loc) continue;
      byLoc.set(loc, [...(byLoc.get(loc) ?? []), id]);
    }
    const held = new Set<string>();
    await Promise.all(
      [...byLoc].map(async ([loc, ids]) => {
        const rows = await loc.db.query<{ ids: string[] }>(
          `select ${loc.schema}.extend_leases($1, $2, $3) as ids`,
          [workerId, ids, leaseMs],
        );
        for (const id of rows.rows[0]?.ids ?? []) held.add(id);
      }),
    );
    return held;
  }

  /**
   * The reaper: attempts whose lease expired (their worker died, paused or lost the database) are
   * marked `lost` — they count as used — and their step is requeued at once, or, when that was the
   * last attempt, fails (following failure edges, pausing or failing the run). Rows are taken with
   * `skip locked`, so several reapers never handle the same attempt; fail_step re-checks the
   * expiry under the row lock, so a lease extended in between is left alone.
   *
   * Nothing is reaped in the first REAP_GRACE_AFTER_RESTART_MS after the PostgreSQL server
   * started: leases that ran out while it was down ran out because of the database, and their
   * live workers get that long to reconnect and release those attempts uncharged
   * (releaseAttempt). A worker that really died is reaped when the grace ends.
   */
  async reapExpiredLeases(limit = 100): Promise<number> {
    let reaped = 0;
    for (const loc of this.locations.values()) {
      const rows = await loc.db.query<{
        id: string;
        attempt_count: number;
        lease_owner: string | null;
        environment_id: string;
      }>(
        `select id, attempt_count, lease_owner, environment_id from ${loc.schema}.step_runs
          where status = 'running' and lease_expires_at < now()
            and ($2::integer = 0 or pg_postmaster_start_time() < now() - $2 * interval '1 millisecond')
          order by lease_expires_at limit $1`,
        [limit, loc.db.kind === 'postgres' ? REAP_GRACE_AFTER_RESTART_MS : 0],
      );
      for (const r of rows.rows) {
        const error = {
          name: 'LeaseExpired',
          message: `worker ${r.lease_owner ?? '(unknown)'} stopped renewing its lease on attempt ${r.attempt_count} (it crashed, was paused, or lost the database); the attempt counts as used.`,
          code: 'lease_lost',
          terminal: false,
        };
        const result = await loc.db.query<{ r: FailResult }>(
          `select ${loc.schema}.fail_step($1, $2, null, 'lost', $3::jsonb, 0) as r`,
          [r.id, r.attempt_count, JSON.stringify(error)],
        );
        const outcome = result.rows[0]!.r;
        this.signalWoken(loc, outcome);
        if (outcome.status !== 'fenced') {
          reaped++;
          await this.cancelChildren(r.environment_id, outcome);
          this.signalRunEnd(outcome.runId, outcome.runStatus);
        }
      }
    }
    return reaped;
  }

  private async cancelChildren(environmentId: string, result: FailedWithChildren): Promise<void> {
    for (const child of result.children ?? []) {
      await this.cancelRun(environmentId, child, `parent run ${result.runId} failed`);
    }
  }

  /** Of the given run ids, those that have ended or paused (one query per location). */
  async findEndedRuns(runIds: string[]): Promise<string[]> {
    const byLoc = new Map<RunLocation, string[]>();
    for (const id of runIds) {
      const loc = this.locationOf(id);
      if (loc) byLoc.set(loc, [...(byLoc.get(loc) ?? []), id]);
    }
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

  /** Earliest `available_at` of a ready step in the future (for the worker's wake-up timer). */
  async nextAvailableAt(environmentIds: string[]): Promise<Date | null> {
    let earliest: Date | null = null;
    for (const loc of this.locations.values()) {
      const rows = await loc.db.query<{ t: Date | null }>(
        `select min(available_at) as t from ${loc.schema}.step_runs where status = 'ready' and environment_id = any($1)`,
        [environmentIds],
      );
      const t = rows.rows[0]?.t ?? null;
      if (t && (!earliest || t < earliest)) earliest = new Date(t);
    }
    return earliest;
  }
}
