import type { ControlStore } from '../store/control-store.js';

/**
 * Find or create the named organization/project/environment (what `weft dev` and a first
 * `weft worker` use). Idempotent; racing processes converge on the first environment created.
 */
export async function ensureEnvironment(
  control: ControlStore,
  names: { organization?: string; project?: string; environment?: string } = {},
): Promise<string> {
  const project = names.project ?? 'default';
  const environment = names.environment ?? 'dev';
  const found = await control.findEnvironmentByName(project, environment);
  if (found) return found;
  const tenant = await control.createTenant({
    organization: names.organization ?? 'default',
    project,
    environment,
  });
  return tenant.environmentId;
}
