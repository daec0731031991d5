/**
 * How the worker rides out the database going away: the backoff it retries with, and the
 * background release of attempts the database (not the step) made fail.
 */
import type { ClaimedStep } from '../store/rows.js';
import type { RunStore } from '../store/run-store.js';
import type { Logger } from './logger.js';

/** Commit retries: first after ~50 ms, doubling, capped at 1 s (a restart takes about a second). */
export const COMMIT_RETRY_BASE_MS = 50;
export const COMMIT_RETRY_CAP_MS = 1_000;

/** Exponential backoff with "equal jitter": half the delay fixed, half random. */
export function jitteredBackoff(failures: number, baseMs: number, capMs: number): number {
  const exp = Math.min(capMs, baseMs * 2 ** Math.min(Math.max(failures - 1, 0), 20));
  return Math.round(exp / 2 + Math.random() * (exp / 2));
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** The error recorded on an attempt given back uncharged (RunStore.releaseAttempt). */
export function databaseFailureError(workerId: string, why: string): Record<string, unknown> {
  return {
    name: 'DatabaseUnavailable',
    code: 'database_unavailable',
    message: `worker ${workerId} could not reach the database (${why}); the attempt does not count against maxAttempts and the step runs again.`,
    terminal: false,
    charged: false,
  };
}

/** Give up releasing after this long; the reaper then handles the attempt (and charges it). */
export const RELEASE_RETRY_FOR_MS = 10 * 60_000;
const RELEASE_RETRY_CAP_MS = 2_000;

/**
 * Releases attempts uncharged once the database answers again, retrying in the background with
 * capped, jittered backoff. A release that finds the attempt reaped, canceled or ended changes
 * nothing (it is fenced).
 */
export class AttemptReleaser {
  private readonly pending = new Set<Promise<void>>();
  private stopped = false;

  constructor(
    private readonly runs: RunStore,
    private readonly workerId: string,
    private readonly logger: Logger,
    private readonly onReleased: (claim: ClaimedStep) => void,
    /** The attempt was not running any more: perhaps its commit did go through (see Worker). */
    private readonly onFenced: (claim: ClaimedStep) => void = () => {},
  ) {}

  /** `checkFenced`: call onFenced when the release finds the attempt no longer running. */
  release(claim: ClaimedStep, why: string, checkFenced = false): void {
    const job = this.releaseUntilAnswered(claim, why, checkFenced).catch((error: unknown) => {
      this.logger.error({ err: error, stepRunId: claim.stepRunId }, 'releasing the attempt failed');
    });
    this.pending.add(job);
    void job.finally(() => this.pending.delete(job));
  }

  private async releaseUntilAnswered(
    claim: ClaimedStep,
    why: string,
    checkFenced: boolean,
  ): Promise<void> {
    const log = this.logger.child({
      runId: claim.runId,
      step: claim.stepKey,
      attempt: claim.attempt,
    });
    const deadline = performance.now() + RELEASE_RETRY_FOR_MS;
    for (let failures = 0; ; failures++) {
      try {
        const outcome = await this.runs.releaseAttempt(
          claim,
          this.workerId,
          databaseFailureError(this.workerId, why),
        );
        if (outcome === 'released') {
          log.warn(
            { why },
            'attempt released uncharged (the database failed, not the step): the step runs again',
          );
          this.onReleased(claim);
        } else {
          log.warn(
            { why },
            'attempt not released: it was committed, reaped, canceled or ended meanwhile (a reaped attempt stays charged)',
          );
          if (checkFenced) this.onFenced(claim);
        }
        return;
      } catch (error) {
        if (this.stopped || performance.now() > deadline) {
          log.error(
            { err: error },
            'could not release the attempt; the reaper will handle it when its lease has expired',
          );
          return;
        }
        await sleep(jitteredBackoff(failures + 1, 100, RELEASE_RETRY_CAP_MS));
      }
    }
  }

  /** Stop retrying (releases in flight finish their current try). */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.pending]);
  }
}
