/**
 * The engine composes single-concern parts over one set of stores: the workflow registry, a
 * worker, a reaper, and a run watcher. It is what `weft dev`, `weft worker` and embedding code
 * start.
 */
import type { Stores } from '../store/stores.js';
import { wipeExpiredDataclips } from '../store/retention.js';
import type { RunRecord } from '../store/rows.js';
import { BulkRerunProcessor } from './bulk-rerun.js';
import { createLogger, type Logger } from './logger.js';
import { engineMetrics, type EngineMetrics, type MetricsRegistry } from './metrics.js';
import { WorkflowRegistry, type AnyWorkflow } from './registry.js';
import { RunObserver } from './run-observer.js';
import { Scheduler, type CodeSchedule, type SchedulerOptions } from './scheduler.js';
import type { ControlDeps } from './control.js';
import { cancelRun, completeWaitpoint, resumeRun } from './run-control.js';
import { triggerRun, type TriggerResult } from './trigger.js';
import { Worker, type WorkerOptions } from './worker.js';

export interface EngineOptions {
  stores: Stores;
  environmentId: string;
  workflows?: readonly AnyWorkflow[];
  /** Worker settings, or false for a process that only triggers and observes (an API server). */
  worker?: WorkerOptions | false;
  /** How often this process looks for expired leases. Default 5 s; false disables it. */
  reaperIntervalMs?: number | false;
  /** How often due sleeps and approval timeouts are fired. Default 1 s; false disables it. */
  timerIntervalMs?: number | false;
  /** Cron schedules: tick interval and clock, or false for a process that fires none. */
  scheduler?: SchedulerOptions | false;
  /** Schedules declared in code, upserted by (workflow, name) when the engine starts. */
  schedules?: readonly CodeSchedule[];
  logger?: Logger;
  /** Where the worker and the reaper count (GET /metrics). Default: the process registry. */
  metrics?: MetricsRegistry;
  /**
   * How often this process wipes dataclip bodies older than the project's `retentionDays` (ended
   * runs only, see store/retention.ts). Default 1 h; false disables it.
   */
  retentionIntervalMs?: number | false;
  /** How often this process looks for bulk reruns to work on. Default 1 s; false disables it. */
  bulkRerunIntervalMs?: number | false;
}

export class Engine {
  readonly stores: Stores;
  readonly environmentId: string;
  readonly registry: WorkflowRegistry;
  readonly worker: Worker | undefined;
  readonly logger: Logger;
  private readonly watcher: RunObserver;
  private reaperTimer: NodeJS.Timeout | undefined;
  private waitpointTimer: NodeJS.Timeout | undefined;
  private reaping = false;
  private retentionTimer: NodeJS.Timeout | undefined;
  private bulkReruns: BulkRerunProcessor | undefined;
  /** Fires cron schedules of this environment (undefined with `scheduler: false`). */
  readonly scheduler: Scheduler | undefined;
  private readonly metrics: EngineMetrics;

  private constructor(options: EngineOptions) {
    this.stores = options.stores;
    this.environmentId = options.environmentId;
    this.logger = options.logger ?? createLogger();
    this.metrics = engineMetrics(options.metrics);
    this.registry = new WorkflowRegistry(this.stores.control, this.environmentId);
    const controlDeps: ControlDeps = {
      readState: (claim) => this.stores.runs.controlState(claim),
      startChild: async (claim, workflowId, input) => {
        const { run } = await triggerRun(this.stores, {
          environmentId: claim.environmentId,
          workflowId,
          input,
          // a retried transition finds the same child instead of starting another
          idempotencyKey: `child:${claim.stepRunId}`,
          idempotencyTtlMs: 30 * 24 * 3_600_000,
          trigger: { kind: 'child', ref: claim.runId },
          parent: { runId: claim.runId, stepRunId: claim.stepRunId },
        });
        return run.id;
      },
      childResult: async (claim, childRunId) => {
        const child = await this.stores.runs.getRun(claim.environmentId, childRunId);
        if (!child) return { status: 'missing', output: null, error: null };
        const final = child.finalDataclipId
          ? await this.stores.runs.getDataclip(claim.environmentId, child.finalDataclipId)
          : undefined;
        return { status: child.status, output: final?.body ?? null, error: child.error };
      },
      now: () => new Date(),
    };
    this.worker =
      options.worker === false
        ? undefined
        : new Worker(
            this.stores.runs,
            this.registry,
            this.logger,
            { metrics: options.metrics, ...options.worker },
            controlDeps,
          );
    this.watcher = new RunObserver(this.stores.runs);
    this.scheduler =
      options.scheduler === false
        ? undefined
        : new Scheduler(this.stores, this.environmentId, this.logger, options.scheduler, () =>
            this.worker?.wake(),
          );
  }

  /** Register the workflows (validating them), then start the worker and the reaper. */
  static async start(options: EngineOptions): Promise<Engine> {
    const engine = new Engine(options);
    for (const wf of options.workflows ?? []) await engine.registry.register(wf);
    await engine.worker?.start();
    const interval = options.reaperIntervalMs ?? 5000;
    if (interval !== false) {
      engine.reaperTimer = setInterval(() => void engine.reapOnce(), interval);
    }
    const timer = options.timerIntervalMs ?? 1000;
    if (timer !== false) {
      engine.waitpointTimer = setInterval(() => void engine.fireTimersOnce(), timer);
    }
    if (options.schedules?.length) await engine.registerSchedules(options.schedules);
    engine.scheduler?.start();
    const retention = options.retentionIntervalMs ?? 3_600_000;
    if (retention !== false) {
      engine.retentionTimer = setInterval(() => void engine.applyRetentionOnce(), retention);
      engine.retentionTimer.unref();
    }
    const bulk = options.bulkRerunIntervalMs ?? 1000;
    if (bulk !== false) {
      engine.bulkReruns = new BulkRerunProcessor(engine.stores, engine.logger, bulk);
      engine.bulkReruns.start();
    }
    return engine;
  }

  async register(
    workflow: AnyWorkflow,
  ): Promise<{ workflowId: string; versionId: string; version: number; created: boolean }> {
    const result = await this.registry.register(workflow);
    this.worker?.wake();
    return result;
  }

  /** Upsert schedules declared in code (by workflow and name); their workflows must be registered. */
  registerSchedules(
    schedules: readonly CodeSchedule[],
  ): ReturnType<Scheduler['registerCodeSchedules']> {
    const scheduler =
      this.scheduler ??
      new Scheduler(this.stores, this.environmentId, this.logger, { intervalMs: false });
    return scheduler.registerCodeSchedules(schedules);
  }

  /** Requeue or fail attempts whose lease expired. Returns how many were handled. */
  async reapOnce(): Promise<number> {
    if (this.reaping) return 0;
    this.reaping = true;
    try {
      const n = await this.stores.runs.reapExpiredLeases();
      if (n > 0) {
        this.metrics.reapedAttempts.inc({}, n);
        this.logger.warn({ reaped: n }, 'reaped attempts whose lease expired');
        this.worker?.wake();
      }
      return n;
    } catch (error) {
      this.logger.error({ err: error }, 'reaper failed; will try again');
      return 0;
    } finally {
      this.reaping = false;
    }
  }

  private firing = false;
  /** Complete due sleeps and time out expired approvals. Returns how many fired. */
  async fireTimersOnce(): Promise<number> {
    if (this.firing) return 0;
    this.firing = true;
    try {
      const n = await this.stores.runs.fireDueWaitpoints();
      if (n > 0) this.worker?.wake();
      return n;
    } catch (error) {
      this.logger.error({ err: error }, 'waitpoint timer failed; will try again');
      return 0;
    } finally {
      this.firing = false;
    }
  }

  private retaining = false;
  /**
   * Wipe the bodies of this environment's dataclips older than its project's `retentionDays`
   * (nothing when it has none), in batches of 1,000 until none is left. Returns how many.
   */
  async applyRetentionOnce(now = new Date()): Promise<number> {
    if (this.retaining) return 0;
    this.retaining = true;
    try {
      const env = await this.stores.control.getEnvironment(this.environmentId);
      if (!env || env.retentionDays === null) return 0;
      const cutoff = new Date(now.getTime() - env.retentionDays * 86_400_000);
      let total = 0;
      for (;;) {
        const n = await wipeExpiredDataclips(this.stores.runs, this.environmentId, cutoff);
        total += n;
        if (n < 1_000) break;
      }
      if (total > 0)
        this.logger.info(
          { wiped: total, retentionDays: env.retentionDays },
          'wiped expired dataclips',
        );
      return total;
    } catch (error) {
      this.logger.error({ err: error }, 'dataclip retention failed; will try again');
      return 0;
    } finally {
      this.retaining = false;
    }
  }

  cancel(runId: string, reason?: string): Promise<RunRecord> {
    return cancelRun(this.stores, this.environmentId, runId, reason);
  }

  resume(runId: string, options: { version?: 'original' | 'current' } = {}): Promise<RunRecord> {
    return resumeRun(this.stores, this.environmentId, runId, options);
  }

  completeWaitpoint(token: string, payload: unknown): ReturnType<typeof completeWaitpoint> {
    return completeWaitpoint(this.stores, this.environmentId, token, payload);
  }

  trigger(
    workflowId: string,
    input?: unknown,
    options: {
      idempotencyKey?: string;
      idempotencyTtlMs?: number;
      trigger?: TriggerResult['run']['trigger'];
    } = {},
  ): Promise<TriggerResult> {
    const req: Parameters<typeof triggerRun>[1] = {
      environmentId: this.environmentId,
      workflowId,
      input,
    };
    if (options.idempotencyKey !== undefined) req.idempotencyKey = options.idempotencyKey;
    if (options.idempotencyTtlMs !== undefined) req.idempotencyTtlMs = options.idempotencyTtlMs;
    if (options.trigger !== undefined) req.trigger = options.trigger;
    // Eager start: this process's worker, if idle enough, runs the first step as soon as the
    // trigger commits (Worker.reserveEager; the statement: eagerSelect in run-creation.ts).
    const slot = this.worker?.reserveEager(workflowId);
    if (!slot) return triggerRun(this.stores, req);
    return triggerRun(this.stores, req, { workerId: slot.workerId, leaseMs: slot.leaseMs }).then(
      (result) => {
        slot.use(result.claims ?? []);
        return { run: result.run, deduplicated: result.deduplicated };
      },
      (error: unknown) => {
        slot.release();
        throw error;
      },
    );
  }

  waitForRun(runId: string, options: { timeoutMs?: number } = {}): Promise<RunRecord> {
    return this.watcher.waitForRun(this.environmentId, runId, options);
  }

  /** Stop claiming, drain running steps (graceful), stop the reaper. Leaves the stores open. */
  async stop(): Promise<void> {
    clearInterval(this.reaperTimer);
    clearInterval(this.waitpointTimer);
    clearInterval(this.retentionTimer);
    this.scheduler?.stop();
    await this.bulkReruns?.stop();
    await this.worker?.stop();
    await this.watcher.close();
  }
}
