/**
 * Operations over the API (admin-scoped keys, see ROUTE_SCOPES in auth.ts): API keys,
 * environments, projects and the organization (its flags, the run-location cutover), so nothing
 * needs the server stopped. One file per resource (admin-keys.ts, admin-environments.ts,
 * admin-projects.ts, admin-organization.ts), registered here in this order; what they share
 * (route shape, the caller, presenters) is admin-shared.ts, the request and response schemas
 * admin-schemas.ts.
 *
 * Tenancy: an admin key manages the project its environment belongs to — its keys, its
 * environments, its settings — and may create projects in its organization (each new project
 * comes with an environment and an admin key of its own, shown once). Names of another
 * organization are never visible: they answer 404 like names that do not exist. A project of the
 * same organization is listed but managed only with its own keys (403 names the fix).
 */
import type { ServerApp, ServerDeps } from '../types.js';
import { registerAdminEnvironmentRoutes } from './admin-environments.js';
import { registerAdminKeyRoutes } from './admin-keys.js';
import { registerAdminOrganizationRoutes } from './admin-organization.js';
import { registerAdminProjectRoutes } from './admin-projects.js';
import { adminContext } from './admin-shared.js';

export function registerAdminRoutes(app: ServerApp, deps: ServerDeps): void {
  const admin = adminContext(deps);
  registerAdminKeyRoutes(app, admin);
  registerAdminEnvironmentRoutes(app, admin);
  registerAdminProjectRoutes(app, admin);
  registerAdminOrganizationRoutes(app, admin);
}
