/** API keys of the caller's project: list (prefixes only), create (shown once), revoke. */
import { WeftError } from '../../core/errors.js';
import { jsonBody } from '../body.js';
import { quoteId } from '../errors.js';
import { errorResponses, jsonContent } from '../openapi.js';
import type { ServerApp } from '../types.js';
import {
  ADMIN_BODY_BYTES,
  adminBody,
  adminRoute,
  presentKey,
  type AdminContext,
} from './admin-shared.js';
import { audited } from './audit.js';
import {
  ApiKeyListSchema,
  CreateApiKeyBodySchema,
  CreatedApiKeySchema,
  KeyParamsSchema,
  ListApiKeysQuerySchema,
  RevokedApiKeySchema,
} from './admin-schemas.js';

const listKeys = adminRoute({
  method: 'get',
  path: '/api/v1/keys',
  operationId: 'listApiKeys',
  summary: 'List API keys',
  description:
    "The keys of an environment of the caller's project (default: the caller's), revoked ones included, oldest first. Only prefixes: a key is shown once, when it is created.",
  request: { query: ListApiKeysQuerySchema },
  responses: {
    200: jsonContent(ApiKeyListSchema, 'The keys.'),
    ...errorResponses(400, 401, 403, 404),
  },
});

const createKey = adminRoute({
  method: 'post',
  path: '/api/v1/keys',
  operationId: 'createApiKey',
  summary: 'Create an API key',
  description:
    "A key of an environment of the caller's project, with the given scopes (default `trigger`). The key is in this response only.",
  middleware: [jsonBody(ADMIN_BODY_BYTES)] as const,
  request: { body: adminBody(CreateApiKeyBodySchema) },
  responses: {
    201: jsonContent(CreatedApiKeySchema, 'The key (shown once).'),
    ...errorResponses(400, 401, 403, 404, 413, 415),
  },
});

const revokeKey = adminRoute({
  method: 'post',
  path: '/api/v1/keys/{keyId}/revoke',
  operationId: 'revokeApiKey',
  summary: 'Revoke an API key',
  description:
    "Any key of the caller's project, the caller's own included. Refused from the next request on, by every server process (they drop their caches on a database notification).",
  request: { params: KeyParamsSchema },
  responses: {
    200: jsonContent(RevokedApiKeySchema, 'The key is revoked.'),
    ...errorResponses(401, 403, 404),
  },
});

export function registerAdminKeyRoutes(app: ServerApp, admin: AdminContext): void {
  const { control, deps, caller, environmentOf } = admin;

  app.openapi(listKeys, async (c) => {
    const env = await caller(c);
    const target = await environmentOf(env, c.req.valid('query').environment);
    const keys = await control.listApiKeys(target.id);
    return c.json({ data: keys.map(presentKey) }, 200);
  });

  app.openapi(createKey, async (c) => {
    const env = await caller(c);
    const req = c.req.valid('json');
    const target = await environmentOf(env, req.environment);
    const key = await audited(
      c,
      deps,
      'key.create',
      (b) => b.control.createApiKey(target.id, req.label, req.scopes ?? ['trigger']),
      (k) => ({
        target: { type: 'key', id: k.id },
        details: { environment: target.name, scopes: k.scopes, label: k.label },
      }),
    );
    const { revokedAt: _revokedAt, ...shown } = presentKey(key);
    return c.json({ ...shown, key: key.token }, 201);
  });

  app.openapi(revokeKey, async (c) => {
    const env = await caller(c);
    const { keyId } = c.req.valid('param');
    await audited(
      c,
      deps,
      'key.revoke',
      async (b) => {
        if (!(await b.control.revokeApiKey(keyId, { projectId: env.projectId })))
          throw new WeftError(
            'not_found',
            `No active API key ${quoteId(keyId)} in project "${env.projectName}" (unknown, already revoked, or of another project). GET /api/v1/keys lists the keys.`,
            { details: { keyId } },
          );
      },
      () => ({ target: { type: 'key', id: keyId } }),
    );
    return c.json({ id: keyId, revoked: true as const }, 200);
  });
}
