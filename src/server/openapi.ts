/**
 * Helpers for route definitions and the OpenAPI 3.1 document they generate.
 */
import type { ZodType } from 'zod';
import type { ErrorStatus } from './errors.js';
import { ErrorSchema } from './schemas.js';
import type { ServerApp } from './types.js';

export const BEARER_AUTH = 'bearerAuth';

/** `security` for a route that needs an API key. */
export const requiresKey = [{ [BEARER_AUTH]: [] }];

export function jsonContent<T extends ZodType>(schema: T, description: string) {
  return { description, content: { 'application/json': { schema } } };
}

const ERROR_DESCRIPTIONS: Record<ErrorStatus, string> = {
  400: 'Malformed request: not JSON, unknown fields, or values of the wrong type (`bad_request`).',
  401: 'Missing, malformed, unknown or revoked API key (`unauthorized`).',
  403: 'The API key lacks the scope this route needs (`forbidden`); the message names both.',
  404: 'Not found in the environment of the API key (also for ids of other environments).',
  405: 'The path exists but not with this method (`method_not_allowed`).',
  409: 'Conflict: the idempotency key was used with a different input (`idempotency_conflict`).',
  413: 'The body, or the run input, is over the size limit (`payload_too_large`); nothing was written.',
  415: 'The body is not sent as `application/json` (`unsupported_media_type`).',
  422: 'Valid JSON that cannot be accepted: an input that is not storable JSON (`invalid_input`), an invalid cursor (`invalid_cursor`).',
  429: 'Too many requests for this API key (`rate_limited`); retry after `Retry-After` seconds.',
  500: 'Unexpected error (`internal`); logged with the request id given in `details`.',
  503: 'Not ready (`not_ready`).',
};

/** The error responses of a route, all with the `Error` envelope. */
export function errorResponses<S extends ErrorStatus>(...statuses: S[]) {
  return Object.fromEntries(
    statuses.map((s) => [s, jsonContent(ErrorSchema, ERROR_DESCRIPTIONS[s])]),
  ) as Record<S, ReturnType<typeof jsonContent<typeof ErrorSchema>>>;
}

export function registerSecurityScheme(app: ServerApp): void {
  app.openAPIRegistry.registerComponent('securitySchemes', BEARER_AUTH, {
    type: 'http',
    scheme: 'bearer',
    description:
      'An API key of one environment: `Authorization: Bearer weft_<environment>_<random>`. It sees only that environment; ids of others answer 404.',
  });
}

/** The document's header; the paths and components come from the registered routes. */
export const DOCUMENT_INFO: Parameters<ServerApp['getOpenAPI31Document']>[0] = {
  openapi: '3.1.0',
  info: {
    title: 'Weft API',
    version: '1.0.0',
    description:
      'Trigger and inspect durable workflow runs. Errors are `{ "error": { "code", "message", "details"? } }`; match on `code`. Every response carries `X-Request-Id`.',
  },
  tags: [
    {
      name: 'Workflows',
      description: 'Workflows registered by workers, their graphs and versions.',
    },
    { name: 'Runs', description: 'Start runs and follow their steps.' },
    { name: 'Dataclips', description: 'Persisted JSON values: inputs, outputs, final states.' },
    { name: 'Health', description: 'Liveness and readiness probes (no API key).' },
    {
      name: 'Operations',
      description:
        "API keys, environments and projects of the caller's project (admin-scoped keys). Each route's `security` names the key scope it needs: `read`, `trigger` or `admin`.",
    },
  ],
};
