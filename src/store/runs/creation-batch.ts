/**
 * Group commit for run creation: triggers that arrive while a location is already busy creating
 * runs go out together, in one statement, one transaction and one WAL flush.
 *
 * A trigger that finds fewer than MAX_CREATES_IN_FLIGHT creations in flight in its location is
 * sent at once, alone, exactly as before (no added latency when idle, and it may start its first
 * step eagerly). Otherwise it waits for one of them and goes out with every trigger that arrived
 * meanwhile, up to MAX_BATCH_RUNS runs / MAX_BATCH_STEP_RUNS step runs. A burst of 1,000 triggers
 * (the bench's fan-out) was 1,000 statements and commits, each a round trip, a WAL flush and a
 * wake-up of both processes; it is now a few dozen.
 *
 * Which triggers: those with no idempotency key (a key is claimed by `insert … on conflict` per
 * run, in the single statement) and in the location's own database. A batched trigger does not
 * start eagerly (the worker that held a slot for it is woken and claims as usual): it was queued
 * because the location was busy, when an eager start saves least.
 *
 * Failure semantics: the batch is one transaction, so either every run of it exists or none does.
 * A batch that fails for a reason of one of its items (a value the database refuses) is retried
 * one statement per trigger, so each caller gets its own run or its own error; a failure of the
 * database itself (connection lost, shutdown) rejects every trigger of the batch with that error,
 * as the single statement would have.
 */
import type { SerializedGraph } from '../../core/graph.js';
import { isTransientDatabaseError } from '../db-errors.js';
import { RUN_COLUMNS, type planNodeColumns, type Row } from './decoders.js';
import type { RunLocation } from './resources.js';

/** Creations of one location sent alone before the next triggers are grouped (2 cores of server). */
const MAX_CREATES_IN_FLIGHT = 2;
/** Largest group: bounds one statement's size and how long its transaction holds its locks. */
const MAX_BATCH_RUNS = 200;
/** A run of a wide graph writes a step run per top-level step: bound those too. */
const MAX_BATCH_STEP_RUNS = 2_000;

/** One top-level step run of a new run, as run-creation.ts mints it. */
export type NewStepRun = { id: string; pending: number } & ReturnType<typeof planNodeColumns>;

/** Everything one run's rows are made of (the single statement's parameters, by name). */
export interface NewRun {
  runId: string;
  inputId: string;
  environmentId: string;
  workflowId: string;
  versionId: string;
  /** Validated JSON text (core/json.ts encodeJson). */
  inputText: string;
  inputBytes: number;
  inputKind: 'input' | 'webhook_request';
  saveDataclips: boolean;
  triggerKind: string;
  triggerRef: string | null;
  parentRunId: string | null;
  parentStepRunId: string | null;
  maxConcurrency: SerializedGraph['maxConcurrency'] | null;
  steps: NewStepRun[];
}

interface Queued {
  run: NewRun;
  resolve: (row: Row) => void;
  reject: (error: unknown) => void;
}

/**
 * The creations of one location: how many are in flight, and the triggers waiting to be grouped.
 * `single` creates one run with the single statement (run-creation.ts), for the fallback.
 */
export class CreationLane {
  private inFlight = 0;
  private readonly queue: Queued[] = [];

  constructor(
    private readonly loc: RunLocation,
    private readonly single: (run: NewRun) => Promise<Row>,
  ) {}

  /** Take a slot for a creation sent alone; false when the location is busy (then `enqueue`). */
  tryEnter(): boolean {
    if (this.inFlight >= MAX_CREATES_IN_FLIGHT || this.queue.length > 0) return false;
    this.inFlight++;
    return true;
  }

  /** The creation sent alone has its answer: free its slot and send what queued meanwhile. */
  leave(): void {
    this.inFlight--;
    this.pump();
  }

  /** Create this run with the next group; resolves to its run row once the group committed. */
  enqueue(run: NewRun): Promise<Row> {
    return new Promise<Row>((resolve, reject) => {
      this.queue.push({ run, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length > 0 && this.inFlight < MAX_CREATES_IN_FLIGHT) {
      let steps = 0;
      let n = 0;
      while (n < this.queue.length && n < MAX_BATCH_RUNS) {
        steps += this.queue[n]!.run.steps.length;
        if (n > 0 && steps > MAX_BATCH_STEP_RUNS) break;
        n++;
      }
      const batch = this.queue.splice(0, n);
      this.inFlight++;
      void this.send(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async send(batch: Queued[]): Promise<void> {
    let rows: Row[];
    try {
      rows = (await this.loc.db.query<Row>(createRunsSql(this.loc.schema), [batchJson(batch)]))
        .rows;
    } catch (error) {
      if (batch.length === 1 || isTransientDatabaseError(error)) {
        for (const q of batch) q.reject(error);
        return;
      }
      // one trigger's value failed the whole group: each on its own, so only it fails
      await Promise.all(batch.map((q) => this.single(q.run).then(q.resolve, q.reject)));
      return;
    }
    const byId = new Map(rows.map((r) => [String(r.id), r]));
    for (const q of batch) {
      const row = byId.get(q.run.runId);
      if (row) q.resolve(row);
      else q.reject(new Error(`run ${q.run.runId} was not returned by its group's statement`));
    }
  }
}

/**
 * The group's parameter: one JSON array, each run's input embedded as the JSON text it already is
 * (validated by encodeJson), so it is not parsed and printed again here.
 */
function batchJson(batch: Queued[]): string {
  const parts = batch.map(({ run }) => {
    const { inputText, ...rest } = run;
    return `{"input":${inputText},${JSON.stringify(rest).slice(1)}`;
  });
  return `[${parts.join(',')}]`;
}

/**
 * The single statement of run-creation.ts for many runs: the same rows, written set-wise (one
 * insert per table for the whole group). `e->'input'` keeps a JSON `null` input a jsonb null (a
 * typed record column would make it SQL NULL), and `md5(input::text)` is the single statement's
 * `md5($6::jsonb::text)`. Round trips: one; indexes: those of the inserted rows, nothing read.
 */
function createRunsSql(s: string): string {
  return `with item as (
       select e->>'runId' as run_id, e->>'inputId' as input_id, e->>'environmentId' as environment_id,
              e->>'workflowId' as workflow_id, e->>'versionId' as version_id, e->'input' as input,
              (e->>'inputBytes')::integer as input_bytes, e->>'inputKind' as input_kind,
              (e->>'saveDataclips')::boolean as save_dataclips, e->>'triggerKind' as trigger_kind,
              e->>'triggerRef' as trigger_ref, e->>'parentRunId' as parent_run_id,
              e->>'parentStepRunId' as parent_step_run_id, (e->>'maxConcurrency')::integer as max_concurrency,
              e->'steps' as steps
         from jsonb_array_elements($1::jsonb) as e
     ), input as (
       insert into ${s}.dataclips (id, run_id, environment_id, kind, body, body_hash, size_bytes)
       select i.input_id, i.run_id, i.environment_id, i.input_kind, i.input, md5(i.input::text), i.input_bytes
         from item i
       returning run_id, body_hash
     ), run as (
       insert into ${s}.runs (id, environment_id, workflow_id, version_id, status, trigger_kind, trigger_ref,
                              input_dataclip_id, save_dataclips, idempotency_key, parent_run_id, parent_step_run_id,
                              max_concurrency)
       select i.run_id, i.environment_id, i.workflow_id, i.version_id, 'queued', i.trigger_kind, i.trigger_ref,
              i.input_id, i.save_dataclips, null, i.parent_run_id, i.parent_step_run_id, i.max_concurrency
         from item i
       returning ${RUN_COLUMNS}
     ), steps as (
       insert into ${s}.step_runs (id, run_id, environment_id, workflow_id, step_id, step_key, kind, status, pending_parents,
                                   parents, successors, failure_successors, max_attempts, on_exhausted,
                                   concurrency_key, concurrency_limit, input_dataclip_id, input_hash)
       select u.id, i.run_id, i.environment_id, i.workflow_id, u.step_id, u.step_id, u.kind,
              case when u.pending = 0 then 'ready' else 'pending' end,
              u.pending, u.parents, u.successors, u.failure_successors, u.max_attempts, u.on_exhausted,
              u.concurrency_key, u.concurrency_limit,
              case when u.pending = 0 then i.input_id end, case when u.pending = 0 then d.body_hash end
         from item i
         join input d on d.run_id = i.run_id
        cross join lateral jsonb_to_recordset(i.steps) as u(id text, step_id text, kind text, pending integer,
              parents text[], successors text[], failure_successors text[], max_attempts integer,
              on_exhausted text, concurrency_key text, concurrency_limit integer)
     ), logged as (
       insert into ${s}.run_events (run_id, kind, data)
       select i.run_id, 'run.created', jsonb_build_object('trigger', i.trigger_kind) from item i
     )
     select run.* from run`;
}
