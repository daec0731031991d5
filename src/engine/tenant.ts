import { WeftError } from '../core/errors.js';
import type { ControlStore } from '../store/control-store.js';

/**
 * Find or create the named organization/project/environment (what `weft dev` and `weft worker`
 * use). A new environment of an existing project is added to that project, so `weft worker
 * --environment staging` serves a `staging` beside `dev` (same organization, keys managed
 * together). Idempotent; racing processes converge on the environment created first.
 */
export async function ensureEnvironment(
  control: ControlStore,
  names: { organization?: string; project?: string; environment?: string } = {},
): Promise<string> {
  const project = names.project ?? 'default';
  const environment = names.environment ?? 'dev';
  const found = await control.findEnvironmentByName(project, environment);
  if (found) return found;
  const projectId = await control.findProjectIdByName(project);
  try {
    if (projectId) return await control.createEnvironment(projectId, environment);
    return (
      await control.createTenant({
        organization: names.organization ?? 'default',
        project,
        environment,
      })
    ).environmentId;
  } catch (error) {
    // Another process created it a moment ago: use theirs.
    const raced = await control.findEnvironmentByName(project, environment);
    if (raced && error instanceof WeftError && error.code === 'already_exists') return raced;
    throw error;
  }
}
