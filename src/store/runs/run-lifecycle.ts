/**
 * Run lifecycle by an operator: cancel a run (and, in turn, the child runs it waits on, wherever
 * they live) and resume a paused one with new attempt budgets.
 */
import type { RunStatus } from '../rows.js';
import type { RunResources } from './resources.js';
import { CHANNELS } from '../channels.js';
import { sqlErrorCode } from '../executor.js';

/** PostgreSQL's deadlock_detected. */
const DEADLOCK_DETECTED = '40P01';

/** A run that failed cancels the child runs it was waiting on, like a canceled run does. */
export type FailedWithChildren = { status: string; runId?: string; children?: string[] };

export class RunLifecycle {
  constructor(private readonly r: RunResources) {}

  /**
   * Cancel a run and, in turn, the child runs it waits on (wherever they live). Returns
   * 'not_found', 'not_active' (already ended, with its status) or 'canceled'.
   */
  async cancelRun(
    environmentId: string,
    runId: string,
    reason: string,
  ): Promise<{ status: 'not_found' | 'not_active' | 'canceled'; runStatus?: RunStatus }> {
    const loc = this.r.locationOf(runId);
    if (!loc) return { status: 'not_found' };
    const rows = await loc.db
      .query<{
        r: {
          status: 'not_found' | 'not_active' | 'canceled';
          runStatus?: RunStatus;
          children?: string[];
        };
      }>(`select ${loc.schema}.cancel_run($1, $2, $3) as r`, [runId, environmentId, reason])
      .catch(
        // cancel_run locks attempts before step runs, the reverse of a claim: a cancel racing a
        // claim of the same run can be chosen as a deadlock victim. It is one statement, rolled
        // back whole, so trying it again is safe.
        async (error: unknown) => {
          if (sqlErrorCode(error) !== DEADLOCK_DETECTED) throw error;
          await new Promise((resolve) => setTimeout(resolve, 20));
          return loc.db.query<{
            r: {
              status: 'not_found' | 'not_active' | 'canceled';
              runStatus?: RunStatus;
              children?: string[];
            };
          }>(`select ${loc.schema}.cancel_run($1, $2, $3) as r`, [runId, environmentId, reason]);
        },
      );
    const r = rows.rows[0]!.r;
    this.r.signalWoken(loc, r);
    if (r.status === 'canceled') {
      // workers abort the attempts' ctx.signal at once (after the commit, like every signal)
      this.r.signals.send(loc.db, CHANNELS.cancel, runId);
      this.r.signalRunEnd(runId, 'canceled');
    }
    for (const child of r.children ?? [])
      await this.cancelRun(environmentId, child, `parent run ${runId} was canceled`);
    return r.runStatus ? { status: r.status, runStatus: r.runStatus } : { status: r.status };
  }

  async resumeRun(
    environmentId: string,
    runId: string,
    options: { versionId?: string; budgets: Record<string, number> },
  ): Promise<{
    status: 'not_found' | 'not_paused' | 'resumed';
    runStatus?: RunStatus;
    steps?: string[];
  }> {
    const loc = this.r.locationOf(runId);
    if (!loc) return { status: 'not_found' };
    const rows = await loc.db.query<{
      r: {
        status: 'not_found' | 'not_paused' | 'resumed';
        runStatus?: RunStatus;
        steps?: string[];
      };
    }>(`select ${loc.schema}.resume_run($1, $2, $3, $4::jsonb) as r`, [
      runId,
      environmentId,
      options.versionId ?? null,
      JSON.stringify(options.budgets),
    ]);
    this.r.signalWoken(loc, rows.rows[0]!.r);
    const { wake: _wake, ...r } = rows.rows[0]!.r as (typeof rows.rows)[0]['r'] & {
      wake?: unknown;
    };
    return r;
  }

  /** Cancel the child runs a run that failed was waiting on. */
  async cancelChildren(environmentId: string, result: FailedWithChildren): Promise<void> {
    for (const child of result.children ?? []) {
      await this.cancelRun(environmentId, child, `parent run ${result.runId} failed`);
    }
  }
}
