/**
 * The step executor: runs one claimed attempt — user code with its ctx (state draft, abort signal,
 * timeout, log), or one transition of a control node (park, finish, fail) — and hands the outcome
 * to the attempt committer. No transaction is open while user code runs.
 */
import { describeError, WeftError } from '../core/errors.js';
import { resolveOutgoingEdges } from '../core/edge-resolution.js';
import type { CompiledStep, CompiledWorkflow } from '../core/graph.js';
import { backoffDelay } from '../core/retry.js';
import type { StepContext } from '../core/workflow.js';
import type { ClaimedStep } from '../store/rows.js';
import type { AttemptCommitter } from './attempt-committer.js';
import { runControlTransition, type ControlDeps, type ControlOutcome } from './control.js';
import { AttemptLogger, type AttemptLog } from './logger.js';
import { draftState, STATE_UNTOUCHED } from './state.js';
import type { InFlight, WorkerResources } from './worker-resources.js';

export class StepExecutor {
  constructor(
    private readonly w: WorkerResources,
    private readonly commits: AttemptCommitter,
    private readonly controlDeps?: ControlDeps,
  ) {}

  /** Execute one attempt; returns the next claim of the same run a commit handed back, if any. */
  async execute(entry: InFlight): Promise<{ claim: ClaimedStep; leaseFrom: number } | null> {
    const { claim, abort } = entry;
    const log = new AttemptLogger(this.w.logger, claim);
    let resolved;
    try {
      resolved = await this.w.registry.resolveStep(claim.workflowId, claim.versionId, claim.stepId);
    } catch (error) {
      await this.commits.recordFailure(claim, describeError(error), null, log);
      return null;
    }
    const { workflow, step } = resolved;
    if (step.control) return this.executeControl(entry, workflow, step, log);
    const what = `Step \`${claim.stepKey}\` of workflow \`${workflow.id}\` (run ${claim.runId}, attempt ${claim.attempt})`;
    // The state draft (a deep copy) and the AbortSignal are made when the code first reads them:
    // most steps read neither, and each cost ~10-15 µs of a chained step's client CPU (a copy of
    // the run state, an AbortController; bench/RESULTS.md, "Issue 8, session 11"). A step that
    // never reads or sets ctx.state patches nothing, as a draft left unchanged would.
    let draft: unknown = STATE_UNTOUCHED;
    let stepLog: StepContext['log'] | undefined;
    const ctx: StepContext = {
      runId: claim.runId,
      workflowId: claim.workflowId,
      stepId: claim.stepId,
      stepKey: claim.stepKey,
      attempt: claim.attempt,
      maxAttempts: claim.maxAttempts,
      idempotencyKey: claim.stepRunId,
      get signal() {
        return abort.signal;
      },
      // made when the code first reads it (four closures per attempt otherwise)
      get log() {
        return (stepLog ??= {
          debug: (m, d) => log.debug(d ?? {}, m),
          info: (m, d) => log.info(d ?? {}, m),
          warn: (m, d) => log.warn(d ?? {}, m),
          error: (m, d) => log.error(d ?? {}, m),
        });
      },
      get state() {
        if (draft === STATE_UNTOUCHED) draft = draftState(claim.state);
        return draft as Record<string, unknown>;
      },
      set state(value) {
        draft = value;
      },
    };
    // Outside the try below: a fault here is a crash before the code starts (the attempt keeps its
    // claim until the lease expires and is reaped as lost), not a failure of the step's code.
    await this.w.faults?.beforeExecute?.(claim);
    let timeout: NodeJS.Timeout | undefined;
    if (step.timeoutMs !== undefined) {
      const ms = step.timeoutMs;
      timeout = setTimeout(
        () =>
          abort.abort(
            new WeftError('step_timeout', `${what} timed out after ${ms} ms (its \`timeout\`).`),
          ),
        ms,
      );
    }
    let output: unknown;
    const started = performance.now();
    const observe = (outcome: 'succeeded' | 'failed') =>
      this.w.metrics.stepDuration.observe(
        { workflow: claim.workflowId, outcome },
        (performance.now() - started) / 1000,
      );
    try {
      output = await abort.race(Promise.resolve().then(() => step.run(claim.input, ctx)));
    } catch (error) {
      clearTimeout(timeout);
      observe('failed');
      if (abort.aborted && isLeaseLost(abort.reason)) {
        log.warn({ reason: String(abort.reason) }, 'attempt abandoned: lease lost or run canceled');
        // Lost through a database outage (renewals failed): the database failed, not the step.
        if (entry.dbTrouble) this.w.releaser.release(claim, 'its lease could not be renewed');
        return null;
      }
      const info = describeError(abort.aborted ? abort.reason : error);
      const exhausted = claim.attempt >= claim.maxAttempts;
      // A shutdown says nothing about the step: it is requeued at once for another worker.
      const delay =
        info.terminal || exhausted
          ? null
          : info.code === 'worker_shutdown'
            ? 0
            : backoffDelay(step.retry, claim.attempt + 1);
      await this.commits.recordFailure(claim, info, delay, log);
      return null;
    }
    clearTimeout(timeout);
    observe('succeeded');
    if (step.kind === 'router') {
      // A router decides; the data passes through: its successors receive the router's input.
      return this.commits.commitOutput(entry, workflow, step, claim.input, draft, what, log, {
        value: output,
      });
    }
    return this.commits.commitOutput(entry, workflow, step, output, draft, what, log);
  }

  /** One transition of a control node (see control.ts): park, finish with an output, or fail. */
  private async executeControl(
    entry: InFlight,
    workflow: CompiledWorkflow,
    step: CompiledStep,
    log: AttemptLog,
  ): Promise<{ claim: ClaimedStep; leaseFrom: number } | null> {
    const { claim } = entry;
    const what = `${step.kind} \`${claim.stepKey}\` of workflow \`${workflow.id}\` (run ${claim.runId})`;
    let outcome: ControlOutcome;
    try {
      if (!this.controlDeps)
        throw new WeftError(
          'internal',
          `${what} needs the engine's control dependencies; start workers through Engine`,
        );
      outcome = await runControlTransition(workflow, step, claim, this.controlDeps);
    } catch (error) {
      // A refusal that the same call would get again (the error table's `retryable: false`, e.g.
      // a child input that the child's input schema refuses): the step fails now, through its
      // failure edges, instead of retrying a call that cannot succeed for ever.
      const info = describeError(error);
      if (error instanceof WeftError && info.terminal) {
        outcome = { kind: 'fail', error };
      } else {
        // Infrastructure trouble (the database, a child trigger): try the transition again shortly.
        await this.commits.recordFailure(claim, info, 1000, log);
        return null;
      }
    }
    if (outcome.kind === 'complete')
      return this.commits.commitOutput(
        entry,
        workflow,
        step,
        outcome.output,
        claim.state,
        what,
        log,
      );
    if (outcome.kind === 'fail') {
      const edges = resolveOutgoingEdges(
        workflow.id,
        step,
        outcome.timedOut ? { ok: false, timedOut: true } : { ok: false },
      );
      await this.commits.recordFailure(
        claim,
        { ...describeError(outcome.error), terminal: true },
        null,
        log,
        edges,
      );
      return null;
    }
    try {
      const parked = await this.w.runs.parkStep(claim, this.w.workerId, outcome.park);
      if (parked === 'fenced') {
        log.warn('park rejected: this transition no longer holds its lease');
        // The child started just now has no parent waiting on it any more (the run failed or was
        // canceled meanwhile): cancel it rather than leave it orphaned.
        if (outcome.childRunId) {
          await this.w.runs
            .cancelRun(
              claim.environmentId,
              outcome.childRunId,
              `parent step ${claim.stepKey} of run ${claim.runId} no longer waits for it`,
            )
            .catch(() => undefined);
        }
        return null;
      }
      if (outcome.childRunId)
        await this.w.runs.wakeParentIfChildEnded(claim.stepRunId, outcome.childRunId);
    } catch (error) {
      // A park that failed (a deadlock, a constraint, a dropped connection) rolled back: the step
      // run is still `running` with this worker's lease and its attempt open. Waiting out the
      // lease (30 s by default) stalled the run and then charged it `lease_lost`. End the attempt
      // now instead, as failed with the park's error, and run the transition again after
      // PARK_RETRY_MS (not at once: a park that fails every time must not spin). A control node's
      // budget is unlimited, so this costs it nothing. Fenced like a commit: if the park did commit
      // and only its reply was lost, nothing changes. If even that cannot be recorded (the
      // database is away), the releaser gives the attempt back uncharged once it answers.
      log.error({ err: error }, 'parking failed; ending the attempt to run the transition again');
      const recorded = await this.commits.recordFailure(
        claim,
        { ...describeError(error), terminal: false },
        PARK_RETRY_MS,
        log,
      );
      if (!recorded) this.w.releaser.release(claim, 'parking it failed');
    }
    return null;
  }
}

/** After a failed park, the transition runs again this much later. */
const PARK_RETRY_MS = 1_000;

function isLeaseLost(reason: unknown): boolean {
  return (
    reason instanceof WeftError && (reason.code === 'lease_lost' || reason.code === 'run_canceled')
  );
}
