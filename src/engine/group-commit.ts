/**
 * Group commit for one worker, across runs. A finished attempt is queued; if fewer than
 * MAX_IN_FLIGHT commits are in flight it is sent at once (no added latency when idle), otherwise
 * it waits for one of them and goes out with everything else that finished meanwhile, in one
 * statement and one WAL flush (complete_steps). Several batches in flight use several pool
 * connections, so the server works on them in parallel (a batch is one PL/pgSQL loop on one
 * backend) and their WAL flushes merge; one in flight left the other cores idle during each
 * batch's round trip. Two batches in flight at once are like two workers' batches: each sorts its
 * items by run id, and a conflict between them falls back to one statement per item.
 *
 * Failure semantics: each item is fenced on its own inside the batch statement, so a batch never
 * commits an attempt that lost its lease. A batch that fails as a whole because of a conflict with
 * another worker's batch (deadlock, serialization) is retried one statement per item; one that
 * fails because the database is away rejects every item with that error, and the worker retries
 * each while its lease holds (Worker.commitDurably).
 */
import { isConflictError, isTransientDatabaseError } from '../store/db-errors.js';
import type { ClaimedStep } from '../store/rows.js';
import type { CommitPayload, CompleteResult, RunStore } from '../store/run-store.js';
import type { Logger } from './logger.js';

interface PendingCommit {
  claim: ClaimedStep;
  commit: CommitPayload;
  resolve: (result: CompleteResult) => void;
  reject: (error: unknown) => void;
}

/** Largest group commit: bounds one statement's size and how long its locks are held. */
const MAX_COMMIT_BATCH = 64;

/**
 * Most batches of one worker in flight at once. 2 cores of server: beyond that, more connections
 * add context switches and smaller batches. Measured on the fan-out (bench/RESULTS.md, issue 8).
 */
const MAX_IN_FLIGHT = 3;

export class GroupCommitter {
  private readonly queue: PendingCommit[] = [];
  private inFlight = 0;
  private readonly committingRuns = new Map<string, number>();

  constructor(
    private readonly runs: RunStore,
    private readonly workerId: string,
    private readonly logger: Logger,
  ) {}

  /** Whether a commit of this run is queued or in flight (its reply not read yet). */
  isCommitting(runId: string): boolean {
    return (this.committingRuns.get(runId) ?? 0) > 0;
  }

  commit(claim: ClaimedStep, commit: CommitPayload): Promise<CompleteResult> {
    const runId = claim.runId;
    this.committingRuns.set(runId, (this.committingRuns.get(runId) ?? 0) + 1);
    const done = () => {
      const n = (this.committingRuns.get(runId) ?? 1) - 1;
      if (n > 0) this.committingRuns.set(runId, n);
      else this.committingRuns.delete(runId);
    };
    return new Promise<CompleteResult>((resolve, reject) => {
      this.queue.push({ claim, commit, resolve, reject });
      this.pump();
    }).finally(done);
  }

  /** Send what is queued while a slot is free; each batch's end frees its slot and pumps again. */
  private pump(): void {
    while (this.queue.length > 0 && this.inFlight < MAX_IN_FLIGHT) {
      const batch = this.queue.splice(0, MAX_COMMIT_BATCH);
      this.inFlight++;
      void this.send(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async send(batch: PendingCommit[]): Promise<void> {
    try {
      const results = await this.runs.completeSteps(
        batch.map((p) => ({ claim: p.claim, workerId: this.workerId, commit: p.commit })),
      );
      batch.forEach((p, i) => p.resolve(results[i]!));
    } catch (error) {
      const conflict = isConflictError(error);
      if (batch.length === 1 || (isTransientDatabaseError(error) && !conflict)) {
        for (const p of batch) p.reject(error);
        return;
      }
      // A batch fails as a whole (a deadlock with another worker's batch): fall back to one
      // statement per attempt, each fenced on its own.
      this.logger.warn(
        { err: error, size: batch.length },
        'group commit failed; committing one by one',
      );
      for (const p of batch) {
        try {
          p.resolve(await this.runs.completeStep(p.claim, this.workerId, p.commit));
        } catch (single) {
          p.reject(single);
        }
      }
    }
  }
}
