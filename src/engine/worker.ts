/**
 * The worker: claims ready step runs, executes them with no transaction open, and commits or
 * fails each attempt in one round trip.
 *
 * Failure semantics:
 * - The attempt row is written by the claim, before step code starts. If this process dies while
 *   the code runs, the lease stops being renewed, the reaper marks the attempt `lost` (it counts)
 *   and requeues the step or fails it when that was the last attempt.
 * - The commit is fenced by (step run, attempt, worker, unexpired lease). A worker that was paused
 *   or partitioned past its lease cannot commit: its late commit changes nothing and is logged.
 * - On timeout, lost lease, cancel or shutdown, `ctx.signal` aborts and the worker stops waiting
 *   for the step; a result that arrives later is ignored.
 * - A database failure is never charged as an attempt. A commit that fails because the database
 *   is away is retried (fenced, so never twice) while the lease holds. If it cannot be made in
 *   time, or the lease is lost because renewals could not reach the database, the output is
 *   dropped and, once the database answers, the attempt is recorded `lost` with
 *   `database_unavailable` and the step's budget grows by one (RunStore.releaseAttempt): attempt
 *   numbers count starts, `maxAttempts` counts charged attempts. Other commit errors are not
 *   retried; the reaper charges those attempts. See docs/semantics.md, "Database outages".
 * - After a LISTEN outage the worker claims and renews its leases at once (catch-up), so work
 *   and cancels notified during the outage are not left waiting for the poll or the heartbeat.
 */
import { hostname } from 'node:os';
import { describeError, WeftError, type StepErrorInfo } from '../core/errors.js';
import { resolveOutgoingEdges, type CompiledStep, type CompiledWorkflow } from '../core/graph.js';
import { mintIdBody } from '../core/ids.js';
import { encodeJson } from '../core/json.js';
import { backoffDelay } from '../core/retry.js';
import type { StepContext } from '../core/workflow.js';
import { isTransientDatabaseError } from '../store/db-errors.js';
import type { Executor } from '../store/executor.js';
import type { ClaimedStep } from '../store/rows.js';
import type { CommitPayload, CompleteResult, RunStore } from '../store/run-store.js';
import { runControlTransition, type ControlDeps, type ControlOutcome } from './control.js';
import {
  AttemptReleaser,
  COMMIT_RETRY_BASE_MS,
  COMMIT_RETRY_CAP_MS,
  jitteredBackoff,
  sleep,
} from './db-retry.js';
import { GroupCommitter } from './group-commit.js';
import type { Logger } from './logger.js';
import {
  engineMetrics,
  processMetrics,
  trackListeners,
  type EngineMetrics,
  type MetricsRegistry,
} from './metrics.js';
import type { WorkflowRegistry } from './registry.js';
import { computeStatePatch, draftState } from './state.js';

export interface WorkerOptions {
  /** Unique per process; default `<host>-<pid>-<random>`. */
  workerId?: string;
  /** Steps executed at once. Default 10. */
  concurrency?: number;
  /** How long a claim is valid without renewal. Default 30 s. */
  leaseMs?: number;
  /** How often leases are renewed. Default leaseMs / 3. */
  heartbeatMs?: number;
  /** Fallback poll when no NOTIFY arrives. Default 1 s. */
  pollIntervalMs?: number;
  /** How long stop() waits for running steps before aborting them. Default 30 s. */
  shutdownGraceMs?: number;
  /** Where claim latency, step durations and outcomes are counted. Default: the process registry. */
  metrics?: MetricsRegistry;
  /**
   * Fault points for tests: called at named moments with the claim; throwing or killing the
   * process there simulates a crash at that exact point. `afterCommitBeforeAck` runs when a
   * commit try has committed, before the worker reads its reply: throwing a connection error there
   * is a commit whose acknowledgement was lost (the worker retries it, fenced).
   */
  faults?: Partial<
    Record<
      'beforeExecute' | 'beforeCommit' | 'afterCommit' | 'afterCommitBeforeAck',
      (claim: ClaimedStep) => void | Promise<void>
    >
  >;
}

interface InFlight {
  claim: ClaimedStep;
  controller: AbortController;
  /** performance.now() until which the lease surely holds (measured from before the request). */
  leaseUntil: number;
  /** A renewal or the commit of this attempt failed because the database was away. */
  dbTrouble: boolean;
}

export class Worker {
  readonly workerId: string;
  private readonly concurrency: number;
  private readonly leaseMs: number;
  private readonly heartbeatMs: number;
  private readonly pollIntervalMs: number;
  private readonly shutdownGraceMs: number;
  private readonly inflight = new Map<string, InFlight>();
  private readonly chains = new Set<Promise<void>>();
  private running = false;
  private accepting = false;
  private wakeRequested = false;
  private wakeResolve: (() => void) | undefined;
  private loopDone: Promise<void> | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopListening: (() => Promise<void>) | undefined;
  private readonly metrics: EngineMetrics;
  private readonly releaser: AttemptReleaser;
  private readonly committer: GroupCommitter;
  private renewalFailures = 0;
  private untrackListeners: (() => void) | undefined;

  constructor(
    private readonly runs: RunStore,
    private readonly registry: WorkflowRegistry,
    private readonly logger: Logger,
    private readonly options: WorkerOptions = {},
    private readonly controlDeps?: ControlDeps,
  ) {
    this.workerId = options.workerId ?? `${hostname()}-${process.pid}-${mintIdBody().slice(-6)}`;
    this.concurrency = options.concurrency ?? 10;
    this.leaseMs = options.leaseMs ?? 30_000;
    this.heartbeatMs = options.heartbeatMs ?? Math.max(10, Math.floor(this.leaseMs / 3));
    // Renewing no sooner than the lease runs out would lose every lease of a step that runs
    // longer than it (the CLI asks for at most half; the SDK refuses only what cannot work).
    if (!(this.leaseMs > 0) || !(this.heartbeatMs > 0) || this.heartbeatMs >= this.leaseMs)
      throw new WeftError(
        'invalid_config',
        `worker heartbeatMs (${this.heartbeatMs}) must be above 0 and well below leaseMs (${this.leaseMs}); a third of the lease is the default.`,
      );
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.shutdownGraceMs = options.shutdownGraceMs ?? 30_000;
    this.metrics = engineMetrics(options.metrics);
    this.committer = new GroupCommitter(runs, this.workerId, logger);
    this.releaser = new AttemptReleaser(
      runs,
      this.workerId,
      logger,
      () => this.wake(),
      (claim) => this.releaseOrphanedClaims(claim),
    );
  }

  get inFlightCount(): number {
    return this.inflight.size;
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.accepting = true;
    const envId = this.registry.environmentId;
    const unlisten: Array<() => Promise<void>> = [];
    const databases = new Set<Executor>([...this.runs.locations.values()].map((l) => l.db));
    for (const db of databases) {
      // After a LISTEN outage, catch up on what was missed: claim what became ready, and renew
      // the leases at once — a run canceled meanwhile no longer grants them, which aborts its
      // attempts here (the cancel's NOTIFY itself was lost).
      const onReconnect = () => {
        this.wake();
        void this.heartbeat();
      };
      unlisten.push(
        await db.listen(
          'weft_ready',
          (payload) => {
            if (payload === envId || payload === '') this.wake();
          },
          { onReconnect },
        ),
      );
      // A canceled run: abort its attempts here at once (their commits are fenced anyway).
      unlisten.push(
        await db.listen('weft_cancel', (runId) => {
          for (const entry of this.inflight.values()) {
            if (entry.claim.runId === runId && !entry.controller.signal.aborted) {
              entry.controller.abort(new WeftError('run_canceled', `run ${runId} was canceled`));
            }
          }
        }),
      );
    }
    this.untrackListeners = trackListeners(
      this.options.metrics ?? processMetrics,
      [...databases].map((db) => ({ database: 'run_ops', db })),
    );
    this.stopListening = async () => {
      await Promise.all(unlisten.map((u) => u()));
    };
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.heartbeatMs);
    this.loopDone = this.loop();
  }

  /** Wake the claim loop now (a NOTIFY arrived, a slot freed, a retry came due). */
  wake(): void {
    this.wakeRequested = true;
    const resolve = this.wakeResolve;
    this.wakeResolve = undefined;
    resolve?.();
  }

  private waitForWake(ms: number): Promise<void> {
    if (this.wakeRequested) {
      this.wakeRequested = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wakeResolve = undefined;
        resolve();
      }, ms);
      this.wakeResolve = () => {
        clearTimeout(timer);
        this.wakeRequested = false;
        resolve();
      };
    });
  }

  private async loop(): Promise<void> {
    let failures = 0;
    while (this.accepting) {
      const free = this.concurrency - this.inflight.size;
      const workflows = this.registry.workflowIds();
      // A paused environment (PATCH /api/v1/environments/{name}) claims nothing until resumed.
      if (free > 0 && workflows.length > 0 && !(await this.registry.isPaused())) {
        this.wakeRequested = false;
        let claimed: ClaimedStep[];
        const claimStarted = performance.now();
        try {
          claimed = await this.runs.claimSteps(
            this.workerId,
            [this.registry.environmentId],
            workflows,
            free,
            this.leaseMs,
          );
          if (failures > 0)
            this.logger.info({ failures }, 'claiming works again (the database is back)');
          failures = 0;
          this.metrics.claimDuration.observe({}, (performance.now() - claimStarted) / 1000);
          this.metrics.claimedSteps.inc({}, claimed.length);
        } catch (error) {
          failures++;
          // Once per outage, not once per retry (an outage of minutes is dozens of retries).
          if (failures === 1 || !isTransientDatabaseError(error))
            this.logger.error(
              { err: error, workerId: this.workerId },
              'claim failed; retrying with backoff (logged again when it works)',
            );
          await this.waitForWake(Math.min(5000, 100 * 2 ** Math.min(failures, 6)));
          continue;
        }
        if (!this.accepting) {
          // Stopped while the claim was in flight: run what we hold (it is ours now), claim no more.
          for (const c of claimed) this.launch(c, claimStarted);
          break;
        }
        for (const c of claimed) this.launch(c, claimStarted);
        if (claimed.length === free) continue;
      }
      await this.waitForWake(this.pollIntervalMs);
    }
  }

  private launch(claim: ClaimedStep, leaseFrom: number): void {
    const chain = this.runChain(claim, leaseFrom).catch((error: unknown) => {
      this.logger.error({ err: error, stepRunId: claim.stepRunId }, 'worker chain crashed');
    });
    this.chains.add(chain);
    void chain.finally(() => {
      this.chains.delete(chain);
      this.wake();
    });
  }

  /** Execute a claim, then the next step of the same run the commit handed back, and so on. */
  private async runChain(first: ClaimedStep, firstLeaseFrom: number): Promise<void> {
    let next: { claim: ClaimedStep; leaseFrom: number } | null = {
      claim: first,
      leaseFrom: firstLeaseFrom,
    };
    while (next) {
      const entry: InFlight = {
        claim: next.claim,
        controller: new AbortController(),
        leaseUntil: next.leaseFrom + this.leaseMs,
        dbTrouble: false,
      };
      this.inflight.set(entry.claim.stepRunId, entry);
      try {
        next = await this.execute(entry);
      } finally {
        this.inflight.delete(entry.claim.stepRunId);
      }
    }
  }

  private async execute(
    entry: InFlight,
  ): Promise<{ claim: ClaimedStep; leaseFrom: number } | null> {
    const { claim, controller } = entry;
    const log = this.logger.child({
      runId: claim.runId,
      step: claim.stepKey,
      attempt: claim.attempt,
    });
    let resolved;
    try {
      resolved = await this.registry.resolveStep(claim.workflowId, claim.versionId, claim.stepId);
    } catch (error) {
      await this.recordFailure(claim, describeError(error), null, log);
      return null;
    }
    const { workflow, step } = resolved;
    if (step.control) return this.executeControl(entry, workflow, step, log);
    const what = `Step \`${claim.stepKey}\` of workflow \`${workflow.id}\` (run ${claim.runId}, attempt ${claim.attempt})`;
    const draft = draftState(claim.state);
    const ctx: StepContext = {
      runId: claim.runId,
      workflowId: claim.workflowId,
      stepId: claim.stepId,
      stepKey: claim.stepKey,
      attempt: claim.attempt,
      maxAttempts: claim.maxAttempts,
      idempotencyKey: claim.stepRunId,
      signal: controller.signal,
      log: {
        debug: (m, d) => log.debug(d ?? {}, m),
        info: (m, d) => log.info(d ?? {}, m),
        warn: (m, d) => log.warn(d ?? {}, m),
        error: (m, d) => log.error(d ?? {}, m),
      },
      state: draft,
    };
    // Outside the try below: a fault here is a crash before the code starts (the attempt keeps its
    // claim until the lease expires and is reaped as lost), not a failure of the step's code.
    await this.options.faults?.beforeExecute?.(claim);
    let timeout: NodeJS.Timeout | undefined;
    if (step.timeoutMs !== undefined) {
      const ms = step.timeoutMs;
      timeout = setTimeout(
        () =>
          controller.abort(
            new WeftError('step_timeout', `${what} timed out after ${ms} ms (its \`timeout\`).`),
          ),
        ms,
      );
    }
    let output: unknown;
    const started = performance.now();
    const observe = (outcome: 'succeeded' | 'failed') =>
      this.metrics.stepDuration.observe(
        { workflow: claim.workflowId, outcome },
        (performance.now() - started) / 1000,
      );
    try {
      output = await raceAbort(
        Promise.resolve().then(() => step.run(claim.input, ctx)),
        controller.signal,
      );
    } catch (error) {
      clearTimeout(timeout);
      observe('failed');
      if (controller.signal.aborted && isLeaseLost(controller.signal.reason)) {
        log.warn(
          { reason: String(controller.signal.reason) },
          'attempt abandoned: lease lost or run canceled',
        );
        // Lost through a database outage (renewals failed): the database failed, not the step.
        if (entry.dbTrouble) this.releaser.release(claim, 'its lease could not be renewed');
        return null;
      }
      const info = describeError(controller.signal.aborted ? controller.signal.reason : error);
      const exhausted = claim.attempt >= claim.maxAttempts;
      // A shutdown says nothing about the step: it is requeued at once for another worker.
      const delay =
        info.terminal || exhausted
          ? null
          : info.code === 'worker_shutdown'
            ? 0
            : backoffDelay(step.retry, claim.attempt + 1);
      await this.recordFailure(claim, info, delay, log);
      return null;
    }
    clearTimeout(timeout);
    observe('succeeded');
    if (step.kind === 'router') {
      // A router decides; the data passes through: its successors receive the router's input.
      return this.commitOutput(entry, workflow, step, claim.input, ctx.state, what, log, {
        value: output,
      });
    }
    return this.commitOutput(entry, workflow, step, output, ctx.state, what, log);
  }

  /** Validate an output and the state draft, resolve the edges, and commit (group commit). */
  private async commitOutput(
    entry: InFlight,
    workflow: CompiledWorkflow,
    step: CompiledStep,
    output: unknown,
    stateDraft: unknown,
    what: string,
    log: Logger,
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
      commit = {
        outputText: encoded.text,
        stateSet: patch.setText,
        stateDelete: patch.delete,
        live: edges.live,
        dead: edges.dead,
      };
    } catch (error) {
      await this.recordFailure(claim, describeError(error), null, log);
      return null;
    }
    await this.options.faults?.beforeCommit?.(claim);
    const leaseFrom = performance.now();
    const outcome = await this.commitDurably(entry, log, {
      ...commit,
      // with a per-run limit every claim must go through the limit check in claim_steps
      // (and a paused environment claims nothing, not even the next step of a run in flight)
      claimNext:
        this.accepting &&
        workflow.graph.maxConcurrency === undefined &&
        !(await this.registry.isPaused()),
      leaseMs: this.leaseMs,
    });
    if (outcome === 'failed') return null;
    const { result, retried } = outcome;
    if (result.status === 'fenced') {
      this.metrics.fencedCommits.inc({});
      log.warn(
        { stepRunId: claim.stepRunId, retried },
        retried
          ? 'commit retry rejected: either the try whose reply was lost did commit, or the lease ran out meanwhile'
          : 'late commit rejected: this attempt no longer holds its lease (expired, reaped or canceled); its output was discarded',
      );
      if (retried) this.releaseOrphanedClaims(claim);
      return null;
    }
    this.metrics.stepsSucceeded.inc({ workflow: claim.workflowId });
    await this.options.faults?.afterCommit?.(claim);
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
    log: Logger,
    payload: CommitPayload,
  ): Promise<{ result: CompleteResult; retried: boolean } | 'failed'> {
    const { claim, controller } = entry;
    for (let failures = 0; ;) {
      try {
        const result = await this.committer.commit(claim, payload);
        await this.options.faults?.afterCommitBeforeAck?.(claim);
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
        this.metrics.commitRetries.inc({});
        const delay = jitteredBackoff(failures, COMMIT_RETRY_BASE_MS, COMMIT_RETRY_CAP_MS);
        // aborted: lease lost, run canceled, or a shutdown past its grace
        if (controller.signal.aborted || performance.now() + delay >= entry.leaseUntil) {
          log.warn(
            { err: String(error), retries: failures - 1 },
            'commit could not be made while the lease held (database unavailable); the output is dropped and the attempt will be released uncharged',
          );
          // A try may have committed before its connection dropped: if the release finds the
          // attempt no longer running, look for a next step that commit claimed for us.
          this.releaser.release(claim, 'its commit failed', true);
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
  private releaseOrphanedClaims(claim: ClaimedStep): void {
    void this.runs
      .heldStepRuns(claim.runId, this.workerId)
      .then((held) => {
        // A commit of this run still in flight may be handing this worker a claim right now (its
        // reply not yet read): leave the run alone then; the lease and the reaper cover the rare
        // orphan that remains.
        if (this.committer.isCommitting(claim.runId)) return;
        for (const h of held)
          if (!this.inflight.has(h.stepRunId))
            this.releaser.release(h, 'the reply to the commit that claimed it was lost');
      })
      .catch((error: unknown) =>
        this.logger.warn({ err: error }, 'could not look for claims a lost commit reply made'),
      );
  }

  /** One transition of a control node (see control.ts): park, finish with an output, or fail. */
  private async executeControl(
    entry: InFlight,
    workflow: CompiledWorkflow,
    step: CompiledStep,
    log: Logger,
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
      // Infrastructure trouble (the database, a child trigger): try the transition again shortly.
      await this.recordFailure(claim, { ...describeError(error), terminal: false }, 1000, log);
      return null;
    }
    if (outcome.kind === 'complete')
      return this.commitOutput(entry, workflow, step, outcome.output, claim.state, what, log);
    if (outcome.kind === 'fail') {
      const edges = resolveOutgoingEdges(
        workflow.id,
        step,
        outcome.timedOut ? { ok: false, timedOut: true } : { ok: false },
      );
      await this.recordFailure(
        claim,
        { ...describeError(outcome.error), terminal: true },
        null,
        log,
        edges,
      );
      return null;
    }
    try {
      const parked = await this.runs.parkStep(claim, this.workerId, outcome.park);
      if (parked === 'fenced') {
        log.warn('park rejected: this transition no longer holds its lease');
        // The child started just now has no parent waiting on it any more (the run failed or was
        // canceled meanwhile): cancel it rather than leave it orphaned.
        if (outcome.childRunId) {
          await this.runs
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
        await this.runs.wakeParentIfChildEnded(claim.stepRunId, outcome.childRunId);
    } catch (error) {
      log.error(
        { err: error },
        'parking failed; the lease will expire and the transition will run again',
      );
    }
    return null;
  }

  private async recordFailure(
    claim: ClaimedStep,
    info: StepErrorInfo,
    retryDelayMs: number | null,
    log: Logger,
    edges?: { live: string[]; dead: string[] },
  ): Promise<void> {
    try {
      const result = await this.runs.failStep(claim, this.workerId, info, retryDelayMs, edges);
      const workflow = { workflow: claim.workflowId };
      if (result.status !== 'fenced') this.metrics.attemptFailures.inc(workflow);
      if (result.status === 'fenced') {
        this.metrics.fencedCommits.inc({});
        log.warn('failure not recorded: the attempt no longer holds its lease');
      } else if (result.status === 'retrying') {
        this.metrics.retries.inc(workflow);
        log.info({ err: info.message, retryInMs: retryDelayMs }, 'attempt failed; retrying');
        if (retryDelayMs !== null) this.wakeAfter(retryDelayMs);
      } else {
        this.metrics.stepsFailed.inc(workflow);
        log.warn({ err: info.message, runStatus: result.runStatus }, 'step failed');
      }
    } catch (error) {
      log.error(
        { err: error },
        'recording the failure failed; the lease will expire and the reaper will handle it',
      );
    }
  }

  private wakeAfter(ms: number): void {
    if (!this.accepting) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.wake();
    }, ms + 5);
    this.timers.add(timer);
  }

  /** Renew the leases of everything in flight; abort attempts whose lease was lost. */
  private async heartbeat(): Promise<void> {
    const ids = [...this.inflight.keys()];
    if (ids.length === 0) return;
    const sent = performance.now();
    try {
      const held = await this.runs.extendLeases(this.workerId, ids, this.leaseMs);
      for (const id of ids) {
        const entry = this.inflight.get(id);
        if (entry && held.has(id))
          entry.leaseUntil = Math.max(entry.leaseUntil, sent + this.leaseMs);
        if (entry && !held.has(id) && !entry.controller.signal.aborted) {
          entry.controller.abort(
            new WeftError(
              'lease_lost',
              `attempt ${entry.claim.attempt} of step run ${id} lost its lease (reaped, canceled or the run ended)`,
            ),
          );
        }
      }
    } catch (error) {
      const transient = isTransientDatabaseError(error);
      if (transient)
        for (const id of ids) {
          const entry = this.inflight.get(id);
          if (entry) entry.dbTrouble = true;
        }
      this.renewalFailures++;
      if (this.renewalFailures === 1 || !transient)
        this.logger.warn(
          { err: error },
          'lease renewal failed; will try again (logged again when it works)',
        );
      return;
    }
    if (this.renewalFailures > 0) {
      this.logger.info({ failures: this.renewalFailures }, 'lease renewal works again');
      this.renewalFailures = 0;
    }
  }

  /**
   * Graceful stop: claim nothing more, let running steps finish for up to `shutdownGraceMs`,
   * then abort the rest (their attempts fail as retryable and are requeued at once).
   */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.accepting = false;
    this.wake();
    await this.loopDone;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const drained = Promise.all([...this.chains]);
    const grace = new Promise<'timeout'>((resolve) => {
      const t = setTimeout(() => resolve('timeout'), this.shutdownGraceMs);
      void drained.finally(() => clearTimeout(t));
    });
    if ((await Promise.race([drained.then(() => 'done' as const), grace])) === 'timeout') {
      for (const entry of this.inflight.values()) {
        entry.controller.abort(
          new WeftError(
            'worker_shutdown',
            `worker ${this.workerId} is shutting down and step run ${entry.claim.stepRunId} (\`${entry.claim.stepKey}\`, attempt ${entry.claim.attempt}) ran past the ${this.shutdownGraceMs} ms grace; it runs again on a live worker.`,
          ),
        );
      }
      await drained;
    }
    clearInterval(this.heartbeatTimer);
    await this.releaser.stop();
    await this.stopListening?.();
    this.untrackListeners?.();
    this.running = false;
  }
}

function isLeaseLost(reason: unknown): boolean {
  return (
    reason instanceof WeftError && (reason.code === 'lease_lost' || reason.code === 'run_canceled')
  );
}

/** Resolve with the promise, or reject as soon as the signal aborts (the promise is abandoned). */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
