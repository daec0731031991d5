/**
 * Schedules as the API, the CLI and code declare them: the request shape, its validation with
 * defaults (nothing written), and create, update and delete, each moving the schedule's next slot.
 * Firing is the Scheduler's (scheduler.ts).
 */
import { checkInputSchema } from '../core/json-schema.js';
import { parseCron } from '../core/cron.js';
import { listWorkflowIds, unknownWorkflow, WeftError } from '../core/errors.js';
import { encodeJson } from '../core/json.js';
import type {
  CatchUpPolicy,
  OverlapPolicy,
  ScheduleInput,
  ScheduleRecord,
  ScheduleSettings,
  ScheduleStore,
} from '../store/schedule-store.js';
import {
  CATCH_UP_POLICIES,
  OVERLAP_POLICIES,
  SCHEDULE_INPUT_MODES,
  scheduleNotFound,
} from '../store/schedule-store.js';
import type { Stores } from '../store/stores.js';

/**
 * How a command makes its one write: by default straight to the schedule store; the API passes a
 * wrapper that makes it in a transaction with its audit entry (src/server/routes/audit.ts). The
 * validation reads before it are made outside that transaction.
 */
export type ScheduleWrite<T> = (write: (schedules: ScheduleStore) => Promise<T>) => Promise<T>;

const directWrite =
  <T>(stores: Stores): ScheduleWrite<T> =>
  (write) =>
    write(stores.schedules);

/**
 * A schedule declared in code, registered (upserted by workflow and name) when the engine starts.
 * Restarting with the same cron expression and time zone keeps the schedule's next slot; a
 * schedule removed from the list is not deleted (use the API or `weft schedules delete`).
 *
 * @example
 * await Engine.start({
 *   stores,
 *   environmentId,
 *   workflows: [report],
 *   schedules: [
 *     {
 *       name: 'nightly',
 *       workflowId: 'report',
 *       cron: '30 1 * * *',
 *       timezone: 'Europe/London',
 *       input: { mode: 'previous_final_state' },
 *       overlap: 'queue',
 *     },
 *   ],
 * });
 */
export interface CodeSchedule {
  /** Unique per workflow; re-registering the same name updates the schedule in place. */
  name: string;
  workflowId: string;
  cron: string;
  /** IANA time zone. Default `UTC`. */
  timezone?: string;
  input?: ScheduleInput;
  countManualRuns?: boolean;
  overlap?: OverlapPolicy;
  catchUp?: CatchUpPolicy;
  catchUpLimit?: number;
  enabled?: boolean;
}

/** What the API, CLI and code give; missing fields take defaults. */
export type ScheduleRequest = Omit<CodeSchedule, 'name'>;

/** The first slot strictly after `now` (null when disabled or never matching again). */
export function firstSlot(settings: ScheduleSettings, now: Date): Date | null {
  if (!settings.enabled) return null;
  return parseCron(settings).next(now);
}

/**
 * Check a schedule request and fill in defaults. Throws `invalid_input` (422) for a cron
 * expression that does not parse, a time zone that does not exist, an input that does not fit
 * its mode or a step the workflow does not have; `unknown_workflow` (404) for a workflow that is
 * not registered in the environment. Nothing is written.
 */
export async function validateSchedule(
  stores: Pick<Stores, 'control'>,
  environmentId: string,
  req: ScheduleRequest,
  where = 'the schedule',
): Promise<ScheduleSettings> {
  const settings: ScheduleSettings = {
    workflowId: req.workflowId,
    cron: req.cron,
    timezone: req.timezone ?? 'UTC',
    input: req.input ?? { mode: 'none' },
    countManualRuns: req.countManualRuns ?? false,
    overlap: req.overlap ?? 'allow',
    catchUp: req.catchUp ?? 'none',
    catchUpLimit: req.catchUpLimit ?? 10,
    enabled: req.enabled ?? true,
  };
  parseCron(settings, where);
  const oneOf = (field: string, value: string, allowed: readonly string[]) => {
    if (!allowed.includes(value))
      throw new WeftError(
        'invalid_input',
        `${field} of ${where} is "${value}"; expected one of ${allowed.join(', ')}.`,
        { details: { field, value, allowed } },
      );
  };
  oneOf('input.mode', settings.input.mode, SCHEDULE_INPUT_MODES);
  oneOf('overlap', settings.overlap, OVERLAP_POLICIES);
  oneOf('catchUp', settings.catchUp, CATCH_UP_POLICIES);
  if (
    !Number.isInteger(settings.catchUpLimit) ||
    settings.catchUpLimit < 1 ||
    settings.catchUpLimit > 1000
  ) {
    throw new WeftError(
      'invalid_input',
      `catchUpLimit of ${where} is ${settings.catchUpLimit}; expected an integer from 1 to 1000.`,
      { details: { field: 'catchUpLimit', value: settings.catchUpLimit } },
    );
  }
  const version = await stores.control.currentVersion(environmentId, settings.workflowId);
  if (!version) {
    const known = (await stores.control.listWorkflows(environmentId)).map((w) => w.id);
    throw unknownWorkflow(
      settings.workflowId,
      `${where} names workflow \`${settings.workflowId}\`, which is not registered in this environment. Registered: ${listWorkflowIds(known)}. Register it first (start a worker that loads it), or fix the id.`,
      known,
    );
  }
  const { mode } = settings.input;
  if (mode === 'static') {
    encodeJson(settings.input.value ?? null, {
      what: `The static input of ${where}`,
      root: 'input.value',
      maxBytes: version.graph.maxPayloadBytes,
      code: 'invalid_input',
    });
    // a static input that the workflow's input schema refuses would fail every slot: refuse it now
    checkInputSchema(settings.workflowId, version, settings.input.value ?? null);
    settings.input = { mode, value: settings.input.value ?? null };
  } else if (mode === 'previous_step_output') {
    const step = settings.input.step;
    const steps = version.graph.nodes.filter((n) => n.scope === undefined).map((n) => n.id);
    if (!step || !steps.includes(step)) {
      throw new WeftError(
        'invalid_input',
        `input.step of ${where} is ${step ? `\`${step}\`` : 'missing'}; mode previous_step_output needs a top-level step of workflow \`${settings.workflowId}\`: ${steps.map((s) => `\`${s}\``).join(', ')}.`,
        { details: { field: 'input.step', step: step ?? null, steps } },
      );
    }
    settings.input = { mode, step };
  } else {
    settings.input = { mode };
  }
  return settings;
}

/** Create a schedule from an API or CLI request. */
export async function createSchedule(
  stores: Stores,
  environmentId: string,
  req: ScheduleRequest,
  now: Date = new Date(),
  writeWith: ScheduleWrite<ScheduleRecord> = directWrite(stores),
): Promise<ScheduleRecord> {
  const settings = await validateSchedule(stores, environmentId, req);
  return writeWith((schedules) =>
    schedules.createSchedule(environmentId, settings, firstSlot(settings, now)),
  );
}

/**
 * Apply a partial update. The next slot is recomputed from `now` when the cron expression, the
 * time zone or `enabled` changes; otherwise it (and a held slot) is kept.
 */
export async function updateSchedule(
  stores: Stores,
  environmentId: string,
  id: string,
  patch: Partial<ScheduleRequest>,
  now: Date = new Date(),
  writeWith: ScheduleWrite<ScheduleRecord> = directWrite(stores),
): Promise<ScheduleRecord> {
  const current = await stores.schedules.getSchedule(environmentId, id);
  if (!current) throw scheduleNotFound(id);
  const merged: ScheduleRequest = {
    workflowId: patch.workflowId ?? current.workflowId,
    cron: patch.cron ?? current.cron,
    timezone: patch.timezone ?? current.timezone,
    input: patch.input ?? current.input,
    countManualRuns: patch.countManualRuns ?? current.countManualRuns,
    overlap: patch.overlap ?? current.overlap,
    catchUp: patch.catchUp ?? current.catchUp,
    catchUpLimit: patch.catchUpLimit ?? current.catchUpLimit,
    enabled: patch.enabled ?? current.enabled,
  };
  const settings = await validateSchedule(stores, environmentId, merged, `schedule ${id}`);
  const timing =
    settings.cron !== current.cron ||
    settings.timezone !== current.timezone ||
    settings.enabled !== current.enabled ||
    settings.workflowId !== current.workflowId;
  const next = timing
    ? { at: firstSlot(settings, now), held: false }
    : {
        at: current.nextSlotAt ? new Date(current.nextSlotAt) : null,
        held: current.nextSlotHeld,
      };
  return writeWith(async (schedules) => {
    const updated = await schedules.updateSchedule(environmentId, id, settings, next);
    if (!updated) throw scheduleNotFound(id);
    return updated;
  });
}

export async function deleteSchedule(
  stores: Stores,
  environmentId: string,
  id: string,
  writeWith: ScheduleWrite<void> = directWrite(stores),
): Promise<void> {
  await writeWith(async (schedules) => {
    if (!(await schedules.deleteSchedule(environmentId, id))) throw scheduleNotFound(id);
  });
}
