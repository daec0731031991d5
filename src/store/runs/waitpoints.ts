/**
 * Waitpoints: what a parked control node reads on its next transition (its waitpoint, its body's
 * results), approval tokens completed by id, a child run's end waking its parent, and the timer
 * that fires due sleeps and expired approvals.
 */
import { parseRunScopedId } from '../../core/ids.js';
import type { ClaimedStep } from '../rows.js';
import { iso, isoOrNull, type Row } from './decoders.js';
import type { RunResources } from './resources.js';

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

export class RunWaitpoints {
  constructor(private readonly r: RunResources) {
    r.onRunEnded = (runId) => void this.wakeParentInOtherLocation(runId).catch(() => {});
  }

  /**
   * What a control node's next transition needs to know: its own step run (error set by a failed
   * body), the waitpoint it waited on, and the results of its body (per iteration: the leaves —
   * succeeded steps none of whose successors ran — and the steps that failed for good).
   */
  async controlState(claim: ClaimedStep): Promise<ControlState> {
    const loc = this.r.locationOf(claim.stepRunId)!;
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
    const loc = this.r.locationOf(token);
    if (!loc || parseRunScopedId(token)?.prefix !== 'wp') return { status: 'not_found' };
    const rows = await loc.db.query<{ r: WaitpointCompletion }>(
      `select ${loc.schema}.complete_waitpoint($1, $2, $3) as r`,
      [token, environmentId, payloadText],
    );
    this.r.signalWoken(loc, rows.rows[0]!.r);
    const { wake: _wake, ...r } = rows.rows[0]!.r as WaitpointCompletion & { wake?: unknown };
    return r;
  }

  async getWaitpoint(environmentId: string, token: string): Promise<WaitpointRecord | undefined> {
    const loc = this.r.locationOf(token);
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
    const loc = this.r.locationOf(runId);
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
   * waitpoint to complete. In one location park_step sees that itself (the parent step run's row
   * lock orders the two); a child in another location is looked up here, right after the park,
   * and by the sweep (wakeCrossLocationParents) if this process dies first.
   */
  async wakeParentIfChildEnded(parentStepRunId: string, childRunId: string): Promise<boolean> {
    const loc = this.r.locationOf(parentStepRunId)!;
    const child = this.r.locationOf(childRunId);
    if (!child || child === loc) return false;
    const ended = await child.db.query(
      `select 1 from ${child.schema}.runs where id = $1 and ${child.schema}.run_ended(status)`,
      [childRunId],
    );
    if (ended.rows.length === 0) return false;
    const rows = await loc.db.query<{ r: { readied: number; wake: string[] } }>(
      `select ${loc.schema}.with_woken(jsonb_build_object(
                'readied', ${loc.schema}.wake_child_waiter($2, $1))) as r`,
      [parentStepRunId, childRunId],
    );
    const r = rows.rows[0]!.r;
    this.r.signalWoken(loc, r);
    return r.readied > 0;
  }

  /**
   * A run ended: when it is a child whose parent lives in another location, complete the parent's
   * waitpoint there (finish_run did it in SQL when they share one). One indexed read of the child
   * row by id; only with several locations. The sweep in fireDueWaitpoints catches one this
   * misses (a process that died between the child's commit and this call).
   */
  async wakeParentInOtherLocation(childRunId: string): Promise<boolean> {
    const child = this.r.locationOf(childRunId);
    if (!child) return false;
    const rows = await child.db.query<{ parent_step_run_id: string | null }>(
      `select parent_step_run_id from ${child.schema}.runs where id = $1`,
      [childRunId],
    );
    const parentStep = rows.rows[0]?.parent_step_run_id;
    if (!parentStep || this.r.locationOf(parentStep) === child) return false;
    return this.wakeParentIfChildEnded(parentStep, childRunId);
  }

  /**
   * Waitpoints waiting on a child run in another location whose child has ended (at most `limit`
   * per location; only with several locations): the fallback for wakeParentInOtherLocation.
   */
  async wakeCrossLocationParents(limit = 100): Promise<number> {
    if (this.r.locations.size < 2) return 0;
    let n = 0;
    for (const loc of this.r.locations.values()) {
      const rows = await loc.db.query<{ step_run_id: string; child_run_id: string }>(
        `select step_run_id, child_run_id from ${loc.schema}.waitpoints
          where kind = 'child_run' and status = 'waiting' and child_run_id not like $1 limit $2`,
        [`run\\_${loc.tag}%`, limit],
      );
      const parentOf = new Map(rows.rows.map((r) => [r.child_run_id, r.step_run_id]));
      for (const [childLoc, ids] of this.r.groupByLocation([...parentOf.keys()])) {
        if (childLoc === loc) continue;
        const ended = await childLoc.db.query<{ id: string }>(
          `select id from ${childLoc.schema}.runs where id = any($1::text[]) and ${childLoc.schema}.run_ended(status)`,
          [ids],
        );
        for (const { id } of ended.rows)
          if (await this.wakeParentIfChildEnded(parentOf.get(id)!, id)) n++;
      }
    }
    return n;
  }

  /** Due sleeps complete and expired approvals time out (every location). */
  async fireDueWaitpoints(limit = 100): Promise<number> {
    let n = await this.wakeCrossLocationParents(limit);
    for (const loc of this.r.locations.values()) {
      const rows = await loc.db.query<{ r: { fired: number; wake: string[] } }>(
        `select ${loc.schema}.fire_due_waitpoints($1) as r`,
        [limit],
      );
      this.r.signalWoken(loc, rows.rows[0]?.r);
      n += Number(rows.rows[0]?.r.fired ?? 0);
    }
    return n;
  }

  /** Earliest time a waiting waitpoint comes due (to schedule the timer). */
  async nextWaitpointDue(): Promise<Date | null> {
    let earliest: Date | null = null;
    for (const loc of this.r.locations.values()) {
      const rows = await loc.db.query<{ t: Date | null }>(
        `select min(resume_at) as t from ${loc.schema}.waitpoints where status = 'waiting'`,
      );
      const t = rows.rows[0]?.t ?? null;
      if (t && (!earliest || new Date(t) < earliest)) earliest = new Date(t);
    }
    return earliest;
  }
}
