/**
 * The attempt committer: validates a step's output and state patch, resolves its edges and commits
 * the attempt through the group committer (group-commit.ts), retrying while the database is away
 * and the lease holds; records failed attempts; and gives back claims a lost commit reply made.
 * See worker.ts for the failure semantics.
 */
import { describeError, type StepErrorInfo } from '../core/errors.js';
import { resolveOutgoingEdges } from '../core/edge-resolution.js';
import type { CompiledStep, CompiledWorkflow } from '../core/graph.js';
import { encodeJson } from '../core/json.js';
import { planOf } from '../core/plan.js';
import { isConflictError, isTransientDatabaseError } from '../store/db-errors.js';
import type { ClaimedStep } from '../store/rows.js';
import type { CommitPayload, CompleteResult } from '../store/run-store.js';
import { COMMIT_RETRY_BASE_MS, COMMIT_RETRY_CAP_MS, jitteredBackoff, sleep } from './db-retry.js';
import type { AttemptLog } from './logger.js';
import { computeStatePatch } from './state.js';
import type { InFlight, WorkerResources } from './worker-resources.js';

const CONFLICT_RETRIES = 5;

export class AttemptCommitter {
  constructor(private readonly w: WorkerResources) {}

  /** Validate an output and the state draft, resolve the edges, and commit (group commit). */
  async commitOutput(
    entry: InFlight,
    workflow: CompiledWorkflow,
    step: CompiledStep,
    output: unknown,
    stateDraft: unknown,
    what: string,
    log: AttemptLog,
    decision?: { value: unknown },
  ): Promise<{ claim: ClaimedStep; leaseFrom: number } | null> {
    const { claim } = entry;
    let commit;
    try {
      const encoded = encodeJson(output, {
        what: `${what} returned a value that`,
        root: 'output',
        maxBytes: workflow.maxPayloadBytes,
        code: 'invalid_output',
      });
      const patch = computeStatePatch(claim.state, stateDraft, what, workflow.maxPayloadBytes);
      const edges = resolveOutgoingEdges(workflow.id, step, {
        ok: true,
        output: decision ? decision.value : output,
      });
      const successor =
        edges.live.length === 1 ? planOf(workflow.graph).nodes.get(edges.live[0]!) : undefined;
      commit = {
        outputText: encoded.text,
        stateSet: patch.setText,
        stateDelete: patch.delete,
        live: edges.live,
        dead: edges.dead,
        takesSuccessor: successor?.parents.length === 1 && successor.concurrency === undefined,
      };
    } catch (error) {
      await this.recordFailure(claim, describeError(error), null, log);
      return null;
    }
    await this.w.faults?.beforeCommit?.(claim);
    const leaseFrom = performance.now();
    const outcome = await this.commitDurably(entry, log, {
      ...commit,
      // with a per-run limit every claim must go through the limit check in claim_steps
      // (and a paused environment claims nothing, not even the next step of a run in flight)
      claimNext:
        this.w.isAccepting() &&
        workflow.graph.maxConcurrency === undefined &&
        !(await this.w.registry.isPaused()),
      leaseMs: this.w.leaseMs,
    });
    if (outcome === 'failed') return null;
    const { result, retried } = outcome;
    if (result.status === 'fenced') {
      this.w.metrics.fencedCommits.inc({});
      log.warn(
        { stepRunId: claim.stepRunId, retried },
        retried
          ? 'commit retry rejected: either the try whose reply was lost did commit, or the lease ran out meanwhile'
          : 'late commit rejected: this attempt no longer holds its lease (expired, reaped or canceled); its output was discarded',
      );
      if (retried) this.releaseOrphanedClaims(claim);
      return null;
    }
    this.w.metrics.stepsSucceeded.inc({ workflow: claim.workflowId });
    await this.w.faults?.afterCommit?.(claim);
    return result.next ? { claim: result.next, leaseFrom } : null;
  }

  /**
   * Commit, retrying while the database is away and the attempt still holds its lease (renewals
   * go on meanwhile and extend it as soon as the database answers). The commit is fenced by
   * (attempt, worker, unexpired lease), so a retry can never commit twice: if a try committed and
   * only its reply was lost, the retry is fenced. When the lease runs out first (or is lost), the
   * output is dropped and the attempt is released uncharged once the database answers
   * (AttemptReleaser): a database failure is never charged as a step attempt. A failure that is
   * not the database being away is not retried (it would fail the same way): the lease expires
   * and the reaper charges the attempt, as before.
   */
  private async commitDurably(
    entry: InFlight,
    log: AttemptLog,
    payload: CommitPayload,
  ): Promise<{ result: CompleteResult; retried: boolean } | 'failed'> {
    const { claim, abort } = entry;
    for (let failures = 0; ;) {
      try {
        const result = await this.w.committer.commit(claim, payload);
        await this.w.faults?.afterCommitBeforeAck?.(claim);
        if (failures > 0)
          log.info({ retries: failures }, 'commit made after the database came back');
        return { result, retried: failures > 0 };
      } catch (error) {
        if (!isTransientDatabaseError(error)) {
          log.error(
            { err: error },
            'commit failed; the lease will expire and the reaper will requeue the step',
          );
          return 'failed';
        }
        failures++;
        entry.dbTrouble = true;
        this.w.metrics.commitRetries.inc({});
        const delay = jitteredBackoff(failures, COMMIT_RETRY_BASE_MS, COMMIT_RETRY_CAP_MS);
        // aborted: lease lost, run canceled, or a shutdown past its grace
        if (abort.aborted || performance.now() + delay >= entry.leaseUntil) {
          log.warn(
            { err: String(error), retries: failures - 1 },
            'commit could not be made while the lease held (database unavailable); the output is dropped and the attempt will be released uncharged',
          );
          // A try may have committed before its connection dropped: if the release finds the
          // attempt no longer running, look for a next step that commit claimed for us.
          this.w.releaser.release(claim, 'its commit failed', true);
          return 'failed';
        }
        if (failures === 1)
          log.warn(
            { err: String(error) },
            'commit failed: the database is unavailable; retrying while the lease holds',
          );
        await sleep(delay);
      }
    }
  }

  /**
   * After an ambiguous commit (a try failed, a retry was fenced): that try may have committed and
   * claimed the run's next step for this worker in the same transaction. Nothing here runs it, so
   * give it back at once (uncharged) instead of letting it wait out its lease and be charged.
   */
  releaseOrphanedClaims(claim: ClaimedStep): void {
    void this.w.runs
      .heldStepRuns(claim.runId, this.w.workerId)
      .then((held) => {
        // A commit of this run still in flight may be handing this worker a claim right now (its
        // reply not yet read): leave the run alone then; the lease and the reaper cover the rare
        // orphan that remains.
        if (this.w.committer.isCommitting(claim.runId)) return;
        for (const h of held)
          if (!this.w.inflight.has(h.stepRunId))
            this.w.releaser.release(h, 'the reply to the commit that claimed it was lost');
      })
      .catch((error: unknown) =>
        this.w.logger.warn({ err: error }, 'could not look for claims a lost commit reply made'),
      );
  }

  /**
   * fail_step, tried again when it lost a deadlock or a serialization conflict: a fail-fast
   * parallel's failure locks its sibling branches while a sibling's commit locks the branches it
   * reaches, and PostgreSQL aborts one of the two. Without a retry the failure was not recorded
   * and the run waited out the whole lease, then was charged `lease_lost` (a CI run of
   * test/engine.control-flow.test.ts, "parallel fail-fast"; deadlocks in the server log). fail_step
   * is fenced by (attempt, worker, lease), so a try that did commit makes the retry 'fenced'.
   */
  private async failStepRetryingConflicts(
    claim: ClaimedStep,
    info: StepErrorInfo,
    retryDelayMs: number | null,
    edges?: { live: string[]; dead: string[] },
  ): ReturnType<WorkerResources['runs']['failStep']> {
    for (let tries = 1; ; tries++) {
      try {
        return await this.w.runs.failStep(claim, this.w.workerId, info, retryDelayMs, edges);
      } catch (error) {
        if (tries >= CONFLICT_RETRIES || !isConflictError(error)) throw error;
        await sleep(jitteredBackoff(tries, COMMIT_RETRY_BASE_MS, COMMIT_RETRY_CAP_MS));
      }
    }
  }

  /** Record a failed attempt (fenced by the lease); a retry wakes the claim loop when due. */
  /** True when the database answered (recorded, or fenced); false when it could not be reached. */
  async recordFailure(
    claim: ClaimedStep,
    info: StepErrorInfo,
    retryDelayMs: number | null,
    log: AttemptLog,
    edges?: { live: string[]; dead: string[] },
  ): Promise<boolean> {
    try {
      const result = await this.failStepRetryingConflicts(claim, info, retryDelayMs, edges);
      const workflow = { workflow: claim.workflowId };
      if (result.status !== 'fenced') this.w.metrics.attemptFailures.inc(workflow);
      if (result.status === 'fenced') {
        this.w.metrics.fencedCommits.inc({});
        log.warn('failure not recorded: the attempt no longer holds its lease');
      } else if (result.status === 'retrying') {
        this.w.metrics.retries.inc(workflow);
        log.info({ err: info.message, retryInMs: retryDelayMs }, 'attempt failed; retrying');
        if (retryDelayMs !== null) this.w.wakeAfter(retryDelayMs);
      } else {
        this.w.metrics.stepsFailed.inc(workflow);
        log.warn({ err: info.message, runStatus: result.runStatus }, 'step failed');
      }
      return true;
    } catch (error) {
      log.error(
        { err: error },
        'recording the failure failed; the lease will expire and the reaper will handle it',
      );
      return false;
    }
  }
}
