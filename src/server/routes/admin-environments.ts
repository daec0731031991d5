/**
 * Environments of the caller's project: list, create, pause or resume, delete (its run data goes
 * in the background, by cleanup jobs).
 */
import { jsonBody } from '../body.js';
import { errorResponses, jsonContent } from '../openapi.js';
import type { ServerApp } from '../types.js';
import {
  ADMIN_BODY_BYTES,
  adminBody,
  adminRoute,
  DeletedTenantSchema,
  presentEnvironment,
  type AdminContext,
} from './admin-shared.js';
import { audited } from './audit.js';
import {
  CreateEnvironmentBodySchema,
  EnvironmentListSchema,
  EnvironmentParamsSchema,
  EnvironmentSchema,
  UpdateEnvironmentBodySchema,
} from './admin-schemas.js';

const listEnvironments = adminRoute({
  method: 'get',
  path: '/api/v1/environments',
  operationId: 'listEnvironments',
  summary: "List the environments of the caller's project",
  responses: {
    200: jsonContent(EnvironmentListSchema, 'The environments, by name.'),
    ...errorResponses(401, 403),
  },
});

const createEnvironment = adminRoute({
  method: 'post',
  path: '/api/v1/environments',
  operationId: 'createEnvironment',
  summary: "Create an environment in the caller's project",
  description:
    'Workers register their workflows into the environment they serve (`weft worker --environment <name>`, `weft dev --environment <name>`); create keys for it with POST /api/v1/keys.',
  middleware: [jsonBody(ADMIN_BODY_BYTES)] as const,
  request: { body: adminBody(CreateEnvironmentBodySchema) },
  responses: {
    201: jsonContent(EnvironmentSchema, 'The environment.'),
    ...errorResponses(400, 401, 403, 409, 413, 415),
  },
});

const updateEnvironment = adminRoute({
  method: 'patch',
  path: '/api/v1/environments/{name}',
  operationId: 'updateEnvironment',
  summary: 'Pause or resume an environment',
  description:
    'A paused environment refuses triggers with 409 `environment_paused` (API, webhooks, schedules, child runs) and its workers claim no step; steps already executing finish, and runs keep their state. Reading, and this route, keep working.',
  middleware: [jsonBody(ADMIN_BODY_BYTES)] as const,
  request: { params: EnvironmentParamsSchema, body: adminBody(UpdateEnvironmentBodySchema) },
  responses: {
    200: jsonContent(EnvironmentSchema, 'The environment.'),
    ...errorResponses(400, 401, 403, 404, 413, 415),
  },
});

const deleteEnvironment = adminRoute({
  method: 'delete',
  path: '/api/v1/environments/{name}',
  operationId: 'deleteEnvironment',
  summary: 'Delete an environment of the caller’s project',
  description:
    'Deletes the environment with its keys, workflows, schedules and webhooks at once, and its run data (runs, steps, events, dataclips, idempotency keys) in the background: a cleanup job that `weft server` and `weft worker` work off in bounded batches (docs/operations.md). Deleted, not archived.',
  request: { params: EnvironmentParamsSchema },
  responses: {
    200: jsonContent(DeletedTenantSchema, 'Deleted; the run data follows.'),
    ...errorResponses(401, 403, 404),
  },
});

export function registerAdminEnvironmentRoutes(app: ServerApp, admin: AdminContext): void {
  const { control, deps, caller, environmentOf } = admin;

  app.openapi(listEnvironments, async (c) => {
    const env = await caller(c);
    const all = await control.listEnvironments(env.projectId);
    return c.json({ data: all.map((e) => presentEnvironment(e, env.id)) }, 200);
  });

  app.openapi(createEnvironment, async (c) => {
    const env = await caller(c);
    const { name } = c.req.valid('json');
    const created = await audited(
      c,
      deps,
      'environment.create',
      async (b) => {
        await b.control.createEnvironment(env.projectId, name);
        return environmentOf(env, name, b.control);
      },
      (e) => ({ target: { type: 'environment', id: e.id }, details: { name } }),
    );
    return c.json(presentEnvironment(created, env.id), 201);
  });

  app.openapi(updateEnvironment, async (c) => {
    const env = await caller(c);
    const { name } = c.req.valid('param');
    const { paused } = c.req.valid('json');
    const updated = await audited(
      c,
      deps,
      'environment.update',
      async (b) => {
        const e = await b.control.setEnvironmentPaused(env.projectId, name, paused);
        // none: the 404 with the known names (nothing changed, no entry)
        return e ?? (await environmentOf(env, name, b.control));
      },
      (e) => ({ target: { type: 'environment', id: e.id }, details: { name, paused } }),
    );
    return c.json(presentEnvironment(updated, env.id), 200);
  });

  app.openapi(deleteEnvironment, async (c) => {
    const env = await caller(c);
    const { name } = c.req.valid('param');
    const target = await environmentOf(env, name); // the 404 names the known ones
    // the entry names the calling key, which may be among what goes: it keeps its prefix and label
    const { environments } = await audited(
      c,
      deps,
      'environment.delete',
      (b) => b.control.deleteTenant('environment', target.id),
      () => ({ target: { type: 'environment', id: target.id }, details: { name } }),
    );
    return c.json({ name, deleted: true as const, environments }, 200);
  });
}
