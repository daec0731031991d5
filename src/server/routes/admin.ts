/**
 * Operations over the API (admin-scoped keys, see ROUTE_SCOPES in auth.ts): API keys,
 * environments and projects, so nothing needs the server stopped.
 *
 * Tenancy: an admin key manages the project its environment belongs to — its keys, its
 * environments, its settings — and may create projects in its organization (each new project
 * comes with an environment and an admin key of its own, shown once). Names of another
 * organization are never visible: they answer 404 like names that do not exist. A project of the
 * same organization is listed but managed only with its own keys (403 names the fix).
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { WeftError } from '../../core/errors.js';
import type {
  ApiKeyRecord,
  ControlStore,
  EnvironmentListing,
  EnvironmentRecord,
  ProjectRecord,
} from '../../store/control-store.js';
import { jsonBody } from '../body.js';
import { ApiError, quoteId } from '../errors.js';
import { errorResponses, jsonContent, requiresKey } from '../openapi.js';
import type { AppEnv, ServerApp, ServerDeps } from '../types.js';
import { cutoverOrganization } from '../../engine/cutover.js';
import { audited } from './audit.js';
import {
  ApiKeyListSchema,
  CreateApiKeyBodySchema,
  CreatedApiKeySchema,
  CreatedProjectSchema,
  CreateEnvironmentBodySchema,
  CreateProjectBodySchema,
  EnvironmentListSchema,
  EnvironmentParamsSchema,
  EnvironmentSchema,
  KeyParamsSchema,
  ListApiKeysQuerySchema,
  OrganizationSchema,
  ProjectListSchema,
  ProjectParamsSchema,
  ProjectSchema,
  RevokedApiKeySchema,
  UpdateEnvironmentBodySchema,
  UpdateOrganizationBodySchema,
  CutoverBodySchema,
  CutoverSchema,
  UpdateProjectBodySchema,
} from './admin-schemas.js';

/** Operations bodies are a few fields: a small limit, whatever the run input limit is. */
const ADMIN_BODY_BYTES = 64 * 1024;
const TAG = ['Operations'];

const body = <T>(schema: T) => ({
  content: { 'application/json': { schema } },
  required: true,
});

const listKeys = createRoute({
  method: 'get',
  path: '/api/v1/keys',
  operationId: 'listApiKeys',
  tags: TAG,
  summary: 'List API keys',
  description:
    "The keys of an environment of the caller's project (default: the caller's), revoked ones included, oldest first. Only prefixes: a key is shown once, when it is created.",
  security: requiresKey,
  request: { query: ListApiKeysQuerySchema },
  responses: {
    200: jsonContent(ApiKeyListSchema, 'The keys.'),
    ...errorResponses(400, 401, 403, 404),
  },
});

const createKey = createRoute({
  method: 'post',
  path: '/api/v1/keys',
  operationId: 'createApiKey',
  tags: TAG,
  summary: 'Create an API key',
  description:
    "A key of an environment of the caller's project, with the given scopes (default `trigger`). The key is in this response only.",
  security: requiresKey,
  middleware: [jsonBody(ADMIN_BODY_BYTES)] as const,
  request: { body: body(CreateApiKeyBodySchema) },
  responses: {
    201: jsonContent(CreatedApiKeySchema, 'The key (shown once).'),
    ...errorResponses(400, 401, 403, 404, 413, 415),
  },
});

const revokeKey = createRoute({
  method: 'post',
  path: '/api/v1/keys/{keyId}/revoke',
  operationId: 'revokeApiKey',
  tags: TAG,
  summary: 'Revoke an API key',
  description:
    "Any key of the caller's project, the caller's own included. Refused from the next request on, by every server process (they drop their caches on a database notification).",
  security: requiresKey,
  request: { params: KeyParamsSchema },
  responses: {
    200: jsonContent(RevokedApiKeySchema, 'The key is revoked.'),
    ...errorResponses(401, 403, 404),
  },
});

const listEnvironments = createRoute({
  method: 'get',
  path: '/api/v1/environments',
  operationId: 'listEnvironments',
  tags: TAG,
  summary: "List the environments of the caller's project",
  security: requiresKey,
  responses: {
    200: jsonContent(EnvironmentListSchema, 'The environments, by name.'),
    ...errorResponses(401, 403),
  },
});

const createEnvironment = createRoute({
  method: 'post',
  path: '/api/v1/environments',
  operationId: 'createEnvironment',
  tags: TAG,
  summary: "Create an environment in the caller's project",
  description:
    'Workers register their workflows into the environment they serve (`weft worker --environment <name>`, `weft dev --environment <name>`); create keys for it with POST /api/v1/keys.',
  security: requiresKey,
  middleware: [jsonBody(ADMIN_BODY_BYTES)] as const,
  request: { body: body(CreateEnvironmentBodySchema) },
  responses: {
    201: jsonContent(EnvironmentSchema, 'The environment.'),
    ...errorResponses(400, 401, 403, 409, 413, 415),
  },
});

const updateEnvironment = createRoute({
  method: 'patch',
  path: '/api/v1/environments/{name}',
  operationId: 'updateEnvironment',
  tags: TAG,
  summary: 'Pause or resume an environment',
  description:
    'A paused environment refuses triggers with 409 `environment_paused` (API, webhooks, schedules, child runs) and its workers claim no step; steps already executing finish, and runs keep their state. Reading, and this route, keep working.',
  security: requiresKey,
  middleware: [jsonBody(ADMIN_BODY_BYTES)] as const,
  request: { params: EnvironmentParamsSchema, body: body(UpdateEnvironmentBodySchema) },
  responses: {
    200: jsonContent(EnvironmentSchema, 'The environment.'),
    ...errorResponses(400, 401, 403, 404, 413, 415),
  },
});

/** A deleted environment or project: what the cleanup of its run data will work on. */
const DeletedTenantSchema = z
  .object({
    name: z.string(),
    deleted: z.literal(true),
    environments: z.array(z.string()).openapi({
      description:
        'Ids of the environments deleted; their run data is removed by cleanup jobs (docs/operations.md).',
    }),
  })
  .openapi('DeletedTenant');

const deleteEnvironment = createRoute({
  method: 'delete',
  path: '/api/v1/environments/{name}',
  operationId: 'deleteEnvironment',
  tags: TAG,
  summary: 'Delete an environment of the caller’s project',
  description:
    'Deletes the environment with its keys, workflows, schedules and webhooks at once, and its run data (runs, steps, events, dataclips, idempotency keys) in the background: a cleanup job that `weft server` and `weft worker` work off in bounded batches (docs/operations.md). Deleted, not archived.',
  security: requiresKey,
  request: { params: EnvironmentParamsSchema },
  responses: {
    200: jsonContent(DeletedTenantSchema, 'Deleted; the run data follows.'),
    ...errorResponses(401, 403, 404),
  },
});

const deleteProject = createRoute({
  method: 'delete',
  path: '/api/v1/projects/{name}',
  operationId: 'deleteProject',
  tags: TAG,
  summary: 'Delete the caller’s project',
  description:
    'Deletes the project and every environment of it (the calling key included), like DELETE /api/v1/environments/{name} for each. A project is deleted with a key of its own.',
  security: requiresKey,
  request: { params: ProjectParamsSchema },
  responses: {
    200: jsonContent(DeletedTenantSchema, 'Deleted; the run data follows.'),
    ...errorResponses(401, 403, 404),
  },
});

const listProjects = createRoute({
  method: 'get',
  path: '/api/v1/projects',
  operationId: 'listProjects',
  tags: TAG,
  summary: "List the projects of the caller's organization",
  security: requiresKey,
  responses: {
    200: jsonContent(ProjectListSchema, 'The projects, by name.'),
    ...errorResponses(401, 403),
  },
});

const createProject = createRoute({
  method: 'post',
  path: '/api/v1/projects',
  operationId: 'createProject',
  tags: TAG,
  summary: "Create a project in the caller's organization",
  description:
    'Creates the project, one environment (default `dev`) and an admin key of that environment, shown once: a project is managed with its own keys.',
  security: requiresKey,
  middleware: [jsonBody(ADMIN_BODY_BYTES)] as const,
  request: { body: body(CreateProjectBodySchema) },
  responses: {
    201: jsonContent(CreatedProjectSchema, 'The project, its environment and its first key.'),
    ...errorResponses(400, 401, 403, 409, 413, 415),
  },
});

const updateProject = createRoute({
  method: 'patch',
  path: '/api/v1/projects/{name}',
  operationId: 'updateProject',
  tags: TAG,
  summary: "Change the caller's project settings",
  description:
    '`saveDataclips` applies to runs started from now on; `paused` pauses every environment of the project (see PATCH /api/v1/environments/{name}). Fields left out keep their value.',
  security: requiresKey,
  middleware: [jsonBody(ADMIN_BODY_BYTES)] as const,
  request: { params: ProjectParamsSchema, body: body(UpdateProjectBodySchema) },
  responses: {
    200: jsonContent(ProjectSchema, 'The project.'),
    ...errorResponses(400, 401, 403, 404, 413, 415),
  },
});

const getOrganization = createRoute({
  method: 'get',
  path: '/api/v1/organization',
  operationId: 'getOrganization',
  tags: TAG,
  summary: "The caller's organization and its flags",
  security: requiresKey,
  responses: {
    200: jsonContent(OrganizationSchema, 'The organization.'),
    ...errorResponses(401, 403),
  },
});

const updateOrganization = createRoute({
  method: 'patch',
  path: '/api/v1/organization',
  operationId: 'updateOrganization',
  tags: TAG,
  summary: "Change the caller's organization flags",
  description:
    '`runs.location`: where new runs of every project of the organization are stored (a configured location tag; null for the default). 422 `invalid_input` for a tag this server does not know.',
  security: requiresKey,
  middleware: [jsonBody(ADMIN_BODY_BYTES)] as const,
  request: { body: body(UpdateOrganizationBodySchema) },
  responses: {
    200: jsonContent(OrganizationSchema, 'The organization.'),
    ...errorResponses(400, 401, 403, 413, 415, 422),
  },
});

const cutover = createRoute({
  method: 'post',
  path: '/api/v1/organization/cutover',
  operationId: 'cutoverOrganization',
  tags: TAG,
  summary: "Mint the caller's organization's new runs into another run location",
  description:
    'Cutover without backfill (docs/operations.md): from the next trigger on, in every server and worker process (a NOTIFY on the control plane reaches them), new runs of every project of the organization are minted into `location`; `null` sends them back to the default location. Existing runs stay where they are, and every relation between runs (child and parent, cancel, rerun lineage) keeps resolving by id. 422 `invalid_input` for a tag this installation does not configure.',
  security: requiresKey,
  middleware: [jsonBody(ADMIN_BODY_BYTES)] as const,
  request: { body: body(CutoverBodySchema) },
  responses: {
    200: jsonContent(CutoverSchema, 'Where new runs go now, and before.'),
    ...errorResponses(400, 401, 403, 413, 415, 422),
  },
});

const presentKey = (k: ApiKeyRecord) => ({
  id: k.id,
  prefix: k.prefix,
  label: k.label,
  scopes: k.scopes,
  environment: k.environment,
  createdAt: k.createdAt,
  revokedAt: k.revokedAt,
});

const presentEnvironment = (e: EnvironmentListing, callerEnvironmentId: string) => ({
  id: e.id,
  name: e.name,
  paused: e.paused,
  projectPaused: e.projectPaused,
  current: e.id === callerEnvironmentId,
  createdAt: e.createdAt,
});

const presentProject = (p: ProjectRecord, callerProjectId: string) => ({
  id: p.id,
  name: p.name,
  saveDataclips: p.saveDataclips,
  retentionDays: p.retentionDays,
  paused: p.paused,
  current: p.id === callerProjectId,
  createdAt: p.createdAt,
});

export function registerAdminRoutes(app: ServerApp, deps: ServerDeps): void {
  const { control } = deps.stores;

  /** The caller's environment, with its project and organization. */
  const caller = async (c: Context<AppEnv>): Promise<EnvironmentRecord> => {
    const env = await control.getEnvironment(c.get('identity').environmentId);
    // The key resolved a moment ago; its environment can only be gone if it was just deleted.
    if (!env)
      throw new ApiError('unauthorized', 'The environment of this API key no longer exists.');
    return env;
  };

  /** An environment of the caller's project by name, or the 404 that lists the names there are. */
  const environmentOf = async (
    env: EnvironmentRecord,
    name: string | undefined,
    ctl: ControlStore = control,
  ): Promise<EnvironmentListing> => {
    const all = await ctl.listEnvironments(env.projectId);
    const found = all.find((e) => e.name === (name ?? env.name));
    if (found) return found;
    throw new WeftError(
      'not_found',
      `Project "${env.projectName}" has no environment ${quoteId(name ?? env.name)}. Its environments: ${all.map((e) => e.name).join(', ')}. Create one with POST /api/v1/environments.`,
      { details: { environment: name, known: all.map((e) => e.name) } },
    );
  };

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

  app.openapi(deleteProject, async (c) => {
    const env = await caller(c);
    const { name } = c.req.valid('param');
    if (name !== env.projectName) {
      const other = await control.findProject(env.organizationId, name);
      if (!other)
        throw new WeftError(
          'not_found',
          `No project ${quoteId(name)} in this organization. GET /api/v1/projects lists them.`,
          { details: { project: name } },
        );
      throw new ApiError(
        'forbidden',
        `This API key belongs to project "${env.projectName}"; project "${name}" is deleted with a key of its own.`,
        { project: name, keyProject: env.projectName },
      );
    }
    const { environments } = await audited(
      c,
      deps,
      'project.delete',
      (b) => b.control.deleteTenant('project', env.projectId),
      () => ({ target: { type: 'project', id: env.projectId }, details: { name } }),
    );
    return c.json({ name, deleted: true as const, environments }, 200);
  });

  app.openapi(listProjects, async (c) => {
    const env = await caller(c);
    const projects = await control.listProjects(env.organizationId);
    return c.json({ data: projects.map((p) => presentProject(p, env.projectId)) }, 200);
  });

  app.openapi(createProject, async (c) => {
    const env = await caller(c);
    const req = c.req.valid('json');
    const settings: { saveDataclips?: boolean; retentionDays?: number | null } = {};
    if (req.saveDataclips !== undefined) settings.saveDataclips = req.saveDataclips;
    if (req.retentionDays !== undefined) settings.retentionDays = req.retentionDays;
    // project, first environment and admin key: all three and the entry, or none
    const { projectId, key } = await audited(
      c,
      deps,
      'project.create',
      async (b) => {
        const projectId = await b.control.createProject(env.organizationId, req.name, settings);
        const environmentId = await b.control.createEnvironment(
          projectId,
          req.environment ?? 'dev',
        );
        const key = await b.control.createApiKey(
          environmentId,
          `created with project ${req.name}`,
          ['admin'],
        );
        return { projectId, key };
      },
      (r) => ({
        target: { type: 'project', id: r.projectId },
        details: { name: req.name, environment: r.key.environment, keyId: r.key.id },
      }),
    );
    const [project] = (await control.listProjects(env.organizationId)).filter(
      (p) => p.id === projectId,
    );
    const [environment] = await control.listEnvironments(projectId);
    const { revokedAt: _revokedAt, ...shown } = presentKey(key);
    return c.json(
      {
        project: presentProject(project!, env.projectId),
        environment: presentEnvironment(environment!, env.id),
        key: { ...shown, key: key.token },
      },
      201,
    );
  });

  app.openapi(getOrganization, async (c) => {
    const env = await caller(c);
    return c.json((await control.getOrganization(env.organizationId))!, 200);
  });

  app.openapi(cutover, async (c) => {
    const env = await caller(c);
    const { location } = c.req.valid('json');
    const result = await audited(
      c,
      deps,
      'organization.update',
      (b) =>
        cutoverOrganization(
          { control: b.control, runs: deps.stores.runs },
          env.organizationId,
          location,
        ),
      (r) => ({
        target: { type: 'organization', id: env.organizationId },
        details: { cutover: r },
      }),
    );
    return c.json(result, 200);
  });

  app.openapi(updateOrganization, async (c) => {
    const env = await caller(c);
    const { flags } = c.req.valid('json');
    const location = flags['runs.location'];
    const known = [...deps.stores.runs.locations.keys()];
    if (typeof location === 'string' && !known.includes(location)) {
      throw new WeftError(
        'invalid_input',
        `\`flags.runs.location\`: "${location}" is not a run location of this installation; it has ${known.map((k) => `"${k}"`).join(', ')}. Use one of those, or null for the default.`,
        { details: { field: 'flags.runs.location', known } },
      );
    }
    // the location flag goes through the cutover, which also records the location history
    await audited(
      c,
      deps,
      'organization.update',
      async (b) => {
        if (location !== undefined)
          await cutoverOrganization(
            { control: b.control, runs: deps.stores.runs },
            env.organizationId,
            location,
          );
      },
      () => ({ target: { type: 'organization', id: env.organizationId }, details: { flags } }),
    );
    return c.json((await control.getOrganization(env.organizationId))!, 200);
  });

  app.openapi(updateProject, async (c) => {
    const env = await caller(c);
    const { name } = c.req.valid('param');
    if (name !== env.projectName) {
      const other = await control.findProject(env.organizationId, name);
      if (!other) {
        throw new WeftError(
          'not_found',
          `No project ${quoteId(name)} in this organization. GET /api/v1/projects lists them.`,
          { details: { project: name } },
        );
      }
      throw new ApiError(
        'forbidden',
        `This API key belongs to project "${env.projectName}"; project "${name}" is managed with a key of its own (POST /api/v1/projects returned one when it was created).`,
        { project: name, keyProject: env.projectName },
      );
    }
    const req = c.req.valid('json');
    const settings: Parameters<typeof control.updateProjectSettings>[1] = {};
    if (req.saveDataclips !== undefined) settings.saveDataclips = req.saveDataclips;
    if (req.retentionDays !== undefined) settings.retentionDays = req.retentionDays;
    if (req.paused !== undefined) settings.paused = req.paused;
    const project = await audited(
      c,
      deps,
      'project.update',
      (b) => b.control.updateProjectSettings(env.projectId, settings),
      () => ({ target: { type: 'project', id: env.projectId }, details: { name, ...settings } }),
    );
    return c.json(presentProject(project!, env.projectId), 200);
  });
}
