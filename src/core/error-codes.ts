/**
 * Weft's error contract: every code an error can carry, in one table. For each code:
 * - `status`: the HTTP status the API answers with (src/server/errors.ts reads it from here; there
 *   is no second mapping). A code that only ever fails a step (`terminal`, `loop_limit_exceeded`,
 *   …) has 500: reaching the API would mean a bug, and the server answers `internal` instead.
 * - `retryable`: whether a step attempt that failed with this code is tried again (subject to the
 *   step's `retry.maxAttempts`). A retry must be able to succeed without a change of code or data.
 * - `fix`: one line telling the reader what to do about it (listed per code in the OpenAPI
 *   document's `Error` schema; a message names the specifics).
 *
 * Codes are stable and snake_case: clients match on them. Add codes; never rename one.
 * `WeftErrorCode` is derived from this table, so a code thrown anywhere must be listed here
 * (`new WeftError('typo', …)` does not compile; src/core/errors.test.ts greps the rest).
 */

/** The statuses the API answers errors with (each has a description in the OpenAPI document). */
export type ErrorStatus = 400 | 401 | 403 | 404 | 405 | 409 | 413 | 415 | 422 | 429 | 500 | 503;

export interface ErrorCodeSpec {
  readonly status: ErrorStatus;
  readonly retryable: boolean;
  readonly fix: string;
}

export const ERROR_CODES = {
  // ── the request is malformed or names something that is not there (4xx) ──
  bad_request: {
    status: 400,
    retryable: false,
    fix: 'Send the shape the API documents at /api/docs; the message names each field that does not match.',
  },
  unauthorized: {
    status: 401,
    retryable: false,
    fix: 'Send `Authorization: Bearer <key>` with an active API key (weft keys create).',
  },
  invalid_signature: {
    status: 401,
    retryable: false,
    fix: "Sign the webhook body with the webhook's secret and send it as `x-weft-signature`.",
  },
  forbidden: {
    status: 403,
    retryable: false,
    fix: 'Use a key with the scope the route needs (the message names it), or ask for one.',
  },
  not_found: {
    status: 404,
    retryable: false,
    fix: "Check the id (and that it belongs to the API key's environment); the message says how to list them.",
  },
  unknown_workflow: {
    status: 404,
    // a worker that registers it may start meanwhile
    retryable: true,
    fix: 'Check the workflow id, or start a worker (weft dev / weft worker) that registers the workflow.',
  },
  method_not_allowed: {
    status: 405,
    retryable: false,
    fix: 'Use one of the methods the route lists in `Allow`.',
  },
  idempotency_conflict: {
    status: 409,
    retryable: false,
    fix: 'Reuse an idempotency key only with the same input, or pick a new key.',
  },
  run_canceled: {
    status: 409,
    retryable: false,
    fix: 'The run was canceled; trigger or rerun it to do the work again.',
  },
  run_not_active: {
    status: 409,
    retryable: false,
    fix: 'The run already ended; only queued, running, waiting or paused runs accept this.',
  },
  run_not_paused: {
    status: 409,
    retryable: false,
    fix: 'Only a paused run can be resumed; read its status with GET /api/v1/runs/{id}.',
  },
  version_mismatch: {
    status: 409,
    retryable: false,
    fix: 'Resume on the run’s own version, or on a version with the same steps.',
  },
  dataclips_wiped: {
    status: 409,
    retryable: false,
    fix: 'Pass the input yourself, or rerun from a step whose source output was kept (saveDataclips).',
  },
  run_not_ended: {
    status: 409,
    retryable: false,
    fix: 'Wait for the run to end (or cancel it), then rerun it.',
  },
  waitpoint_not_waiting: {
    status: 409,
    retryable: false,
    fix: 'The token was already completed or timed out, or is not an approval; list the run’s waitpoints.',
  },
  already_exists: {
    status: 409,
    retryable: false,
    fix: 'Pick another name, or use the one that exists.',
  },
  environment_paused: {
    status: 409,
    // a resume makes the same call succeed
    retryable: true,
    fix: 'Resume the environment (weft environments resume <name>) or its project, then try again.',
  },
  payload_too_large: {
    status: 413,
    retryable: false,
    fix: 'Send or return less data (raise the workflow’s maxPayloadBytes, or store large data elsewhere and pass a reference).',
  },
  unsupported_media_type: {
    status: 415,
    retryable: false,
    fix: 'Send the body as JSON with `Content-Type: application/json`.',
  },
  invalid_input: {
    status: 422,
    retryable: false,
    fix: 'Fix the value the message names (what was expected and what was found).',
  },
  invalid_payload: {
    status: 422,
    retryable: false,
    fix: 'Send a payload that matches the approval’s schema (the message lists the mismatches).',
  },
  invalid_cursor: {
    status: 422,
    retryable: false,
    fix: 'Pass back a `nextCursor` exactly as a listing returned it, with the same filters.',
  },
  invalid_workflow: {
    status: 422,
    retryable: false,
    fix: 'Fix the workflow definition as the message says (cycle, dangling edge, bad option).',
  },
  unknown_step: {
    status: 422,
    retryable: false,
    fix: 'Name a step of the workflow version (the message lists them).',
  },
  invalid_output: {
    status: 422,
    retryable: false,
    fix: 'Return plain JSON data from the step (the message names the offending path).',
  },

  // ── a step (or control node) failed; recorded on the attempt and the run, never an API answer ──
  terminal: {
    status: 500,
    retryable: false,
    fix: 'The step threw TerminalError: fix the data or the call it names, then rerun the run.',
  },
  step_timeout: {
    status: 500,
    retryable: true,
    fix: 'Make the step faster, or raise its `timeout` (each retry gets the full timeout).',
  },
  lease_lost: {
    status: 500,
    retryable: true,
    fix: 'The worker stopped renewing its lease (crash, pause, partition); check the worker, the attempt is retried.',
  },
  worker_shutdown: {
    status: 500,
    retryable: true,
    fix: 'The worker was stopped while the step ran past the shutdown grace; the step runs again on a live worker (raise --shutdown-grace for long steps).',
  },
  database_unavailable: {
    status: 503,
    retryable: true,
    fix: 'The database was unreachable; nothing to do once it is back (the attempt is not charged).',
  },
  edge_condition_failed: {
    status: 500,
    retryable: false,
    fix: 'Fix the edge’s `when` function (it threw or did not return a boolean).',
  },
  loop_limit_exceeded: {
    status: 500,
    retryable: false,
    fix: 'The `while` loop hit maxIterations with its condition still true: fix the condition or raise maxIterations.',
  },
  waitpoint_timed_out: {
    status: 500,
    retryable: false,
    fix: 'Complete the approval before its `timeout`, or add a `timeout` (or `failure`) edge to handle it.',
  },
  body_step_failed: {
    status: 500,
    retryable: false,
    fix: 'A step inside the loop or parallel failed (details.stepKey, details.error); fix it, then rerun from that iteration.',
  },
  child_run_failed: {
    status: 500,
    retryable: false,
    fix: 'The sub-workflow’s child run failed or was canceled (details.childRunId); fix it, then rerun the parent.',
  },
  workflow_version_unavailable: {
    status: 500,
    retryable: false,
    fix: 'Run a worker that has this workflow version loaded (same build as the one that triggered it).',
  },

  // ── the deployment, not the request ──
  invalid_config: {
    status: 500,
    retryable: false,
    fix: 'Fix the setting the message names (flag, environment variable or option).',
  },
  // `weft replicate` (docs/analytics.md): its slot is gone, or it was sent a table it does not know
  replication_broken: {
    status: 500,
    retryable: false,
    fix: 'Follow the message: restart `weft replicate` with every location configured, or rebuild the mirror (`weft replicate --rebuild`).',
  },
  // the API key sent more requests than `weft server --rate-limit` allows (per key, per process)
  rate_limited: {
    status: 429,
    retryable: true,
    fix: 'Wait the seconds in `Retry-After`, then retry; spread requests out, or ask for a higher --rate-limit.',
  },
  internal: {
    status: 500,
    retryable: true,
    fix: 'A bug or an unexpected failure: retry; if it persists, report it with the request id or run id.',
  },
  database_ahead: {
    status: 503,
    retryable: false,
    fix: 'Upgrade Weft: the database was migrated by a newer release.',
  },
  not_ready: {
    status: 503,
    retryable: true,
    fix: 'Wait for /readyz to answer 200 (migrations, database, listener), then retry.',
  },
  request_timeout: {
    status: 503,
    retryable: true,
    fix: 'Retry; if it keeps timing out, narrow the request or raise weft server --request-timeout.',
  },
} as const satisfies Record<string, ErrorCodeSpec>;

/** Every error code Weft uses (the keys of `ERROR_CODES`). */
export type WeftErrorCode = keyof typeof ERROR_CODES;

export const ALL_ERROR_CODES = Object.keys(ERROR_CODES) as [WeftErrorCode, ...WeftErrorCode[]];

export function isWeftErrorCode(code: string): code is WeftErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_CODES, code);
}

/** The row of a code. */
export function errorCodeSpec(code: WeftErrorCode): ErrorCodeSpec {
  return ERROR_CODES[code];
}
