/**
 * Weft's error classes. `WeftError` carries a stable snake_case `code` from the one table of codes
 * (`error-codes.ts`: HTTP status, retryable flag, fix); the HTTP layer reads the status from that
 * table (`src/server/errors.ts`). `TerminalError` is the `WeftError` step code throws for a failure
 * that must not be retried (code `terminal`).
 */
import { ERROR_CODES, type ErrorCodeSpec, type WeftErrorCode } from './error-codes.js';

export {
  ALL_ERROR_CODES,
  ERROR_CODES,
  type ErrorCodeSpec,
  type WeftErrorCode,
} from './error-codes.js';

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
 * fails the run. It is a `WeftError` with code `terminal`; an `errorCode` of your own (say
 * `card_declined`) is what the attempt and the run record as their `code` instead.
 *
 * @example
 * if (!user.email) throw new TerminalError(`user ${user.id} has no email address`);
 * throw new TerminalError(response.statusText, { code: 'card_declined', cause: error });
 */
export class TerminalError extends WeftError {
  override readonly name: string = 'TerminalError';
  /** The caller's own code (`options.code`), recorded in place of `terminal` when given. */
  readonly errorCode: string | undefined;
  constructor(
    message: string,
    options: { code?: string; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    const rest: { cause?: unknown; details?: Record<string, unknown> } = {};
    if (options.cause !== undefined) rest.cause = options.cause;
    if (options.details !== undefined) rest.details = options.details;
    super('terminal', message, rest);
    this.errorCode = options.code;
  }
}

/**
 * The one error for a workflow id that names no registered workflow (or one without a current
 * version), on every route and in the engine: 404 `unknown_workflow` with `details.workflowId`,
 * and `details.known` (the registered ids) when the caller may see them. The message is the
 * caller's: it names the id, where it came from, the registered ids and the fix.
 */
export function unknownWorkflow(
  workflowId: string,
  message: string,
  known?: readonly string[],
): WeftError {
  const details: Record<string, unknown> = { workflowId };
  if (known !== undefined) details.known = [...known];
  return new WeftError('unknown_workflow', message, { details });
}

/** A list of registered workflow ids for a message: `a`, `b` (or none). */
export function listWorkflowIds(ids: readonly string[]): string {
  return ids.map((id) => `\`${id}\``).join(', ') || 'none';
}

/** What a failed attempt records: plain JSON, safe to show in the API and dashboard. */
export interface StepErrorInfo {
  name: string;
  message: string;
  code?: string;
  terminal: boolean;
  stack?: string;
}

/**
 * The record of a failed attempt. `terminal` (never retried) holds for a `TerminalError` and for a
 * `WeftError` whose code the table marks not retryable (bad output, a loop past its bound, …).
 */
export function describeError(error: unknown): StepErrorInfo {
  if (error instanceof Error) {
    const code =
      error instanceof TerminalError && error.errorCode !== undefined
        ? error.errorCode
        : 'code' in error && typeof (error as { code: unknown }).code === 'string'
          ? (error as { code: string }).code
          : undefined;
    const info: StepErrorInfo = {
      name: error.name,
      message: error.message,
      terminal: error instanceof WeftError && !isRetryable(error.code),
    };
    if (code !== undefined) info.code = code;
    if (error.stack !== undefined) info.stack = error.stack.split('\n').slice(0, 12).join('\n');
    return info;
  }
  return { name: 'NonError', message: safeString(error), terminal: false };
}

/** Whether a step attempt that failed with this code is tried again (ERROR_CODES). */
export function isRetryable(code: WeftErrorCode): boolean {
  // a code outside the table can only come from a cast; treat it like `internal`
  return (ERROR_CODES as Record<string, ErrorCodeSpec | undefined>)[code]?.retryable ?? true;
}

function safeString(value: unknown): string {
  try {
    return typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  } catch {
    return String(value);
  }
}
