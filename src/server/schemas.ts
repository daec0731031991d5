/**
 * The zod schemas of the HTTP API: the same objects validate requests and generate the OpenAPI
 * document (one source of truth). Request objects are strict — an unknown field is a 400,
 * so a typo (`idempotencykey`) fails loudly instead of being ignored. Every request string that
 * reaches SQL is `dbText()` (db-text.ts): NUL and lone surrogates are a 422 naming the field.
 *
 * Response schemas document what the presenters in `presenters.ts` build; the handlers' return
 * types are checked against them at compile time, not at run time.
 *
 * Kept whole (about 610 lines): the request and response schemas reference each other (a run embeds
 * its error, a page its cursor, every error body the code table) and together are the OpenAPI
 * document's single source; one file keeps every shape of the API in one place.
 */
import { z } from '@hono/zod-openapi';
import { ERROR_CODES } from '../core/error-codes.js';
import { ID_PATTERN } from '../core/graph.js';
import { MAX_IDEMPOTENCY_TTL_MS } from '../engine/trigger.js';
import {
  ATTEMPT_STATUSES,
  DATACLIP_KINDS,
  STEP_RUN_STATUSES,
  type RunStatus,
  type StepRunStatus,
  type TriggerKind,
} from '../store/rows.js';
import { dbText } from './db-text.js';
import { API_ERROR_CODES } from './errors.js';

/** `Record`s over each union, so a status added to rows.ts fails to compile until listed here. */
const enumOf = <T extends string>(members: Record<T, true>): z.ZodEnum<{ [K in T]: K }> =>
  z.enum(Object.keys(members) as [T, ...T[]]);

const RunStatusSchema = enumOf<RunStatus>({
  queued: true,
  running: true,
  waiting: true,
  paused: true,
  succeeded: true,
  failed: true,
  canceled: true,
}).openapi('RunStatus');

// The step run statuses, attempt statuses and dataclip kinds are listed once, in src/store/rows.ts.
const StepRunStatusSchema = z.enum(STEP_RUN_STATUSES).openapi('StepRunStatus');

const AttemptStatusSchema = z.enum(ATTEMPT_STATUSES);

const TriggerKindSchema = enumOf<TriggerKind>({
  manual: true,
  api: true,
  webhook: true,
  cron: true,
  rerun: true,
  cli: true,
  dashboard: true,
  child: true,
});

const DataclipKindSchema = z.enum(DATACLIP_KINDS);

/**
 * `schema | null` for a schema registered as an OpenAPI component. Not `.nullable()`: the
 * generator then marks the shared component itself nullable, so every other use of it would
 * claim null too.
 */
const orNull = <T extends z.ZodType>(schema: T) => z.union([schema, z.null()]);

const Timestamp = z.iso.datetime().openapi({ example: '2025-01-31T09:30:00.123Z' });
const NullableTimestamp = Timestamp.nullable();

// ---------------------------------------------------------------------------------------------
// Errors

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.enum(API_ERROR_CODES).openapi({
        // the one table of codes (src/core/error-codes.ts), so the document cannot drift from it
        description: `Stable, snake_case; match on it. Each code, its status and the fix:\n\n${API_ERROR_CODES.map(
          (code) => `- \`${code}\` (${ERROR_CODES[code].status}): ${ERROR_CODES[code].fix}`,
        ).join('\n')}`,
      }),
      message: z.string().openapi({
        description: 'What happened, naming the ids involved, and how to fix it.',
      }),
      details: z.record(z.string(), z.unknown()).optional(),
    }),
  })
  .openapi('Error');

// ---------------------------------------------------------------------------------------------
// Health

export const HealthSchema = z.object({ status: z.literal('ok') }).openapi('Health');
export const ReadySchema = z.object({ status: z.literal('ready') }).openapi('Ready');

// ---------------------------------------------------------------------------------------------
// Workflows

const WorkflowVersionSchema = z
  .object({
    id: z.string().openapi({ example: 'wfv_01jh8k2m3n4p5q6r7s8t9v0w1x' }),
    version: z.int().positive().openapi({ example: 3 }),
    hash: z.string().openapi({ description: 'sha256 over the step hashes and edges.' }),
    createdAt: Timestamp,
  })
  .openapi('WorkflowVersion');

/**
 * The stored graph of a version, served as stored: core serializes it for the API and the
 * dashboard (functions as source text). Fields core adds later pass through (the objects are not
 * strict, and in OpenAPI terms they allow additional properties).
 */
const GraphSchema = z
  .object({
    maxPayloadBytes: z.int().openapi({ description: 'Largest accepted input or step output.' }),
    maxConcurrency: z
      .int()
      .optional()
      .openapi({ description: 'Most step runs of one run executing at once.' }),
    inputSchema: z.record(z.string(), z.unknown()).optional().openapi({
      description:
        'JSON Schema (draft 2020-12) every trigger’s input is checked against (from the workflow’s zod `input`); absent: any JSON value.',
    }),
    nodes: z.array(
      z.object({
        id: z.string(),
        kind: z.string().openapi({
          description:
            '`step` for a function step; otherwise the kind of control node (router, forEach, parallel, sleep, …).',
        }),
        hash: z.string().openapi({ description: 'sha256 of the code text and config.' }),
        scope: z
          .string()
          .optional()
          .openapi({ description: 'The control node whose body holds this step.' }),
        description: z.string().optional(),
        maxAttempts: z.int(),
        timeoutMs: z.int().optional(),
        onExhausted: z.enum(['fail', 'pause']),
        concurrency: z.int().optional(),
        control: z.record(z.string(), z.unknown()).optional().openapi({
          description: 'Settings of a control node (functions as source text).',
        }),
        group: z.string().nullable().optional().openapi({
          description:
            'Drawing hint: the loop or parallel whose body holds this node (draw it inside that group); null at the top level.',
        }),
        depth: z.int().optional().openapi({ description: 'How many bodies it is nested in.' }),
        branches: z.array(z.string()).optional().openapi({
          description: 'A router’s branch labels, in the order of its edges.',
        }),
      }),
    ),
    edges: z.array(
      z.object({
        from: z.string(),
        to: z.string(),
        on: z.string().openapi({ description: '`success`, `failure`, `always`, …' }),
        when: z.string().optional().openapi({ description: 'Source text of the predicate.' }),
        branch: z.string().optional(),
        kind: z.enum(['success', 'failure', 'always', 'timeout', 'branch']).optional().openapi({
          description: 'Drawing hint: `branch` for a router’s labelled edge, else `on`.',
        }),
      }),
    ),
  })
  .openapi('Graph');

export const WorkflowSchema = z
  .object({
    id: z.string().openapi({ example: 'onboarding' }),
    description: z.string().nullable(),
    currentVersion: orNull(WorkflowVersionSchema),
    createdAt: Timestamp,
    updatedAt: Timestamp,
  })
  .openapi('Workflow');

export const WorkflowListSchema = z
  .object({ data: z.array(WorkflowSchema) })
  .openapi('WorkflowList');

export const WorkflowDetailSchema = WorkflowSchema.extend({
  graph: orNull(GraphSchema).openapi({
    description: 'The graph of the current version, with drawing hints.',
  }),
  versions: z
    .array(
      WorkflowVersionSchema.extend({
        stepHashes: z.record(z.string(), z.string()).openapi({
          description:
            'Step id → hash (code + config): the steps that changed between two versions are those whose hash differs.',
        }),
      }).openapi('WorkflowVersionDetail'),
    )
    .openapi({ description: 'Every version, newest first.' }),
}).openapi('WorkflowDetail');

export const WorkflowParamsSchema = z.object({
  workflowId: dbText().openapi({
    param: { name: 'workflowId', in: 'path' },
    example: 'onboarding',
  }),
});

// ---------------------------------------------------------------------------------------------
// Runs

const StepErrorSchema = z
  .object({
    name: z.string(),
    message: z.string(),
    code: z.string().optional(),
    terminal: z.boolean().openapi({ description: 'True when no further attempt is made.' }),
    stack: z.string().optional(),
  })
  .openapi('StepError');

export const RunSchema = z
  .object({
    id: z.string().openapi({ example: 'run_a001jh8k2m3n4p5q6r7s8t9v0w1x' }),
    workflowId: z.string(),
    versionId: z.string(),
    status: RunStatusSchema,
    trigger: z.object({
      kind: TriggerKindSchema,
      ref: z.string().nullable().openapi({
        description: 'What triggered the run: for `api`, the id of the API key.',
      }),
    }),
    idempotencyKey: z.string().nullable(),
    inputDataclipId: z.string().nullable(),
    finalDataclipId: z.string().nullable().openapi({
      description: 'Set when the run ends: the output of its single leaf, or a map by step id.',
    }),
    rerunOf: z.string().nullable().openapi({ description: 'The run this one reruns.' }),
    rerunFromStep: z.string().nullable(),
    parentRunId: z.string().nullable().openapi({ description: 'Set for sub-workflow runs.' }),
    error: z
      .object({
        stepKey: z.string().optional().openapi({ description: 'The step that failed the run.' }),
        name: z.string().optional(),
        message: z.string(),
        code: z.string().optional(),
        terminal: z.boolean().optional(),
        error: StepErrorSchema.optional().openapi({
          description:
            'Deprecated: the same error nested (name, message, code, terminal); read the fields above.',
        }),
      })
      .nullable()
      .openapi({
        description:
          'Why the run failed: the step and its last error (its stack is in the step’s attempts).',
      }),
    createdAt: Timestamp,
    startedAt: NullableTimestamp,
    finishedAt: NullableTimestamp,
    updatedAt: Timestamp,
  })
  .openapi('Run');

export const RunDetailSchema = RunSchema.extend({
  steps: z
    .object({
      total: z.int(),
      byStatus: z.object(
        Object.fromEntries(STEP_RUN_STATUSES.map((s) => [s, z.int()])) as Record<
          StepRunStatus,
          z.ZodInt
        >,
      ),
    })
    .openapi({ description: 'How many step runs the run has, by status.' }),
}).openapi('RunDetail');

export const TriggeredRunSchema = RunSchema.extend({
  deduplicated: z.boolean().openapi({
    description: 'True when the idempotency key matched an earlier run, which is returned.',
  }),
}).openapi('TriggeredRun');

export const RunListSchema = z
  .object({
    data: z.array(RunSchema),
    nextCursor: z.string().nullable().openapi({
      description: 'Pass as `cursor` for the next page; null on the last page.',
    }),
  })
  .openapi('RunList');

export const RunParamsSchema = z.object({
  runId: dbText().openapi({
    param: { name: 'runId', in: 'path' },
    example: 'run_a001jh8k2m3n4p5q6r7s8t9v0w1x',
  }),
});

export const TriggerBodySchema = z
  .strictObject({
    input: z.unknown().optional().openapi({
      description:
        'The run input: any JSON value (default null), at most the workflow’s maxPayloadBytes.',
    }),
    idempotencyKey: dbText().min(1).max(255).optional().openapi({
      description:
        'Triggers with the same key (per workflow) within the TTL return the first run; the same key with another input is a 409.',
    }),
    idempotencyKeyTTL: z
      .int()
      .min(1000)
      .max(MAX_IDEMPOTENCY_TTL_MS)
      .optional()
      .openapi({ description: 'How long the key is held, in milliseconds. Default 24 h.' }),
    source: z.enum(['api', 'cli', 'dashboard']).optional().openapi({
      description:
        "Where the trigger came from, recorded as the run's trigger kind (filterable on the runs list). Default `api`; `weft trigger` sends `cli`, the dashboard's Start run sends `dashboard`.",
    }),
  })
  .openapi('TriggerRunRequest');

/** Most runs one batch trigger may start (POST /api/v1/workflows/{workflowId}/runs/batch). */
export const MAX_TRIGGER_BATCH = 500;

export const TriggerBatchBodySchema = z
  .strictObject({
    items: z
      .array(TriggerBodySchema.omit({ source: true }).openapi('TriggerRunBatchItem'))
      .min(1)
      .max(MAX_TRIGGER_BATCH)
      .openapi({
        description: `1–${MAX_TRIGGER_BATCH} runs to start, each as the body of a single trigger (\`input\`, \`idempotencyKey\`, \`idempotencyKeyTTL\`).`,
      }),
    source: TriggerBodySchema.shape.source,
  })
  .openapi('TriggerRunBatchRequest');

const TriggerBatchResultSchema = z.union([
  z
    .object({
      index: z.int().openapi({ description: 'The position of the item in `items`.' }),
      status: z.union([z.literal(201), z.literal(200)]).openapi({
        description: '201: created; 200: the idempotency key matched an earlier run, returned.',
      }),
      run: TriggeredRunSchema,
    })
    .openapi('TriggerRunBatchCreated'),
  z
    .object({
      index: z.int(),
      status: z.int().openapi({
        description:
          'The status a single trigger with this item would have answered (4xx, or 503).',
      }),
      error: ErrorSchema.shape.error,
    })
    .openapi('TriggerRunBatchRefused'),
]);

export const TriggerBatchResponseSchema = z
  .object({
    data: z.array(TriggerBatchResultSchema).openapi({
      description: 'One result per item, in the order of `items`.',
    }),
    created: z.int().openapi({ description: 'Items that started a new run.' }),
    deduplicated: z
      .int()
      .openapi({ description: 'Items whose idempotency key returned an earlier run.' }),
    refused: z.int().openapi({ description: 'Items that started no run (each names why).' }),
  })
  .openapi('TriggerRunBatch');

/**
 * A timestamp filter. zod's ISO check already refuses days that do not exist (February 30) but
 * not year 0000, which PostgreSQL cannot cast; refusing it here keeps it a 400, not a 500.
 */
const TimestampFilter = z.iso
  .datetime({ offset: true, error: 'expected an ISO 8601 date-time such as 2025-01-31T09:30:00Z' })
  .refine((v) => !v.startsWith('0000'), {
    error: 'year 0000 does not exist; the earliest is 0001',
  });

export const ListRunsQuerySchema = z
  .strictObject({
    workflowId: dbText()
      .regex(ID_PATTERN, 'not a workflow id (letters, digits, "_", "." and "-", at most 100)')
      .optional()
      .openapi({ param: { name: 'workflowId', in: 'query' }, example: 'onboarding' }),
    status: z
      .preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(RunStatusSchema))
      .optional()
      .openapi({
        param: { name: 'status', in: 'query', style: 'form', explode: true },
        description: 'Repeat to match any of several: `?status=failed&status=paused`.',
      }),
    createdFrom: TimestampFilter.optional().openapi({
      param: { name: 'createdFrom', in: 'query' },
      description: 'Runs created at or after this instant (ISO 8601).',
    }),
    createdTo: TimestampFilter.optional().openapi({
      param: { name: 'createdTo', in: 'query' },
      description: 'Runs created before this instant (ISO 8601, exclusive).',
    }),
    limit: z.coerce
      .number()
      .int()
      .min(1)
      .max(100)
      .default(20)
      .openapi({ param: { name: 'limit', in: 'query' }, example: 20 }),
    cursor: dbText()
      .optional()
      .openapi({
        param: { name: 'cursor', in: 'query' },
        description:
          'The `nextCursor` of the previous page, with the same filters (a cursor of another listing is a 422 `invalid_cursor`).',
      }),
    runId: z
      .preprocess(
        (v) => (typeof v === 'string' ? [v] : v),
        z.array(dbText().max(64)).min(1).max(100),
      )
      .optional()
      .openapi({
        param: { name: 'runId', in: 'query', style: 'form', explode: true },
        description:
          'Only these runs (repeatable, at most 100). Only the run locations these ids name are read.',
      }),
    offset: z
      .unknown()
      .optional()
      .openapi({
        param: { name: 'offset', in: 'query' },
        description:
          'Refused (400): runs live in several locations, so pages are keyset pages; follow `nextCursor`.',
      }),
  })
  .refine((q) => q.offset === undefined, {
    message:
      'offset pagination is not supported: runs can live in several run locations, and an offset across them would scan every earlier row of each. Page with the nextCursor of the previous page (keyset order createdAt, id descending).',
    path: ['offset'],
  })
  .refine(
    (q) => !q.createdFrom || !q.createdTo || Date.parse(q.createdFrom) <= Date.parse(q.createdTo),
    {
      message: 'createdFrom is after createdTo; swap them',
      path: ['createdFrom'],
    },
  );

const AttemptSchema = z
  .object({
    number: z.int().positive(),
    workerId: z.string(),
    status: AttemptStatusSchema,
    error: orNull(StepErrorSchema),
    startedAt: Timestamp,
    finishedAt: NullableTimestamp,
    durationMs: z
      .int()
      .nullable()
      .openapi({ description: 'finishedAt − startedAt; null while running.' }),
  })
  .openapi('Attempt');

export const StepRunSchema = z
  .object({
    id: z.string(),
    stepId: z.string(),
    stepKey: z.string().openapi({ description: 'The step id, or `step[i]` for a loop iteration.' }),
    status: StepRunStatusSchema,
    attemptCount: z.int(),
    maxAttempts: z.int(),
    inputDataclipId: z.string().nullable(),
    inputHash: z.string().nullable(),
    outputDataclipId: z.string().nullable(),
    reusedFrom: z.object({ runId: z.string(), stepRunId: z.string() }).nullable().openapi({
      description:
        'For a rerun: the earlier run and step run whose result this one reuses by reference (listed even when the rerun wrote no row of its own for it).',
    }),
    scopeKey: z.string().nullable().openapi({
      description: 'The loop or parallel step run whose body holds it; null at the top level.',
    }),
    iteration: z.int().nullable().openapi({ description: 'Its iteration or branch index.' }),
    statePatch: z
      .object({
        set: z.record(z.string(), z.unknown()).nullable(),
        delete: z.array(z.string()).nullable(),
      })
      .nullable()
      .openapi({ description: 'What its commit changed in the run state; null when nothing.' }),
    error: orNull(StepErrorSchema),
    attempts: z.array(AttemptSchema),
    createdAt: Timestamp,
    startedAt: NullableTimestamp,
    finishedAt: NullableTimestamp,
    durationMs: z.int().nullable().openapi({ description: 'finishedAt − startedAt.' }),
  })
  .openapi('StepRun');

export const StepRunListSchema = z.object({ data: z.array(StepRunSchema) }).openapi('StepRunList');

// ---------------------------------------------------------------------------------------------
// Dataclips

export const DataclipSchema = z
  .object({
    id: z.string(),
    runId: z.string().nullable(),
    kind: DataclipKindSchema,
    body: z.unknown().openapi({
      description:
        'The JSON value; null once wiped (or never stored when the project does not save dataclips).',
    }),
    sizeBytes: z.int(),
    wipedAt: NullableTimestamp,
    createdAt: Timestamp,
  })
  .openapi('Dataclip');

export const DataclipParamsSchema = z.object({
  dataclipId: dbText().openapi({
    param: { name: 'dataclipId', in: 'path' },
    example: 'dc_a001jh8k2m3n4p5q6r7s8t9v0w1x',
  }),
});

// ---------------------------------------------------------------------------------------------
// Run events (SSE) and run control

export const RunEventSchema = z
  .object({
    id: z.string().openapi({
      description: 'The event id (also the SSE `id:`); increasing within a run.',
      example: '42',
    }),
    runId: z.string(),
    kind: z.string().openapi({
      description:
        '`run.created`, `step.started`, `step.succeeded`, `step.retrying`, `step.failed`, `step.pruned`, `step.waiting`, `waitpoint.completed`, `run.succeeded`, `run.failed`, `run.canceled`, `run.paused`, `run.resumed`, …',
      example: 'step.succeeded',
    }),
    stepKey: z.string().nullable(),
    attempt: z.int().nullable(),
    data: z.unknown().openapi({ description: 'Details of the transition (errors, dataclip ids).' }),
    createdAt: Timestamp,
  })
  .openapi('RunEvent');

export const RunEventsQuerySchema = z.strictObject({
  lastEventId: dbText()
    .optional()
    .openapi({
      param: { name: 'lastEventId', in: 'query' },
      description:
        'Resume after this event id, for clients that cannot send the `Last-Event-ID` header (the header wins when both are sent).',
    }),
});

export const ResumeRunBodySchema = z
  .strictObject({
    version: z.enum(['original', 'current']).optional().openapi({
      description:
        '`original` (default) resumes on the version the run started with; `current` moves it to the workflow’s current version (after a fix was deployed), which must have the same steps.',
    }),
  })
  .openapi('ResumeRunRequest');

export const CompleteWaitpointBodySchema = z
  .strictObject({
    payload: z.unknown().optional().openapi({
      description: 'Any JSON value (default null); checked against the approval’s schema.',
    }),
  })
  .openapi('CompleteWaitpointRequest');

export const WaitpointSchema = z
  .object({
    token: z.string().openapi({ example: 'wp_a001jh8k2m3n4p5q6r7s8t9v0w1x' }),
    runId: z.string(),
    stepKey: z.string(),
    kind: z.enum(['sleep', 'approval', 'child_run']),
    status: z.enum(['waiting', 'completed', 'timed_out', 'canceled']),
    resumeAt: NullableTimestamp.openapi({
      description: 'A sleep: when it ends. An approval: when it times out.',
    }),
    payloadSchema: z
      .record(z.string(), z.unknown())
      .nullable()
      .openapi({ description: 'JSON Schema the completion payload must match.' }),
    payloadDataclipId: z.string().nullable(),
    childRunId: z.string().nullable(),
    createdAt: Timestamp,
    completedAt: NullableTimestamp,
  })
  .openapi('Waitpoint');

export const WaitpointListSchema = z
  .object({ data: z.array(WaitpointSchema) })
  .openapi('WaitpointList');

export const WaitpointParamsSchema = z.object({
  token: dbText().openapi({
    param: { name: 'token', in: 'path' },
    example: 'wp_a001jh8k2m3n4p5q6r7s8t9v0w1x',
  }),
});
