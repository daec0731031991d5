/**
 * Waiting for runs to end: LISTEN on `weft_run_finished` (sent by finish_run in the ending
 * transaction) with a poll as the fallback for missed notifications.
 */
import { WeftError } from '../core/errors.js';
import type { RunRecord } from '../store/rows.js';
import { TERMINAL_RUN_STATUSES } from '../store/rows.js';
import type { RunStore } from '../store/run-store.js';

export class RunWatcher {
  private readonly waiters = new Map<string, Set<() => void>>();
  private unlisten: Array<() => Promise<void>> = [];
  private started: Promise<void> | undefined;

  constructor(private readonly runs: RunStore) {}

  private start(): Promise<void> {
    this.started ??= (async () => {
      for (const loc of this.runs.locations.values()) {
        this.unlisten.push(await loc.db.listen('weft_run_finished', (runId) => this.notify(runId)));
      }
    })();
    return this.started;
  }

  private notify(runId: string): void {
    const set = this.waiters.get(runId);
    if (set) for (const fn of set) fn();
  }

  /** Resolve with the run once it has ended (succeeded, failed or canceled) or paused. */
  async waitForRun(
    environmentId: string,
    runId: string,
    options: { timeoutMs?: number; pollMs?: number } = {},
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
        const set = this.waiters.get(runId) ?? new Set();
        this.waiters.set(runId, set);
        const done = () => {
          clearTimeout(timer);
          set.delete(done);
          if (set.size === 0) this.waiters.delete(runId);
          resolve();
        };
        const timer = setTimeout(done, Math.min(left, options.pollMs ?? 500));
        set.add(done);
      });
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.unlisten.map((u) => u()));
    this.unlisten = [];
    this.started = undefined;
  }
}
