/**
 * The queue: claim ready step runs, commit a succeeded attempt (alone or group-committed), record a
 * failed one, give one back uncharged, park a control node, renew leases, and reap expired ones.
 * Every write is fenced by the attempt's lease (see the SQL functions in src/store/sql/location).
 */
import { mintRunScopedId } from '../../core/ids.js';
import type { ClaimedStep, RunStatus } from '../rows.js';
import { keyed, planNodeColumns, toClaimed, type Row } from './decoders.js';
import type { RunLifecycle } from './run-lifecycle.js';
import type { RunLocation, RunResources } from './resources.js';
import { CHANNELS } from '../channels.js';
import { commitChained, takesChainedCommit } from './chain-commit.js';

/**
 * After a PostgreSQL (re)start, how long the reaper waits before reaping (see reapExpiredLeases):
 * longer than a worker needs to notice the database is back (its LISTEN reconnect backoff is
 * capped at 5 s, then it renews its leases at once) and release what it could not commit.
 */
export const REAP_GRACE_AFTER_RESTART_MS = 15_000;

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
  /**
   * The workflow's plan says the one live successor waits on this step alone and has no
   * concurrency limit: the chained commit (chain-commit.ts) can take it. A hint only: the
   * statement checks the row, and anything else is committed by complete_step.
   */
  takesSuccessor?: boolean;
  leaseMs: number;
}

export type CompleteResult =
  { status: 'fenced' } | { status: 'committed'; runStatus: RunStatus; next: ClaimedStep | null };

export type FailResult =
  { status: 'fenced' } | { status: 'retrying' | 'failed'; runStatus?: RunStatus; runId: string };

export class RunQueue {
  constructor(
    private readonly r: RunResources,
    private readonly lifecycle: RunLifecycle,
  ) {}

  /**
   * Claim up to `limit` ready step runs across locations: one round trip per location asked
   * (claim_steps: partial index step_runs_ready, `for update skip locked`, each attempt recorded on its
   * step run in the same statement). Locations are asked in rotation so none starves.
   */
  private claimRotation = 0;
  async claimSteps(
    workerId: string,
    environmentIds: string[],
    workflowIds: string[],
    limit: number,
    leaseMs: number,
  ): Promise<ClaimedStep[]> {
    const locs = [...this.r.locations.values()];
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
    const loc = this.r.locationOf(claim.stepRunId)!;
    const outputId = mintRunScopedId('dc', loc.tag);
    if (takesChainedCommit(c)) {
      const done = await commitChained(loc, claim, workerId, c, outputId);
      if (done) return done;
    }
    const rows = await loc.db.query<{
      r: { status: string; runStatus?: RunStatus; next?: Row | null };
    }>(completeStepSql(loc.schema), [
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
    ]);
    const r = rows.rows[0]!.r;
    if (r.status === 'fenced') return { status: 'fenced' };
    this.r.signalWoken(loc, r);
    this.r.signalRunEnd(claim.runId, r.runStatus);
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
      const loc = this.r.locationOf(item.claim.stepRunId)!;
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
          this.r.signalWoken(loc, r);
          if (r.status !== 'fenced') this.r.signalRunEnd(claim.runId, r.runStatus);
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
    const loc = this.r.locationOf(claim.stepRunId)!;
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
    this.r.signalWoken(loc, r);
    if (r.status !== 'fenced') {
      await this.lifecycle.cancelChildren(claim.environmentId, r);
      this.r.signalRunEnd(r.runId, r.runStatus);
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
    const loc = this.r.locationOf(claim.stepRunId)!;
    const outcome = await loc.db.transaction(async (tx) => {
      const bumped = await tx.query<{ valid: boolean }>(
        // A control node's budget is the integer maximum (unlimited): +1 would overflow it.
        `update ${loc.schema}.step_runs
            set max_attempts = case when max_attempts < 2147483647 then max_attempts + 1 else max_attempts end
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
      this.r.signalWoken(loc, failed.rows[0]!.r);
      return failed.rows[0]!.r.status === 'retrying' ? ('released' as const) : ('fenced' as const);
    });
    // (a woken environment of a rolled-back transaction gets a spare wake-up: harmless)
    if (outcome === 'released') this.r.signals.send(loc.db, CHANNELS.ready, claim.environmentId);
    return outcome;
  }

  /**
   * Step runs of a run that `workerId` holds (running, its lease). After a commit whose reply was
   * lost, the commit may have claimed the next step for this worker in the same transaction: the
   * worker finds it here and releases it rather than let it wait out its lease.
   */
  async heldStepRuns(runId: string, workerId: string): Promise<ClaimedStep[]> {
    const loc = this.r.locationOf(runId);
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
    const loc = this.r.locationOf(claim.stepRunId)!;
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
        nodes: park.body.nodes.map((n) =>
          planNodeColumns(n, n.stepId, claim.environmentId, claim.workflowId),
        ),
        iterations: park.body.iterations,
      };
    }
    const rows = await loc.db.query<{ r: { status: 'parked' | 'fenced' } }>(
      `select ${loc.schema}.park_step($1, $2, $3, $4::jsonb) as r`,
      [claim.stepRunId, claim.attempt, workerId, JSON.stringify(payload)],
    );
    this.r.signalWoken(loc, rows.rows[0]!.r);
    return rows.rows[0]!.r.status;
  }

  /** Extend the leases of step runs a worker holds; returns the ids it still holds. */
  async extendLeases(
    workerId: string,
    stepRunIds: string[],
    leaseMs: number,
  ): Promise<Set<string>> {
    const byLoc = this.r.groupByLocation(stepRunIds);
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
   * End now every lease held in these databases. Only for a process that holds them alone (a
   * PGlite folder is locked to one process, `weft dev`): a step run still `running` when it opens
   * was claimed by an earlier process that died holding it, and no one can renew that lease. The
   * reaper then treats those attempts as it treats any expired lease (`lost`, counted, requeued)
   * at once, instead of after the lease (30 s by default). Returns how many leases it ended.
   * Index: step_runs_leases (partial, status `running`).
   */
  async expireAllLeases(): Promise<number> {
    let n = 0;
    for (const loc of this.r.locations.values()) {
      const rows = await loc.db.query<{ id: string }>(
        `update ${loc.schema}.step_runs set lease_expires_at = now() - interval '1 millisecond'
          where status = 'running' and lease_expires_at >= now() returning id`,
      );
      n += rows.rows.length;
    }
    return n;
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
    for (const loc of this.r.locations.values()) {
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
        this.r.signalWoken(loc, outcome);
        if (outcome.status !== 'fenced') {
          reaped++;
          await this.lifecycle.cancelChildren(r.environment_id, outcome);
          this.r.signalRunEnd(outcome.runId, outcome.runStatus);
        }
      }
    }
    return reaped;
  }

  /** Earliest `available_at` of a ready step in the future (for the worker's wake-up timer). */
  async nextAvailableAt(environmentIds: string[]): Promise<Date | null> {
    let earliest: Date | null = null;
    for (const loc of this.r.locations.values()) {
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

/**
 * The statement of one step's commit (complete_step.sql): step run, attempt, worker, output text
 * and id, state set and delete, live and dead edges, claim-next, lease ms. bench/chain-floor.ts
 * sends the same text.
 */
export function completeStepSql(schema: string): string {
  return `select ${schema}.complete_step($1, $2, $3, $4, $5, $6::jsonb, $7::text[], $8::text[], $9::text[], $10, $11) as r`;
}
