/**
 * What the Operations routes share (admin-keys.ts, admin-environments.ts, admin-projects.ts,
 * admin-organization.ts; admin.ts registers them): the route shape (tag, admin key, small body
 * limit), the caller's environment and the lookup of an environment of its project, and how
 * records are presented. Tenancy is explained in admin.ts.
 */
import { createRoute, z, type RouteConfig } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { WeftError } from '../../core/errors.js';
import type {
  ApiKeyRecord,
  ControlStore,
  EnvironmentListing,
  EnvironmentRecord,
  ProjectRecord,
} from '../../store/control-store.js';
import { ApiError, quoteId } from '../errors.js';
import { requiresKey } from '../openapi.js';
import type { AppEnv, ServerDeps } from '../types.js';

/** Operations bodies are a few fields: a small limit, whatever the run input limit is. */
export const ADMIN_BODY_BYTES = 64 * 1024;

/** An Operations route: tagged, and callable with an admin-scoped key (ROUTE_SCOPES in auth.ts). */
export const adminRoute = <R extends Omit<RouteConfig, 'tags' | 'security'>>(config: R) =>
  createRoute({ ...config, tags: ['Operations'], security: requiresKey });

export const adminBody = <T>(schema: T) => ({
  content: { 'application/json': { schema } },
  required: true,
});

/** A deleted environment or project: what the cleanup of its run data will work on. */
export const DeletedTenantSchema = z
  .object({
    name: z.string(),
    deleted: z.literal(true),
    environments: z.array(z.string()).openapi({
      description:
        'Ids of the environments deleted; their run data is removed by cleanup jobs (docs/operations.md).',
    }),
  })
  .openapi('DeletedTenant');

export const presentKey = (k: ApiKeyRecord) => ({
  id: k.id,
  prefix: k.prefix,
  label: k.label,
  scopes: k.scopes,
  environment: k.environment,
  createdAt: k.createdAt,
  revokedAt: k.revokedAt,
});

export const presentEnvironment = (e: EnvironmentListing, callerEnvironmentId: string) => ({
  id: e.id,
  name: e.name,
  paused: e.paused,
  projectPaused: e.projectPaused,
  current: e.id === callerEnvironmentId,
  createdAt: e.createdAt,
});

export const presentProject = (p: ProjectRecord, callerProjectId: string) => ({
  id: p.id,
  name: p.name,
  saveDataclips: p.saveDataclips,
  retentionDays: p.retentionDays,
  paused: p.paused,
  current: p.id === callerProjectId,
  createdAt: p.createdAt,
});

/** What every Operations handler needs: the stores, and who is calling. */
export interface AdminContext {
  deps: ServerDeps;
  control: ControlStore;
  /** The caller's environment, with its project and organization. */
  caller(c: Context<AppEnv>): Promise<EnvironmentRecord>;
  /** An environment of the caller's project by name, or the 404 that lists the names there are. */
  environmentOf(
    env: EnvironmentRecord,
    name: string | undefined,
    ctl?: ControlStore,
  ): Promise<EnvironmentListing>;
}

export function adminContext(deps: ServerDeps): AdminContext {
  const { control } = deps.stores;
  const caller = async (c: Context<AppEnv>): Promise<EnvironmentRecord> => {
    const env = await control.getEnvironment(c.get('identity').environmentId);
    // The key resolved a moment ago; its environment can only be gone if it was just deleted.
    if (!env)
      throw new ApiError('unauthorized', 'The environment of this API key no longer exists.');
    return env;
  };
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
  return { deps, control, caller, environmentOf };
}
