/**
 * The caller's organization: its flags, and the cutover that mints its new runs into another run
 * location (docs/operations.md). Setting `flags.runs.location` goes through the same cutover.
 */
import { WeftError } from '../../core/errors.js';
import { cutoverOrganization } from '../../engine/cutover.js';
import { jsonBody } from '../body.js';
import { errorResponses, jsonContent } from '../openapi.js';
import type { ServerApp } from '../types.js';
import { ADMIN_BODY_BYTES, adminBody, adminRoute, type AdminContext } from './admin-shared.js';
import { audited } from './audit.js';
import {
  CutoverBodySchema,
  CutoverSchema,
  OrganizationSchema,
  UpdateOrganizationBodySchema,
} from './admin-schemas.js';

const getOrganization = adminRoute({
  method: 'get',
  path: '/api/v1/organization',
  operationId: 'getOrganization',
  summary: "The caller's organization and its flags",
  responses: {
    200: jsonContent(OrganizationSchema, 'The organization.'),
    ...errorResponses(401, 403),
  },
});

const updateOrganization = adminRoute({
  method: 'patch',
  path: '/api/v1/organization',
  operationId: 'updateOrganization',
  summary: "Change the caller's organization flags",
  description:
    '`runs.location`: where new runs of every project of the organization are stored (a configured location tag; null for the default). 422 `invalid_input` for a tag this server does not know.',
  middleware: [jsonBody(ADMIN_BODY_BYTES)] as const,
  request: { body: adminBody(UpdateOrganizationBodySchema) },
  responses: {
    200: jsonContent(OrganizationSchema, 'The organization.'),
    ...errorResponses(400, 401, 403, 413, 415, 422),
  },
});

const cutover = adminRoute({
  method: 'post',
  path: '/api/v1/organization/cutover',
  operationId: 'cutoverOrganization',
  summary: "Mint the caller's organization's new runs into another run location",
  description:
    'Cutover without backfill (docs/operations.md): from the next trigger on, in every server and worker process (a NOTIFY on the control plane reaches them), new runs of every project of the organization are minted into `location`; `null` sends them back to the default location. Existing runs stay where they are, and every relation between runs (child and parent, cancel, rerun lineage) keeps resolving by id. 422 `invalid_input` for a tag this installation does not configure.',
  middleware: [jsonBody(ADMIN_BODY_BYTES)] as const,
  request: { body: adminBody(CutoverBodySchema) },
  responses: {
    200: jsonContent(CutoverSchema, 'Where new runs go now, and before.'),
    ...errorResponses(400, 401, 403, 413, 415, 422),
  },
});

export function registerAdminOrganizationRoutes(app: ServerApp, admin: AdminContext): void {
  const { control, deps, caller } = admin;

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
}
