/**
 * The engine composes single-concern parts over one set of stores: the workflow registry, a
 * worker, a reaper, and a run watcher. It is what `weft dev`, `weft worker` and embedding code
 * start.
 */
import type { Stores } from '../store/stores.js';
import type { RunRecord } from '../store/rows.js';
import { createLogger, type Logger } from './logger.js';
import { WorkflowRegistry, type AnyWorkflow } from './registry.js';
import { RunWatcher } from './run-watcher.js';
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
  logger?: Logger;
}

export class Engine {
  readonly stores: Stores;
  readonly environmentId: string;
  readonly registry: WorkflowRegistry;
  readonly worker: Worker | undefined;
  readonly logger: Logger;
  private readonly watcher: RunWatcher;
  private reaperTimer: NodeJS.Timeout | undefined;
  private reaping = false;

  private constructor(options: EngineOptions) {
    this.stores = options.stores;
    this.environmentId = options.environmentId;
    this.logger = options.logger ?? createLogger();
    this.registry = new WorkflowRegistry(this.stores.control, this.environmentId);
    this.worker =
      options.worker === false
        ? undefined
        : new Worker(this.stores.runs, this.registry, this.logger, options.worker ?? {});
    this.watcher = new RunWatcher(this.stores.runs);
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
    return engine;
  }

  async register(
    workflow: AnyWorkflow,
  ): Promise<{ workflowId: string; versionId: string; version: number; created: boolean }> {
    const result = await this.registry.register(workflow);
    this.worker?.wake();
    return result;
  }

  /** Requeue or fail attempts whose lease expired. Returns how many were handled. */
  async reapOnce(): Promise<number> {
    if (this.reaping) return 0;
    this.reaping = true;
    try {
      const n = await this.stores.runs.reapExpiredLeases();
      if (n > 0) {
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
    return triggerRun(this.stores, req);
  }

  waitForRun(runId: string, options: { timeoutMs?: number } = {}): Promise<RunRecord> {
    return this.watcher.waitForRun(this.environmentId, runId, options);
  }

  /** Stop claiming, drain running steps (graceful), stop the reaper. Leaves the stores open. */
  async stop(): Promise<void> {
    clearInterval(this.reaperTimer);
    await this.worker?.stop();
    await this.watcher.close();
  }
}
