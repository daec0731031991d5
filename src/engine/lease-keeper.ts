/**
 * The lease keeper: renews the leases of every attempt in flight (the heartbeat) and aborts an
 * attempt whose lease was lost (reaped, canceled, or its run ended). A renewal that fails because
 * the database is away marks the attempts `dbTrouble`, so a lease then lost is released uncharged.
 */
import { WeftError } from '../core/errors.js';
import { isTransientDatabaseError } from '../store/db-errors.js';
import type { WorkerResources } from './worker-resources.js';

export class LeaseKeeper {
  private renewalFailures = 0;

  constructor(private readonly w: WorkerResources) {}

  /** Renew the leases of everything in flight; abort attempts whose lease was lost. */
  async heartbeat(): Promise<void> {
    const ids = [...this.w.inflight.keys()];
    if (ids.length === 0) return;
    const sent = performance.now();
    // Leases that ran out before this renewal was sent: the event loop was blocked (a step running
    // synchronous code, a long GC pause) or the process was stopped longer than the lease. Another
    // worker may have claimed the step meanwhile; the renewal below says whether it did.
    const lapsed = new Map<string, number>();
    for (const id of ids) {
      const entry = this.w.inflight.get(id);
      if (entry && entry.leaseUntil < sent) lapsed.set(id, Math.round(sent - entry.leaseUntil));
    }
    try {
      const held = await this.w.runs.extendLeases(this.w.workerId, ids, this.w.leaseMs);
      for (const [id, lateMs] of lapsed) {
        const entry = this.w.inflight.get(id);
        if (!entry) continue;
        this.w.logger.warn(
          {
            stepRunId: id,
            runId: entry.claim.runId,
            attempt: entry.claim.attempt,
            lateMs,
            leaseMs: this.w.leaseMs,
            kept: held.has(id),
          },
          held.has(id)
            ? 'the lease ran out before it was renewed (event loop blocked or process paused longer than the lease); no other worker had claimed the step, so it is kept'
            : 'the lease ran out before it was renewed (event loop blocked or process paused longer than the lease) and the step was reaped or claimed elsewhere: this attempt is aborted and its commit will be refused (fenced)',
        );
      }
      for (const id of ids) {
        const entry = this.w.inflight.get(id);
        if (entry && held.has(id))
          entry.leaseUntil = Math.max(entry.leaseUntil, sent + this.w.leaseMs);
        if (entry && !held.has(id) && !entry.abort.aborted) {
          entry.abort.abort(
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
          const entry = this.w.inflight.get(id);
          if (entry) entry.dbTrouble = true;
        }
      this.renewalFailures++;
      if (this.renewalFailures === 1 || !transient)
        this.w.logger.warn(
          { err: error },
          'lease renewal failed; will try again (logged again when it works)',
        );
      return;
    }
    if (this.renewalFailures > 0) {
      this.w.logger.info({ failures: this.renewalFailures }, 'lease renewal works again');
      this.renewalFailures = 0;
    }
  }
}
