/**
 * Cron schedules (`/api/v1/schedules`), scoped to the API key's environment: another
 * environment's schedule answers 404. A cron expression that does not parse, a time zone that is
 * not an IANA name, or an input that does not fit its mode is a 422 naming the field; a workflow
 * that is not registered is a 404 listing the registered ones. Nothing is written in either case.
 * Firing is the scheduler's job (engine/scheduler.ts); these routes only edit the table.
 */
import { createRoute, z } from '@hono/zod-openapi';
import {
  createSchedule,
  deleteSchedule,
  updateSchedule,
  type ScheduleRequest,
} from '../../engine/scheduler.js';
import {
  CATCH_UP_POLICIES,
  OVERLAP_POLICIES,
  SCHEDULE_INPUT_MODES,
  scheduleNotFound,
  type ScheduleRecord,
} from '../../store/schedule-store.js';
import { jsonBody } from '../body.js';
import { dbText } from '../db-text.js';
import { errorResponses, jsonContent, requiresKey } from '../openapi.js';
import type { ServerApp, ServerDeps } from '../types.js';
import { audited } from './audit.js';

// ---------------------------------------------------------------------------------------------
// Schemas (here rather than in schemas.ts: only these routes use them)

const InputModeSchema = z.enum(SCHEDULE_INPUT_MODES as [string, ...string[]]).openapi({
  description:
    '`none`: null. `static`: `value`. `previous_final_state`: the final state of the latest succeeded run of the workflow. `previous_step_output`: that run\'s output of `step`. "Previous" is resolved when the run can start, never when it is queued.',
});
const OverlapSchema = z.enum(OVERLAP_POLICIES as [string, ...string[]]).openapi({
  description:
    "When the schedule's previous run is still active at a slot: `allow` (fire anyway), `skip` (drop the slot), `queue` (fire when it ends), `cancel_previous` (cancel it, then fire).",
});
const CatchUpSchema = z.enum(CATCH_UP_POLICIES as [string, ...string[]]).openapi({
  description:
    'Slots missed while no scheduler ran: `none` (drop them), `last` (fire the latest), `all` (fire each, at most `catchUpLimit`).',
});

const ScheduleInputSchema = z
  .strictObject({
    mode: InputModeSchema,
    value: z.unknown().optional().openapi({ description: 'The input, with mode `static`.' }),
    step: dbText()
      .optional()
      .openapi({ description: 'The step whose output is the input, with `previous_step_output`.' }),
  })
  .openapi('ScheduleInput');

const CreateScheduleBodySchema = z
  .strictObject({
    workflowId: dbText().min(1).max(100).openapi({ example: 'nightly-report' }),
    cron: dbText().min(1).max(200).openapi({
      description:
        '5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first.',
      example: '0 9 * * 1-5',
    }),
    timezone: dbText().min(1).max(100).optional().openapi({
      description:
        'IANA time zone; default `UTC`. DST: a time in a skipped hour fires once at the next valid instant; a time in a repeated hour fires once, on its first occurrence.',
      example: 'Europe/London',
    }),
    input: ScheduleInputSchema.optional(),
    countManualRuns: z.boolean().optional().openapi({
      description: 'Whether runs started by hand or by API count as "previous". Default false.',
    }),
    overlap: OverlapSchema.optional(),
    catchUp: CatchUpSchema.optional(),
    catchUpLimit: z.int().min(1).max(1000).optional().openapi({ description: 'Default 10.' }),
    enabled: z.boolean().optional(),
  })
  .openapi('CreateScheduleRequest');

const UpdateScheduleBodySchema =
  CreateScheduleBodySchema.partial().openapi('UpdateScheduleRequest');

const ScheduleSchema = z
  .object({
    id: z.string().openapi({ example: 'sch_01jh8k2m3n4p5q6r7s8t9v0w1x' }),
    workflowId: z.string(),
    name: z.string().nullable().openapi({ description: 'Set for schedules declared in code.' }),
    source: z.enum(['api', 'code']),
    cron: z.string(),
    timezone: z.string(),
    input: z.object({
      mode: InputModeSchema,
      value: z.unknown().optional(),
      step: z.string().optional(),
    }),
    countManualRuns: z.boolean(),
    overlap: OverlapSchema,
    catchUp: CatchUpSchema,
    catchUpLimit: z.int(),
    enabled: z.boolean(),
    nextSlotAt: z.iso.datetime().nullable(),
    lastSlotAt: z.iso.datetime().nullable(),
    createdAt: z.iso.datetime(),
    updatedAt: z.iso.datetime(),
  })
  .openapi('Schedule');

const ScheduleListSchema = z.object({ data: z.array(ScheduleSchema) }).openapi('ScheduleList');

const ScheduleParamsSchema = z.object({
  scheduleId: dbText().openapi({ param: { name: 'scheduleId', in: 'path' } }),
});

// ---------------------------------------------------------------------------------------------
// Routes

const listSchedules = createRoute({
  method: 'get',
  path: '/api/v1/schedules',
  operationId: 'listSchedules',
  tags: ['Schedules'],
  summary: 'List schedules',
  description: 'The schedules of the environment, by workflow.',
  security: requiresKey,
  responses: {
    200: jsonContent(ScheduleListSchema, 'The schedules.'),
    ...errorResponses(401),
  },
});

const getSchedule = createRoute({
  method: 'get',
  path: '/api/v1/schedules/{scheduleId}',
  operationId: 'getSchedule',
  tags: ['Schedules'],
  summary: 'Get a schedule',
  security: requiresKey,
  request: { params: ScheduleParamsSchema },
  responses: {
    200: jsonContent(ScheduleSchema, 'The schedule.'),
    ...errorResponses(401, 404),
  },
});

function createScheduleRoute(maxBodyBytes: number) {
  return createRoute({
    method: 'post',
    path: '/api/v1/schedules',
    operationId: 'createSchedule',
    tags: ['Schedules'],
    summary: 'Create a schedule',
    description:
      'Fires runs of a registered workflow on a cron expression in a time zone, one run per slot.',
    security: requiresKey,
    middleware: [jsonBody(maxBodyBytes)] as const,
    request: {
      body: {
        content: { 'application/json': { schema: CreateScheduleBodySchema } },
        required: true,
      },
    },
    responses: {
      201: jsonContent(ScheduleSchema, 'The schedule was created.'),
      ...errorResponses(400, 401, 404, 413, 415, 422),
    },
  });
}

function updateScheduleRoute(maxBodyBytes: number) {
  return createRoute({
    method: 'patch',
    path: '/api/v1/schedules/{scheduleId}',
    operationId: 'updateSchedule',
    tags: ['Schedules'],
    summary: 'Update a schedule',
    description:
      'Changes the given fields. Changing `cron`, `timezone`, `workflowId` or `enabled` moves the next slot to the first one after now.',
    security: requiresKey,
    middleware: [jsonBody(maxBodyBytes)] as const,
    request: {
      params: ScheduleParamsSchema,
      body: {
        content: { 'application/json': { schema: UpdateScheduleBodySchema } },
        required: true,
      },
    },
    responses: {
      200: jsonContent(ScheduleSchema, 'The updated schedule.'),
      ...errorResponses(400, 401, 404, 413, 415, 422),
    },
  });
}

const deleteScheduleRoute = createRoute({
  method: 'delete',
  path: '/api/v1/schedules/{scheduleId}',
  operationId: 'deleteSchedule',
  tags: ['Schedules'],
  summary: 'Delete a schedule',
  description: 'No further slots fire. Runs it started are kept.',
  security: requiresKey,
  request: { params: ScheduleParamsSchema },
  responses: {
    204: { description: 'Deleted.' },
    ...errorResponses(401, 404),
  },
});

export function presentSchedule(s: ScheduleRecord): z.infer<typeof ScheduleSchema> {
  return {
    id: s.id,
    workflowId: s.workflowId,
    name: s.name,
    source: s.source,
    cron: s.cron,
    timezone: s.timezone,
    input: s.input,
    countManualRuns: s.countManualRuns,
    overlap: s.overlap,
    catchUp: s.catchUp,
    catchUpLimit: s.catchUpLimit,
    enabled: s.enabled,
    nextSlotAt: s.nextSlotAt,
    lastSlotAt: s.lastSlotAt,
    createdAt: s.createdAt,
    updatedAt: s.updatedAt,
  };
}

export function registerScheduleRoutes(app: ServerApp, deps: ServerDeps): void {
  const { stores } = deps;

  app.openapi(listSchedules, async (c) => {
    const list = await stores.schedules.listSchedules(c.get('identity').environmentId);
    return c.json({ data: list.map(presentSchedule) }, 200);
  });

  app.openapi(getSchedule, async (c) => {
    const { scheduleId } = c.req.valid('param');
    const s = await stores.schedules.getSchedule(c.get('identity').environmentId, scheduleId);
    if (!s) throw scheduleNotFound(scheduleId);
    return c.json(presentSchedule(s), 200);
  });

  app.openapi(createScheduleRoute(deps.maxBodyBytes), async (c) => {
    const body = c.req.valid('json') as ScheduleRequest;
    const s = await createSchedule(
      stores,
      c.get('identity').environmentId,
      body,
      undefined,
      (write) =>
        audited(
          c,
          deps,
          'schedule.create',
          (b) => write(b.schedules),
          (r) => ({
            target: { type: 'schedule', id: r.id },
            details: { workflowId: r.workflowId, cron: r.cron, timezone: r.timezone },
          }),
        ),
    );
    return c.json(presentSchedule(s), 201, { Location: `/api/v1/schedules/${s.id}` });
  });

  app.openapi(updateScheduleRoute(deps.maxBodyBytes), async (c) => {
    const { scheduleId } = c.req.valid('param');
    const body = c.req.valid('json') as Partial<ScheduleRequest>;
    const s = await updateSchedule(
      stores,
      c.get('identity').environmentId,
      scheduleId,
      body,
      undefined,
      (write) =>
        audited(
          c,
          deps,
          'schedule.update',
          (b) => write(b.schedules),
          () => ({ target: { type: 'schedule', id: scheduleId }, details: { changes: body } }),
        ),
    );
    return c.json(presentSchedule(s), 200);
  });

  app.openapi(deleteScheduleRoute, async (c) => {
    const { scheduleId } = c.req.valid('param');
    await deleteSchedule(stores, c.get('identity').environmentId, scheduleId, (write) =>
      audited(
        c,
        deps,
        'schedule.delete',
        (b) => write(b.schedules),
        () => ({ target: { type: 'schedule', id: scheduleId } }),
      ),
    );
    return c.body(null, 204);
  });
}
