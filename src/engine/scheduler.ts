/**
 * The scheduler fires runs of workflows on cron schedules (docs/semantics.md, Cron firing and Cron
 * input). Each engine runs one for its environment, next to the reaper; any number of engines
 * may run it against one database.
 *
 * **Exactly one run per (schedule, slot).** A slot's run is created through `triggerRun` with the
 * idempotency key `schedule:<scheduleId>:<slot ISO>`: concurrent firings of one slot (several
 * scheduler processes, a retry after a crash between creating the run and advancing the schedule)
 * serialize on the run-ops key and create one run. The schedule's `next_slot_at` then moves with a
 * compare-and-set (`update … where next_slot_at = $old`), so a scheduler working from a stale read
 * changes nothing. Clocks may be skewed: a fast clock fires a slot early, a slow one late, but the
 * slot — not the clock — names the run, so no slot fires twice.
 *
 * Failure semantics: if the process dies after creating a slot's run and before advancing, the
 * next tick (here or elsewhere) fires the same slot again and gets the same run back.
 *
 * **Previous-run input is resolved when the run can start.** `previous_final_state` and
 * `previous_step_output` read the latest succeeded run of the workflow. The scheduler creates a
 * slot's run only when no run that could become "previous" is still active (a cron run of the
 * workflow; any run when `countManualRuns`), and resolves the input right then. Until then the
 * slot is *held* (`next_slot_held`) and fires as soon as that run ends — so a run never starts
 * with state older than a run that finished before it. With `overlap: 'allow'` such a schedule
 * therefore behaves like `queue`: its input cannot be known before the previous run ends.
 * Rejected alternative: a `{ $weftPrevious }` marker in the input dataclip, resolved by the worker
 * at the run's first claim. It also resolves at start, but puts a control-plane read and a rewrite
 * of the input dataclip into the claim hot path (inline claims, group commit) for every run, and
 * makes the recorded input of a run differ from what its trigger wrote. The remaining window —
 * between creating the run and a worker claiming it — has no active candidate by construction
 * (except a manual run started in that instant with `countManualRuns`).
 *
 * **Overlap** (the schedule's own runs still active at a slot): `allow` fires anyway; `skip` drops
 * the slot; `queue` holds the slot until they end (the queue holds one slot: slots passing while
 * it waits are coalesced into it); `cancel_previous` cancels them, then fires.
 *
 * **Catch-up** (slots that passed while no scheduler ran). A slot is *missed* when it is more than
 * `missedAfterMs` (default 60 s) old at the tick that sees it. `none` fires no missed slot (an
 * on-time slot still fires); `last` fires only the latest due slot; `all` fires every due slot,
 * oldest first, at most the `catchUpLimit` latest. The schedule then moves to the first slot
 * after now.
 *
 * The DST rule lives in core/cron.ts: a slot in a skipped hour fires once at the next valid
 * instant; a slot in a repeated hour fires once, on its first occurrence.
 */
import { latestSlots, parseCron, slotKey, type CronSchedule } from '../core/cron.js';
import { WeftError } from '../core/errors.js';
import type { ScheduleRecord } from '../store/schedule-store.js';
import type { Stores } from '../store/stores.js';
import type { Logger } from './logger.js';
import { firstSlot, validateSchedule, type CodeSchedule } from './schedule-commands.js';
import { cancelRun } from './run-control.js';
import { MAX_IDEMPOTENCY_TTL_MS, triggerRun } from './trigger.js';

// Declaring schedules lives in schedule-commands.ts; its names stay importable from here.
export {
  createSchedule,
  deleteSchedule,
  firstSlot,
  updateSchedule,
  validateSchedule,
  type CodeSchedule,
  type ScheduleRequest,
} from './schedule-commands.js';

export interface SchedulerOptions {
  /** How often due schedules are looked for. Default 1 s; false: only `tickOnce()` fires. */
  intervalMs?: number | false;
  /** The scheduler's clock (tests inject a controllable one). Default: the system clock. */
  now?: () => Date;
  /** A slot older than this at the tick that sees it is *missed* (catch-up policy). Default 60 s. */
  missedAfterMs?: number;
  /**
   * Fault points for tests: `afterDueRead` runs after a tick read its due schedules and before
   * it fires any (an update committed there must still take effect in that tick).
   */
  faults?: { afterDueRead?: (due: readonly ScheduleRecord[]) => Promise<void> | void };
}

/** What one tick did, for logs and tests. */
export interface TickReport {
  /** Runs created (or found, when another scheduler fired the slot first), per slot. */
  fired: { scheduleId: string; slot: string; runId: string; deduplicated: boolean }[];
  /**
   * Slots dropped by `overlap: 'skip'` or the catch-up policy (missed slots older than the ones
   * the policy could fire are not computed, so not listed).
   */
  skipped: { scheduleId: string; slot: string; reason: 'overlap' | 'missed' }[];
  /** Schedules whose next slot is held back (queue, or a previous-run input). */
  held: string[];
  /** Schedules another scheduler advanced first, or an update changed while this tick ran. */
  lost: string[];
}

const DEFAULT_MISSED_AFTER_MS = 60_000;
/** Most slots of one schedule fired on time in one tick (catch-up `none`). */
const MAX_ON_TIME_SLOTS = 1000;

export class Scheduler {
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  readonly now: () => Date;
  private readonly missedAfterMs: number;

  constructor(
    private readonly stores: Stores,
    private readonly environmentId: string,
    private readonly logger: Logger,
    private readonly options: SchedulerOptions = {},
    /** Called after runs were created (the engine wakes its worker). */
    private readonly onFired: () => void = () => {},
  ) {
    this.now = options.now ?? (() => new Date());
    this.missedAfterMs = options.missedAfterMs ?? DEFAULT_MISSED_AFTER_MS;
  }

  start(): void {
    const interval = this.options.intervalMs ?? 1000;
    if (interval === false) return;
    this.timer = setInterval(() => void this.tickSafely(), interval);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private async tickSafely(): Promise<void> {
    try {
      await this.tickOnce();
    } catch (error) {
      this.logger.error({ err: error }, 'scheduler tick failed; will try again');
    }
  }

  /** Register (upsert by name) schedules declared in code. */
  async registerCodeSchedules(schedules: readonly CodeSchedule[]): Promise<ScheduleRecord[]> {
    const out: ScheduleRecord[] = [];
    for (const s of schedules) {
      const where = `schedule \`${s.name}\` of workflow \`${s.workflowId}\``;
      const settings = await validateSchedule(this.stores, this.environmentId, s, where);
      const next = firstSlot(settings, this.now());
      out.push(
        await this.stores.schedules.upsertCodeSchedule(this.environmentId, s.name, settings, next),
      );
    }
    return out;
  }

  /**
   * Fire every due schedule of the environment once. Not reentrant in one process (an overlapping
   * call returns an empty report); concurrent ticks in several processes are safe.
   */
  async tickOnce(): Promise<TickReport> {
    const report: TickReport = { fired: [], skipped: [], held: [], lost: [] };
    if (this.ticking) return report;
    this.ticking = true;
    try {
      // A paused environment fires nothing: to its schedules the pause is downtime, and on
      // resume their catch-up policy decides what the missed slots get.
      if ((await this.stores.control.getEnvironment(this.environmentId))?.paused) return report;
      const now = this.now();
      const due = await this.stores.schedules.listDueSchedules(this.environmentId, now);
      if (due.length > 0) await this.options.faults?.afterDueRead?.(due);
      for (const schedule of due) {
        // Let requests and claims in between schedules: a tick never holds the event loop for
        // more than one schedule's slot math (bounded by the catch-up limits).
        await new Promise<void>((resolve) => setImmediate(resolve));
        try {
          await this.fireSchedule(schedule, now, report);
        } catch (error) {
          // One broken schedule (its workflow was removed, its input no longer fits) must not
          // stop the others; it is retried next tick.
          this.logger.error(
            { err: error, scheduleId: schedule.id, workflowId: schedule.workflowId },
            'schedule failed to fire; will try again',
          );
        }
      }
      if (report.fired.some((f) => !f.deduplicated)) this.onFired();
      return report;
    } finally {
      this.ticking = false;
    }
  }

  private async fireSchedule(
    schedule: ScheduleRecord,
    now: Date,
    report: TickReport,
  ): Promise<void> {
    const cron = parseCron(schedule, `schedule ${schedule.id}`);
    const from = new Date(schedule.nextSlotAt!);
    const { slots, last } = this.dueSlots(cron, from, now, schedule);
    // Every slot up to now is handled by this tick; the schedule moves to the first one after.
    const fire: Date[] = [];
    if (schedule.nextSlotHeld) {
      // A held slot fires whatever its age; slots that passed while it waited coalesce into it.
      fire.push(from);
    } else if (schedule.catchUp === 'all') {
      fire.push(...slots);
    } else if (schedule.catchUp === 'last') {
      fire.push(last);
    } else {
      fire.push(...slots.filter((s) => now.getTime() - s.getTime() <= this.missedAfterMs));
    }
    for (const s of slots)
      if (!fire.some((f) => f.getTime() === s.getTime()))
        report.skipped.push({ scheduleId: schedule.id, slot: s.toISOString(), reason: 'missed' });

    let fired: Date | null = null;
    for (const slot of fire) {
      // Re-read right before each slot (one primary-key read): a PATCH (disable, a new
      // countManualRuns or overlap) that committed since the due list was read takes effect
      // now, not after this tick. (A run of a disabled schedule was created 3.7 s after the
      // PATCH when ticks were slow.) The window left is this read to the run's insert.
      const current = await this.stores.schedules.getSchedule(this.environmentId, schedule.id);
      if (
        !current ||
        !current.enabled ||
        current.nextSlotAt !== schedule.nextSlotAt ||
        current.updatedAt !== schedule.updatedAt
      ) {
        report.lost.push(schedule.id);
        return;
      }
      const gate = await this.gate(current);
      if (gate === 'wait') {
        // Hold this slot; earlier slots of this tick are done (or deduplicated when refired).
        if (await this.stores.schedules.advanceSlot(schedule.id, from, slot, { fired, held: true }))
          report.held.push(schedule.id);
        else report.lost.push(schedule.id);
        return;
      }
      if (gate === 'skip') {
        report.skipped.push({
          scheduleId: schedule.id,
          slot: slot.toISOString(),
          reason: 'overlap',
        });
        continue;
      }
      const input = await this.resolveInput(current);
      const result = await this.trigger(current, slot, input);
      report.fired.push({
        scheduleId: schedule.id,
        slot: slot.toISOString(),
        runId: result.runId,
        deduplicated: result.deduplicated,
      });
      fired = slot;
    }
    const next = cron.next(now);
    if (!(await this.stores.schedules.advanceSlot(schedule.id, from, next, { fired })))
      report.lost.push(schedule.id);
  }

  /**
   * The due slots from `from` (inclusive) up to `now`, oldest first: only the latest ones the
   * catch-up policy could fire are computed (`all`: catchUpLimit; `last`: one; `none`: those
   * that may still be on time), found backwards from `now` — a per-second schedule a day behind
   * costs as many cron steps as slots kept, not 86,400. `last` is the latest due slot.
   */
  private dueSlots(
    cron: CronSchedule,
    from: Date,
    now: Date,
    schedule: ScheduleRecord,
  ): { slots: Date[]; last: Date } {
    const keep =
      schedule.catchUp === 'all'
        ? schedule.catchUpLimit
        : schedule.catchUp === 'last'
          ? 1
          : MAX_ON_TIME_SLOTS;
    const notBefore =
      schedule.catchUp === 'none'
        ? new Date(Math.max(from.getTime(), now.getTime() - this.missedAfterMs))
        : from;
    const slots = latestSlots(cron, notBefore, now, keep);
    // `from` is due by definition (the stored next slot), even were it not a match any more.
    if (slots.length === 0 || (slots.length < keep && slots[0]!.getTime() > from.getTime()))
      slots.unshift(from);
    return { slots, last: slots[slots.length - 1]! };
  }

  /**
   * Whether a slot can fire now: 'fire', 'skip' (overlap `skip`), or 'wait' (overlap `queue`, or
   * a previous-run input whose candidate run is still active). `cancel_previous` cancels the
   * schedule's active runs here, before firing.
   */
  private async gate(schedule: ScheduleRecord): Promise<'fire' | 'skip' | 'wait'> {
    const active = await this.stores.schedules.activeRunsOfSchedule(
      this.environmentId,
      schedule.workflowId,
      schedule.id,
    );
    if (active.length > 0) {
      if (schedule.overlap === 'skip') return 'skip';
      if (schedule.overlap === 'queue') return 'wait';
      if (schedule.overlap === 'cancel_previous') {
        for (const runId of active) {
          try {
            await cancelRun(
              this.stores,
              this.environmentId,
              runId,
              `canceled by schedule ${schedule.id} (overlap: cancel_previous) to start its next slot`,
            );
          } catch (error) {
            // It ended on its own meanwhile: nothing to cancel.
            if (!(error instanceof WeftError && error.code === 'run_not_active')) throw error;
          }
        }
      }
    }
    if (
      schedule.input.mode === 'previous_final_state' ||
      schedule.input.mode === 'previous_step_output'
    ) {
      const busy = await this.stores.schedules.hasActivePreviousCandidate(
        this.environmentId,
        schedule.workflowId,
        schedule.countManualRuns,
      );
      if (busy) return 'wait';
    }
    return 'fire';
  }

  /**
   * The input of the run about to be created. Previous-run modes read the latest succeeded run
   * now — the gate made sure no candidate is active, so this is the state the run starts from.
   * No previous run (or a previous run without that step's output): `null`.
   */
  private async resolveInput(schedule: ScheduleRecord): Promise<unknown> {
    const { mode } = schedule.input;
    if (mode === 'none') return null;
    if (mode === 'static') return schedule.input.value ?? null;
    const previous = await this.stores.schedules.latestSucceededRun(
      this.environmentId,
      schedule.workflowId,
      schedule.countManualRuns,
    );
    if (!previous) return null;
    if (mode === 'previous_final_state') {
      return previous.finalDataclipId
        ? await this.stores.schedules.dataclipBody(this.environmentId, previous.finalDataclipId)
        : null;
    }
    const step = schedule.input.step!;
    const output = await this.stores.schedules.stepOutput(this.environmentId, previous.runId, step);
    if (!output.found) {
      this.logger.warn(
        { scheduleId: schedule.id, runId: previous.runId, step },
        `schedule ${schedule.id}: step \`${step}\` did not succeed in the previous run ${previous.runId}; the run starts with input null`,
      );
    }
    return output.body;
  }

  private async trigger(
    schedule: ScheduleRecord,
    slot: Date,
    input: unknown,
  ): Promise<{ runId: string; deduplicated: boolean }> {
    try {
      const { run, deduplicated } = await triggerRun(this.stores, {
        environmentId: this.environmentId,
        workflowId: schedule.workflowId,
        input,
        idempotencyKey: slotKey(schedule.id, slot),
        // the key must outlive any scheduler that could still fire this slot from a stale read
        idempotencyTtlMs: MAX_IDEMPOTENCY_TTL_MS,
        trigger: { kind: 'cron', ref: schedule.id },
      });
      return { runId: run.id, deduplicated };
    } catch (error) {
      // Another scheduler fired this slot first with an input it resolved a moment earlier: the
      // slot has its one run, which is what counts.
      if (error instanceof WeftError && error.code === 'idempotency_conflict') {
        const runId = (error.details as { runId?: string } | undefined)?.runId ?? 'unknown';
        return { runId, deduplicated: true };
      }
      throw error;
    }
  }
}
