/**
 * Projects: list and create in the caller's organization (a new project comes with an environment
 * and an admin key of its own); change or delete only the caller's own project.
 */
import { WeftError } from '../../core/errors.js';
import type { EnvironmentRecord } from '../../store/control-store.js';
import { jsonBody } from '../body.js';
import { ApiError, quoteId } from '../errors.js';
import { errorResponses, jsonContent } from '../openapi.js';
import type { ServerApp } from '../types.js';
import {
  ADMIN_BODY_BYTES,
  adminBody,
  adminRoute,
  DeletedTenantSchema,
  presentEnvironment,
  presentKey,
  presentProject,
  type AdminContext,
} from './admin-shared.js';
import { audited } from './audit.js';
import {
  CreatedProjectSchema,
  CreateProjectBodySchema,
  ProjectListSchema,
  ProjectParamsSchema,
  ProjectSchema,
  UpdateProjectBodySchema,
} from './admin-schemas.js';

const deleteProject = adminRoute({
  method: 'delete',
  path: '/api/v1/projects/{name}',
  operationId: 'deleteProject',
  summary: 'Delete the caller’s project',
  description:
    'Deletes the project and every environment of it (the calling key included), like DELETE /api/v1/environments/{name} for each. A project is deleted with a key of its own.',
  request: { params: ProjectParamsSchema },
  responses: {
    200: jsonContent(DeletedTenantSchema, 'Deleted; the run data follows.'),
    ...errorResponses(401, 403, 404),
  },
});

const listProjects = adminRoute({
  method: 'get',
  path: '/api/v1/projects',
  operationId: 'listProjects',
  summary: "List the projects of the caller's organization",
  responses: {
    200: jsonContent(ProjectListSchema, 'The projects, by name.'),
    ...errorResponses(401, 403),
  },
});

const createProject = adminRoute({
  method: 'post',
  path: '/api/v1/projects',
  operationId: 'createProject',
  summary: "Create a project in the caller's organization",
  description:
    'Creates the project, one environment (default `dev`) and an admin key of that environment, shown once: a project is managed with its own keys.',
  middleware: [jsonBody(ADMIN_BODY_BYTES)] as const,
  request: { body: adminBody(CreateProjectBodySchema) },
  responses: {
    201: jsonContent(CreatedProjectSchema, 'The project, its environment and its first key.'),
    ...errorResponses(400, 401, 403, 409, 413, 415),
  },
});

const updateProject = adminRoute({
  method: 'patch',
  path: '/api/v1/projects/{name}',
  operationId: 'updateProject',
  summary: "Change the caller's project settings",
  description:
    '`saveDataclips` applies to runs started from now on; `paused` pauses every environment of the project (see PATCH /api/v1/environments/{name}). Fields left out keep their value.',
  middleware: [jsonBody(ADMIN_BODY_BYTES)] as const,
  request: { params: ProjectParamsSchema, body: adminBody(UpdateProjectBodySchema) },
  responses: {
    200: jsonContent(ProjectSchema, 'The project.'),
    ...errorResponses(400, 401, 403, 404, 413, 415),
  },
});

export function registerAdminProjectRoutes(app: ServerApp, admin: AdminContext): void {
  const { control, deps, caller } = admin;

  /**
   * A project is changed or deleted only with a key of its own: another project of the
   * organization is a 403 that says how (`managedHow`), one of another organization a 404.
   */
  const requireOwnProject = async (
    env: EnvironmentRecord,
    name: string,
    managedHow: string,
  ): Promise<void> => {
    if (name === env.projectName) return;
    const other = await control.findProject(env.organizationId, name);
    if (!other)
      throw new WeftError(
        'not_found',
        `No project ${quoteId(name)} in this organization. GET /api/v1/projects lists them.`,
        { details: { project: name } },
      );
    throw new ApiError(
      'forbidden',
      `This API key belongs to project "${env.projectName}"; project "${name}" ${managedHow}.`,
      { project: name, keyProject: env.projectName },
    );
  };

  app.openapi(deleteProject, async (c) => {
    const env = await caller(c);
    const { name } = c.req.valid('param');
    await requireOwnProject(env, name, 'is deleted with a key of its own');
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

  app.openapi(updateProject, async (c) => {
    const env = await caller(c);
    const { name } = c.req.valid('param');
    await requireOwnProject(
      env,
      name,
      'is managed with a key of its own (POST /api/v1/projects returned one when it was created)',
    );
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
