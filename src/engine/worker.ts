/**
 * The worker: claims ready step runs, executes them with no transaction open, and commits or
 * fails each attempt in one round trip. This file is the claim loop and the worker's lifecycle
 * (start, wake-ups, stop); its parts share one WorkerResources (worker-resources.ts):
 * - step-executor.ts      runs user code with its ctx, or a control node's transition
 * - attempt-committer.ts  output validation, commit (group-commit.ts) with retries, failures
 * - lease-keeper.ts       the heartbeat that renews leases and aborts attempts that lost theirs
 * - db-retry.ts           attempts given back uncharged after a database outage
 *
 * Failure semantics:
 * - The attempt is recorded by the claim (on its step run), before step code starts. If this process dies while
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
import { WeftError } from '../core/errors.js';
import { mintIdBody } from '../core/ids.js';
import { isTransientDatabaseError } from '../store/db-errors.js';
import type { Executor } from '../store/executor.js';
import type { ClaimedStep } from '../store/rows.js';
import type { RunStore } from '../store/run-store.js';
import { AttemptAbort } from './attempt-abort.js';
import { AttemptCommitter } from './attempt-committer.js';
import type { ControlDeps } from './control.js';
import { AttemptReleaser } from './db-retry.js';
import { GroupCommitter } from './group-commit.js';
import { LeaseKeeper } from './lease-keeper.js';
import type { Logger } from './logger.js';
import { engineMetrics, processMetrics, trackListeners, type EngineMetrics } from './metrics.js';
import type { WorkflowRegistry } from './registry.js';
import { StepExecutor } from './step-executor.js';
import type { InFlight, WorkerOptions, WorkerResources } from './worker-resources.js';
import { CHANNELS } from '../store/channels.js';

export type { WorkerOptions } from './worker-resources.js';

/** A worker slot held for a run about to be created (eager start; Worker.reserveEager). */
export interface EagerSlot {
  workerId: string;
  leaseMs: number;
  /** The trigger committed: run what it claimed for this worker (nothing: the slot is free). */
  use(claims: ClaimedStep[]): void;
  /** The trigger failed: the slot is free. */
  release(): void;
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
  /** Slots held by eager starts in flight (reserveEager). */
  private reserved = 0;
  /** The last claim had room to spare: nothing older was ready when it ran. */
  private drained = false;
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
  private readonly commits: AttemptCommitter;
  private readonly executor: StepExecutor;
  private readonly leases: LeaseKeeper;
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
      (claim) => this.commits.releaseOrphanedClaims(claim),
    );
    const resources: WorkerResources = {
      runs,
      registry,
      logger,
      workerId: this.workerId,
      leaseMs: this.leaseMs,
      metrics: this.metrics,
      faults: options.faults,
      inflight: this.inflight,
      releaser: this.releaser,
      committer: this.committer,
      isAccepting: () => this.accepting,
      wake: () => this.wake(),
      wakeAfter: (ms) => this.wakeAfter(ms),
    };
    this.commits = new AttemptCommitter(resources);
    this.executor = new StepExecutor(resources, this.commits, controlDeps);
    this.leases = new LeaseKeeper(resources);
  }

  get inFlightCount(): number {
    return this.inflight.size;
  }

  /**
   * Eager start (Engine.trigger; Temporal calls it eager workflow start): hold a slot so that the
   * run about to be created has its first step claimed for this worker by the trigger's own
   * statement, and started the moment the commit returns, with no NOTIFY, wake-up or claim in
   * between. Only while this worker serves the workflow, has a free slot, and its last claim left
   * nothing ready behind (a new run must not jump a queue); otherwise undefined.
   */
  reserveEager(workflowId: string): EagerSlot | undefined {
    if (!this.accepting || !this.drained || this.free() <= 0) return undefined;
    if (!this.registry.workflowIds().includes(workflowId)) return undefined;
    this.reserved++;
    const leaseFrom = performance.now(); // before the claim was sent: the local lease ends first
    let held = true;
    const free = () => {
      if (held) {
        held = false;
        this.reserved--;
      }
    };
    return {
      workerId: this.workerId,
      leaseMs: this.leaseMs,
      use: (claims) => {
        free();
        this.metrics.claimedSteps.inc({}, claims.length);
        // claimed for this worker: run it even if stopping began meanwhile (stop waits for it)
        for (const c of claims) this.launch(c, leaseFrom);
        if (claims.length === 0) this.wake();
      },
      release: () => {
        free();
        this.wake();
      },
    };
  }

  private free(): number {
    return this.concurrency - this.inflight.size - this.reserved;
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
        void this.leases.heartbeat();
      };
      unlisten.push(
        await db.listen(
          CHANNELS.ready,
          (payload) => {
            if (payload === envId || payload === '') this.wake();
          },
          { onReconnect },
        ),
      );
      // A canceled run: abort its attempts here at once (their commits are fenced anyway).
      unlisten.push(
        await db.listen(CHANNELS.cancel, (runId) => {
          for (const entry of this.inflight.values()) {
            if (entry.claim.runId === runId && !entry.abort.aborted) {
              entry.abort.abort(new WeftError('run_canceled', `run ${runId} was canceled`));
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
    this.heartbeatTimer = setInterval(() => void this.leases.heartbeat(), this.heartbeatMs);
    this.loopDone = this.loop();
  }

  /** Wake the claim loop now (a NOTIFY arrived, a retry came due, a slot freed with work left). */
  wake(): void {
    // Work may be ready that this worker has no slot for: the next slot that frees must claim.
    if (this.free() <= 0) this.drained = false;
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
      const free = this.free();
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
        this.drained = claimed.length < free;
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
      // A freed slot claims only when work was left behind: the last claim filled every slot, or
      // a wake-up came while none was free. Otherwise nothing became ready that no NOTIFY will
      // announce, and the claim would find nothing (a one-step run cost a claim round trip more).
      if (!this.drained) this.wake();
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
        abort: new AttemptAbort(),
        leaseUntil: next.leaseFrom + this.leaseMs,
        dbTrouble: false,
      };
      this.inflight.set(entry.claim.stepRunId, entry);
      try {
        next = await this.executor.execute(entry);
      } finally {
        this.inflight.delete(entry.claim.stepRunId);
      }
    }
  }

  /** Wake the claim loop after `ms` (a retry comes due), unless stopping. */
  private wakeAfter(ms: number): void {
    if (!this.accepting) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.wake();
    }, ms + 5);
    this.timers.add(timer);
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
    // eager starts in flight hand their claims over when their trigger commits
    while (this.reserved > 0) await new Promise((resolve) => setTimeout(resolve, 1));
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const drained = Promise.all([...this.chains]);
    const grace = new Promise<'timeout'>((resolve) => {
      const t = setTimeout(() => resolve('timeout'), this.shutdownGraceMs);
      void drained.finally(() => clearTimeout(t));
    });
    if ((await Promise.race([drained.then(() => 'done' as const), grace])) === 'timeout') {
      for (const entry of this.inflight.values()) {
        entry.abort.abort(
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
