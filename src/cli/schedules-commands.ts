/**
 * `weft schedules list|create|delete`: clients of `/api/v1/schedules`, so they work the same
 * against `weft dev` and a deployed server. Validation (cron, time zone, workflow, step) is the
 * server's: its 4xx message is printed as is.
 */
import { ApiClient, resolveConnection } from './api-client.js';
import { resolveDataDir } from './local-state.js';
import { CliError, formatTable, formatTime, printJson } from './output.js';

export interface ScheduleClientOptions {
  url?: string;
  apiKey?: string;
  dataDir?: string;
  json?: boolean;
}

interface ApiSchedule {
  id: string;
  workflowId: string;
  name: string | null;
  source: 'api' | 'code';
  cron: string;
  timezone: string;
  input: { mode: string; value?: unknown; step?: string };
  overlap: string;
  catchUp: string;
  enabled: boolean;
  nextSlotAt: string | null;
  lastSlotAt: string | null;
}

function client(options: ScheduleClientOptions): ApiClient {
  return new ApiClient(resolveConnection({ ...options, dataDir: resolveDataDir(options.dataDir) }));
}

export interface CreateScheduleOptions extends ScheduleClientOptions {
  cron: string;
  timezone?: string;
  /** Static input (JSON text). */
  input?: string;
  /** `previous_final_state`, or `previous_step_output` with `--step`. */
  inputMode?: string;
  step?: string;
  countManualRuns?: boolean;
  overlap?: string;
  catchUp?: string;
  catchUpLimit?: string;
  disabled?: boolean;
}

export async function runSchedulesCreate(
  workflowId: string,
  options: CreateScheduleOptions,
): Promise<void> {
  const body: Record<string, unknown> = { workflowId, cron: options.cron };
  if (options.timezone !== undefined) body.timezone = options.timezone;
  if (options.input !== undefined) {
    if (options.inputMode !== undefined && options.inputMode !== 'static') {
      throw new CliError(
        `--input gives a static input, but --input-mode is ${options.inputMode}; use one or the other.`,
        2,
      );
    }
    let value: unknown;
    try {
      value = JSON.parse(options.input);
    } catch (error) {
      throw new CliError(
        `--input must be JSON (found ${JSON.stringify(options.input)}: ${(error as Error).message}); quote strings, e.g. --input '"hello"' or --input '{"a":1}'.`,
        2,
      );
    }
    body.input = { mode: 'static', value };
  } else if (options.inputMode !== undefined) {
    body.input =
      options.step === undefined
        ? { mode: options.inputMode }
        : { mode: options.inputMode, step: options.step };
  }
  if (options.countManualRuns) body.countManualRuns = true;
  if (options.overlap !== undefined) body.overlap = options.overlap;
  if (options.catchUp !== undefined) body.catchUp = options.catchUp;
  if (options.catchUpLimit !== undefined) {
    const n = Number(options.catchUpLimit);
    if (!Number.isInteger(n)) {
      throw new CliError(
        `--catch-up-limit must be an integer from 1 to 1000; found "${options.catchUpLimit}".`,
        2,
      );
    }
    body.catchUpLimit = n;
  }
  if (options.disabled) body.enabled = false;
  const { body: s } = await client(options).post<ApiSchedule>('/schedules', body);
  if (options.json) {
    printJson(s);
    return;
  }
  process.stdout.write(
    `Created schedule ${s.id}: workflow ${s.workflowId} at "${s.cron}" (${s.timezone}), input ${s.input.mode}.\n` +
      `Next run: ${s.nextSlotAt ? `${formatTime(s.nextSlotAt)} UTC` : 'none (disabled)'}.\n`,
  );
}

export async function runSchedulesList(options: ScheduleClientOptions): Promise<void> {
  const { data } = await client(options).get<{ data: ApiSchedule[] }>('/schedules');
  if (options.json) {
    printJson(data);
    return;
  }
  if (data.length === 0) {
    process.stdout.write(
      'No schedules in this environment. Create one with: weft schedules create <workflow> --cron "0 9 * * *"\n',
    );
    return;
  }
  process.stdout.write(
    `${formatTable(
      [
        'id',
        'workflow',
        'cron',
        'timezone',
        'input',
        'overlap',
        'enabled',
        'next (UTC)',
        'last (UTC)',
      ],
      data.map((s) => [
        s.name ? `${s.id} (${s.name})` : s.id,
        s.workflowId,
        s.cron,
        s.timezone,
        s.input.step ? `${s.input.mode}:${s.input.step}` : s.input.mode,
        s.overlap,
        s.enabled ? 'yes' : 'no',
        formatTime(s.nextSlotAt),
        formatTime(s.lastSlotAt),
      ]),
    )}\n`,
  );
}

export async function runSchedulesDelete(
  scheduleId: string,
  options: ScheduleClientOptions,
): Promise<void> {
  await client(options).delete(`/schedules/${encodeURIComponent(scheduleId)}`);
  if (options.json) printJson({ id: scheduleId, deleted: true });
  else process.stdout.write(`Deleted schedule ${scheduleId}; runs it started are kept.\n`);
}
