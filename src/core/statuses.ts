/**
 * The run statuses a run never leaves: written once here for TypeScript, and once for SQL as
 * `{{schema}}.run_ended(status)` (src/store/sql/location/run_ended.sql), whose list the migrator
 * renders from this array (`{{ended_run_statuses}}`), so the two cannot drift.
 */
export const ENDED_RUN_STATUSES = ['succeeded', 'failed', 'canceled'] as const;

export type EndedRunStatus = (typeof ENDED_RUN_STATUSES)[number];

const ENDED: ReadonlySet<string> = new Set(ENDED_RUN_STATUSES);

/** Whether a run in this status has ended (succeeded, failed or canceled): it never changes again. */
export function isRunEnded(status: string): status is EndedRunStatus {
  return ENDED.has(status);
}
