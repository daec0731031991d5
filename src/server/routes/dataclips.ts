/**
 * Dataclips: persisted JSON values (inputs, outputs, final states), read by id.
 */
import { getDataclip as readDataclip } from '../../engine/run-views.js';
import { createRoute } from '@hono/zod-openapi';
import { WeftError } from '../../core/errors.js';
import { parseRunScopedId } from '../../core/ids.js';
import { quoteId } from '../errors.js';
import { errorResponses, jsonContent, requiresKey } from '../openapi.js';
import { presentDataclip } from '../presenters.js';
import { DataclipParamsSchema, DataclipSchema } from '../schemas.js';
import type { ServerApp, ServerDeps } from '../types.js';

const getDataclip = createRoute({
  method: 'get',
  path: '/api/v1/dataclips/{dataclipId}',
  operationId: 'getDataclip',
  tags: ['Dataclips'],
  summary: 'Get a dataclip',
  description:
    'The JSON body and its size. `body` is null and `wipedAt` set when the body was wiped or never saved.',
  security: requiresKey,
  request: { params: DataclipParamsSchema },
  responses: {
    200: jsonContent(DataclipSchema, 'The dataclip.'),
    ...errorResponses(401, 404),
  },
});

export function registerDataclipRoutes(app: ServerApp, deps: ServerDeps): void {
  app.openapi(getDataclip, async (c) => {
    const { dataclipId } = c.req.valid('param');
    // One indexed read on the location the id names; malformed ids never reach the database.
    const dataclip =
      parseRunScopedId(dataclipId)?.prefix === 'dc'
        ? await readDataclip(deps.stores.runs, c.get('identity').environmentId, dataclipId)
        : undefined;
    if (!dataclip) {
      throw new WeftError(
        'not_found',
        `Dataclip ${quoteId(dataclipId)} does not exist in the environment of this API key. Dataclip ids look like dc_a0…; runs and step runs list theirs.`,
        { details: { dataclipId } },
      );
    }
    return c.json(presentDataclip(dataclip), 200);
  });
}
