/**
 * Waiting for runs to end: LISTEN on `weft_run_finished` (signalled by the store right after the ending
 * transaction). A missed notification (a dropped LISTEN connection) is covered by one poll for
 * all waited runs together — one query per location per poll interval, however many waiters.
 */
import { WeftError } from '../core/errors.js';
import type { RunRecord } from '../store/rows.js';
import { TERMINAL_RUN_STATUSES } from '../store/rows.js';
import type { RunStore } from '../store/run-store.js';

interface Waiter {
  environmentId: string;
  wake: () => void;
}

export class RunWatcher {
  private readonly waiters = new Map<string, Set<Waiter>>();
  private unlisten: Array<() => Promise<void>> = [];
  private started: Promise<void> | undefined;
  private pollTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly runs: RunStore,
    private readonly pollMs = 1000,
  ) {}

  private start(): Promise<void> {
    this.started ??= (async () => {
      for (const loc of this.runs.locations.values()) {
        this.unlisten.push(
          await loc.db.listen('weft_run_finished', (runId) => this.wakeRun(runId)),
        );
      }
    })();
    return this.started;
  }

  private wakeRun(runId: string): void {
    const set = this.waiters.get(runId);
    if (set) for (const w of set) w.wake();
  }

  private schedulePoll(): void {
    if (this.pollTimer || this.waiters.size === 0) return;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = undefined;
      void this.pollEnded()
        .catch(() => {})
        .finally(() => this.schedulePoll());
    }, this.pollMs);
  }

  private async pollEnded(): Promise<void> {
    const ended = await this.runs.findEndedRuns([...this.waiters.keys()]);
    for (const id of ended) this.wakeRun(id);
  }

  /** Resolve with the run once it has ended (succeeded, failed or canceled) or paused. */
  async waitForRun(
    environmentId: string,
    runId: string,
    options: { timeoutMs?: number } = {},
  ): Promise<RunRecord> {
    await this.start();
    const timeoutMs = options.timeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const run = await this.runs.getRun(environmentId, runId);
      if (!run)
        throw new WeftError(
          'not_found',
          `run ${runId} does not exist in environment ${environmentId}`,
        );
      if (TERMINAL_RUN_STATUSES.includes(run.status) || run.status === 'paused') return run;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new WeftError(
          'internal',
          `run ${runId} did not end within ${timeoutMs} ms (status ${run.status})`,
        );
      }
      await new Promise<void>((resolve) => {
        const set = this.waiters.get(runId) ?? new Set<Waiter>();
        this.waiters.set(runId, set);
        const waiter: Waiter = {
          environmentId,
          wake: () => {
            clearTimeout(timer);
            set.delete(waiter);
            if (set.size === 0) this.waiters.delete(runId);
            resolve();
          },
        };
        const timer = setTimeout(waiter.wake, left);
        set.add(waiter);
        this.schedulePoll();
      });
    }
  }

  async close(): Promise<void> {
    clearTimeout(this.pollTimer);
    this.pollTimer = undefined;
    await Promise.all(this.unlisten.map((u) => u()));
    this.unlisten = [];
    this.started = undefined;
  }
}
