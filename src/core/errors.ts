/**
 * Weft has two error classes. `WeftError` carries a stable snake_case `code` that the HTTP layer
 * maps to a status in one place (`src/server/errors.ts`); `TerminalError` is thrown by step code
 * for failures that must not be retried.
 */

/** Stable error codes. Add new ones; never rename one (clients match on them). */
export type WeftErrorCode =
  | 'invalid_workflow'
  | 'invalid_input'
  | 'invalid_output'
  | 'payload_too_large'
  | 'not_found'
  | 'unauthorized'
  | 'idempotency_conflict'
  | 'unknown_workflow'
  | 'unknown_step'
  | 'dataclips_wiped'
  | 'run_not_ended'
  | 'edge_condition_failed'
  | 'waitpoint_not_waiting'
  | 'invalid_payload'
  | 'run_not_active'
  | 'run_not_paused'
  | 'version_mismatch'
  | 'step_timeout'
  | 'lease_lost'
  | 'run_canceled'
  | 'workflow_version_unavailable'
  | 'database_ahead'
  | 'invalid_cursor'
  | 'invalid_config'
  | 'bad_request'
  // a name that must be unique is taken (a project, an environment)
  | 'already_exists'
  // the environment (or its project) is paused: no trigger is accepted until it is resumed
  | 'environment_paused'
  | 'internal';

export class WeftError extends Error {
  override readonly name: string = 'WeftError';
  readonly code: WeftErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: WeftErrorCode,
    message: string,
    options: { details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details;
  }
}

/**
 * Throw from step code for a failure that retrying cannot fix (bad data, a 4xx from an API).
 * The attempt fails and no further attempt is made; the step follows its `failure` edges or
 * fails the run.
 *
 * @example
 * if (!user.email) throw new TerminalError(`user ${user.id} has no email address`);
 */
export class TerminalError extends Error {
  override readonly name: string = 'TerminalError';
  readonly code: string;
  constructor(message: string, options: { code?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = options.code ?? 'terminal';
  }
}

/** What a failed attempt records: plain JSON, safe to show in the API and dashboard. */
export interface StepErrorInfo {
  name: string;
  message: string;
  code?: string;
  terminal: boolean;
  stack?: string;
}

export function describeError(error: unknown): StepErrorInfo {
  if (error instanceof Error) {
    const code =
      'code' in error && typeof (error as { code: unknown }).code === 'string'
        ? (error as { code: string }).code
        : undefined;
    const info: StepErrorInfo = {
      name: error.name,
      message: error.message,
      terminal: error instanceof TerminalError || isNonRetryableWeftError(error),
    };
    if (code !== undefined) info.code = code;
    if (error.stack !== undefined) info.stack = error.stack.split('\n').slice(0, 12).join('\n');
    return info;
  }
  return { name: 'NonError', message: safeString(error), terminal: false };
}

function isNonRetryableWeftError(error: Error): boolean {
  return (
    error instanceof WeftError &&
    (error.code === 'invalid_output' ||
      error.code === 'payload_too_large' ||
      error.code === 'edge_condition_failed')
  );
}

function safeString(value: unknown): string {
  try {
    return typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  } catch {
    return String(value);
  }
}
