/**
 * The HTTP error contract. Every error leaves the server as
 * `{ "error": { "code", "message", "details"? } }`, and the status of a code comes from the one
 * table of codes, `ERROR_CODES` in src/core/error-codes.ts (STYLE.md §6). Codes are stable:
 * clients match on them.
 */
import type { ZodError } from 'zod';
import { ALL_ERROR_CODES, ERROR_CODES, type ErrorStatus } from '../core/error-codes.js';
import { WeftError, type WeftErrorCode } from '../core/errors.js';
import { parseRunScopedId } from '../core/ids.js';

export type { ErrorStatus } from '../core/error-codes.js';

/**
 * Every code the API can answer with. The codes only the HTTP layer produces (content
 * negotiation, routing, readiness, scopes, webhook signatures) live in the same table as the
 * rest (`src/core/error-codes.ts`), so this is the same type as `WeftErrorCode`; the alias stays
 * for clients that imported it.
 */
export type ApiErrorCode = WeftErrorCode;

/** Every code the API can answer with (documented in the OpenAPI `Error` schema). */
export const API_ERROR_CODES: [ApiErrorCode, ...ApiErrorCode[]] = ALL_ERROR_CODES;

/**
 * The status of a code, from the one table (4xx: the caller can fix it; 5xx: we must, and it is
 * logged with a request id). No second mapping lives here.
 */
export function statusForCode(code: ApiErrorCode): ErrorStatus {
  return ERROR_CODES[code].status;
}

/** 5xx codes answered as themselves (the caller should retry later); other 5xx become `internal`. */
const EXPOSED_5XX = new Set<ApiErrorCode>(['not_ready', 'request_timeout', 'database_ahead']);

export interface ErrorBody {
  error: { code: ApiErrorCode; message: string; details?: Record<string, unknown> };
}

/** An error raised by the HTTP layer itself; core/store/engine errors stay `WeftError`s. */
export class ApiError extends Error {
  override readonly name: string = 'ApiError';
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export function errorBody(
  code: ApiErrorCode,
  message: string,
  details?: Record<string, unknown>,
): ErrorBody {
  return details === undefined
    ? { error: { code, message } }
    : { error: { code, message, details } };
}

/**
 * Turn anything thrown while handling a request into a status and an envelope. Errors we do not
 * recognise become `internal` with a message that carries the request id and nothing else: the
 * original message may hold SQL or driver internals, so it goes to the log, not to the client.
 */
export function toErrorResponse(
  error: unknown,
  requestId: string,
): { status: ErrorStatus; body: ErrorBody; unexpected: boolean } {
  if (error instanceof WeftError || error instanceof ApiError) {
    const status = statusForCode(error.code);
    if (status < 500 || EXPOSED_5XX.has(error.code)) {
      return {
        status,
        body: errorBody(error.code, error.message, error.details),
        unexpected: false,
      };
    }
  }
  const httpStatus = hostStatus(error);
  if (httpStatus !== undefined) {
    const mapped = HOST_STATUS_CODES[httpStatus];
    if (mapped)
      return {
        status: statusForCode(mapped.code),
        body: errorBody(mapped.code, mapped.message),
        unexpected: false,
      };
  }
  return {
    status: 500,
    body: errorBody(
      'internal',
      `An unexpected error occurred; it was logged with request id ${requestId}. Retry the request; if it keeps failing, report the request id.`,
      { requestId },
    ),
    unexpected: true,
  };
}

/**
 * Hono and its validators throw `HTTPException`s with a status (415 for a body without a JSON
 * content type, 400 for a body they could not parse). The body middleware answers those cases
 * first with a better message; this keeps the envelope if one slips through.
 */
const HOST_STATUS_CODES: Partial<Record<number, { code: ApiErrorCode; message: string }>> = {
  400: {
    code: 'bad_request',
    message: 'The request is malformed; see /api/docs for the expected shape.',
  },
  413: { code: 'payload_too_large', message: 'The request body is too large.' },
  415: {
    code: 'unsupported_media_type',
    message: 'The request body must be JSON: send it with `Content-Type: application/json`.',
  },
};

function hostStatus(error: unknown): number | undefined {
  if (
    error instanceof Error &&
    'status' in error &&
    typeof error.status === 'number' &&
    'getResponse' in error
  ) {
    return error.status;
  }
  return undefined;
}

type Issue = ZodError['issues'][number];

const describePath = (path: Issue['path']): string =>
  path.length === 0
    ? '(root)'
    : path
        .map((p) => (typeof p === 'number' ? `[${p}]` : String(p)))
        .join('.')
        .replace(/\.\[/g, '[');

/** Marks zod issues raised by `dbText()` (db-text.ts): answered with 422, not 400. */
export const DB_TEXT_ISSUE = 'weft_database_text';

const isDatabaseTextIssue = (issue: Issue): boolean =>
  issue.code === 'custom' &&
  (issue.params as { weft?: string } | undefined)?.weft === DB_TEXT_ISSUE;

/**
 * A schema violation as a 400 `bad_request` — or a 422 `invalid_input` when a string is well
 * typed but cannot be stored (NUL, lone surrogate: db-text.ts). The message names every problem
 * (where, what was expected) and the fix; `details.issues` carries the same in machine-readable
 * form.
 */
export function validationError(where: 'body' | 'query' | 'path', error: ZodError): ApiError {
  const issues = error.issues.map((issue) => {
    const keys = issue.code === 'unrecognized_keys' ? issue.keys : undefined;
    return {
      path: describePath(issue.path),
      code: issue.code,
      message: keys
        ? `unknown field${keys.length > 1 ? 's' : ''} ${keys.map((k) => `\`${k}\``).join(', ')}`
        : issue.message,
    };
  });
  const listed = issues
    .slice(0, 5)
    .map((i) => (i.path === '(root)' ? i.message : `\`${i.path}\`: ${i.message}`))
    .join('; ');
  const more = issues.length > 5 ? `; and ${issues.length - 5} more` : '';
  const label = where === 'body' ? 'request body' : where === 'query' ? 'query string' : 'path';
  if (error.issues.some(isDatabaseTextIssue))
    return new ApiError(
      'invalid_input',
      `The ${label} has text the database cannot store: ${listed}${more}.`,
      { where, issues },
    );
  return new ApiError(
    'bad_request',
    `The ${label} does not match the API: ${listed}${more}. See /api/docs for the expected shape.`,
    { where, issues },
  );
}

/** An id taken from the URL, safe to put in a message whatever it contains. */
export function quoteId(id: string): string {
  return JSON.stringify(id.length > 120 ? `${id.slice(0, 120)}…` : id);
}

/** Malformed ids, and ids of other kinds (`dc_…`), cannot name a run: answered without a query. */
export function isRunId(id: string): boolean {
  return parseRunScopedId(id)?.prefix === 'run';
}

/** The one 404 for a run this API key cannot see (another environment's runs look the same). */
export function runNotFound(runId: string): WeftError {
  return new WeftError(
    'not_found',
    `Run ${quoteId(runId)} does not exist in the environment of this API key. Run ids look like run_a0…; list runs with GET /api/v1/runs.`,
    { details: { runId } },
  );
}
