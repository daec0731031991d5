/**
 * `GET /api/v1/metrics/...`: run analytics of the key's environment — runs per status over time,
 * failure rate, run duration, step duration and queue wait percentiles (per workflow, per step).
 * Answered by ClickHouse when the analytics mirror is configured (as fresh as its replication lag,
 * `weft_analytics_lag_seconds`), else by PostgreSQL (the same answers, read from every location;
 * slower at scale). Every answer says which (`source`). docs/analytics.md.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { ID_PATTERN } from '../../core/graph.js';
import { RUN_STATUSES } from '../../store/rows.js';
import { dbText } from '../db-text.js';
import { errorResponses, jsonContent, requiresKey } from '../openapi.js';
import type { ServerApp, ServerDeps } from '../types.js';
import type { MetricsQuery } from '../../analytics/run-analytics.js';

const RunStatusSchema = z.enum(RUN_STATUSES);

const Time = z.iso
  .datetime({ offset: true, error: 'expected an ISO 8601 date-time such as 2025-01-31T09:30:00Z' })
  .refine((v) => !v.startsWith('0000'), {
    error: 'year 0000 does not exist; the earliest is 0001',
  });

const base = {
  workflowId: dbText()
    .regex(ID_PATTERN, 'not a workflow id (letters, digits, "_", "." and "-", at most 100)')
    .optional()
    .openapi({ param: { name: 'workflowId', in: 'query' }, example: 'onboarding' }),
  from: Time.optional().openapi({
    param: { name: 'from', in: 'query' },
    description: 'Runs (or step runs) created at or after this instant (ISO 8601).',
  }),
  to: Time.optional().openapi({
    param: { name: 'to', in: 'query' },
    description: 'Created before this instant (ISO 8601, exclusive).',
  }),
};
const ordered = <T extends { from?: string | undefined; to?: string | undefined }>(q: T) =>
  !q.from || !q.to || Date.parse(q.from) <= Date.parse(q.to);
const orderMessage = { message: 'from is after to; swap them', path: ['from'] };

const MetricsQuerySchema = z.strictObject(base).refine(ordered, orderMessage);
const RunsOverTimeQuerySchema = z
  .strictObject({
    ...base,
    bucket: z
      .enum(['minute', 'hour', 'day'])
      .default('hour')
      .openapi({
        param: { name: 'bucket', in: 'query' },
        description: 'Bucket width (UTC, from the Unix epoch). Default `hour`.',
      }),
  })
  .refine(ordered, orderMessage);

const Source = z.enum(['clickhouse', 'postgres']).openapi({
  description:
    '`clickhouse`: the analytics mirror answered (as fresh as its replication lag); `postgres`: the run tables did.',
});
const PercentileFields = {
  count: z.int().openapi({ description: 'Values the percentiles are taken over.' }),
  p50Ms: z.number().nullable(),
  p95Ms: z.number().nullable(),
  p99Ms: z.number().nullable().openapi({
    description:
      'Nearest-rank percentile (the ⌈p·n/100⌉-th smallest value), in milliseconds, microsecond precision.',
  }),
};

const RunsOverTimeSchema = z
  .object({
    source: Source,
    bucket: z.enum(['minute', 'hour', 'day']),
    data: z.array(z.object({ bucketStart: z.string(), status: RunStatusSchema, count: z.int() })),
  })
  .openapi('RunsOverTime');
const FailureRateSchema = z
  .object({
    source: Source,
    data: z.array(
      z.object({
        workflowId: z.string(),
        finished: z.int().openapi({ description: 'Runs succeeded, failed or canceled.' }),
        failed: z.int(),
        failureRate: z
          .number()
          .openapi({ description: 'failed / finished (0 when none finished).' }),
      }),
    ),
  })
  .openapi('FailureRate');
const WorkflowPercentilesSchema = (name: string) =>
  z
    .object({
      source: Source,
      data: z.array(z.object({ workflowId: z.string(), ...PercentileFields })),
    })
    .openapi(name);
const StepPercentilesSchema = z
  .object({
    source: Source,
    data: z.array(z.object({ workflowId: z.string(), stepId: z.string(), ...PercentileFields })),
  })
  .openapi('StepDurations');

const common = (summary: string, description: string) => ({
  method: 'get' as const,
  tags: ['Metrics'],
  summary,
  description: `${description} Answered by ClickHouse when the analytics mirror is configured (fresh to its replication lag), else by PostgreSQL; \`source\` says which.`,
  security: requiresKey,
});

const runsOverTime = createRoute({
  ...common(
    'Runs per status over time',
    'Runs created in each time bucket, by their current status.',
  ),
  path: '/api/v1/metrics/runs',
  operationId: 'metricsRunsOverTime',
  request: { query: RunsOverTimeQuerySchema },
  responses: {
    200: jsonContent(RunsOverTimeSchema, 'Counts per bucket and status.'),
    ...errorResponses(400, 401),
  },
});
const failureRate = createRoute({
  ...common(
    'Failure rate per workflow',
    'Of the runs created in the range that ended, how many failed, per workflow.',
  ),
  path: '/api/v1/metrics/failure-rate',
  operationId: 'metricsFailureRate',
  request: { query: MetricsQuerySchema },
  responses: {
    200: jsonContent(FailureRateSchema, 'Per workflow.'),
    ...errorResponses(400, 401),
  },
});
const durations = createRoute({
  ...common(
    'Run duration percentiles per workflow',
    'From start to end of the runs that ended (started_at to finished_at), per workflow.',
  ),
  path: '/api/v1/metrics/durations',
  operationId: 'metricsRunDurations',
  request: { query: MetricsQuerySchema },
  responses: {
    200: jsonContent(WorkflowPercentilesSchema('RunDurations'), 'Per workflow.'),
    ...errorResponses(400, 401),
  },
});
const stepDurations = createRoute({
  ...common(
    'Step duration percentiles per workflow and step',
    'From first claim to end of each step run that ran user code (steps and routers; rows a rerun reused are not counted), per workflow and step; loop iterations and branches count once each.',
  ),
  path: '/api/v1/metrics/step-durations',
  operationId: 'metricsStepDurations',
  request: { query: MetricsQuerySchema },
  responses: {
    200: jsonContent(StepPercentilesSchema, 'Per workflow and step.'),
    ...errorResponses(400, 401),
  },
});
const queueWait = createRoute({
  ...common(
    'Queue wait percentiles per workflow',
    'From a run’s creation to its first claim (created_at to started_at), per workflow.',
  ),
  path: '/api/v1/metrics/queue-wait',
  operationId: 'metricsQueueWait',
  request: { query: MetricsQuerySchema },
  responses: {
    200: jsonContent(WorkflowPercentilesSchema('QueueWait'), 'Per workflow.'),
    ...errorResponses(400, 401),
  },
});

export function registerAnalyticsRoutes(app: ServerApp, deps: ServerDeps): void {
  const query = (
    environmentId: string,
    q: { workflowId?: string | undefined; from?: string | undefined; to?: string | undefined },
  ): MetricsQuery => {
    const out: MetricsQuery = { environmentId };
    if (q.workflowId !== undefined) out.workflowId = q.workflowId;
    if (q.from !== undefined) out.from = q.from;
    if (q.to !== undefined) out.to = q.to;
    return out;
  };
  const analytics = deps.analytics;
  app.openapi(runsOverTime, async (c) => {
    const q = c.req.valid('query');
    const data = await analytics.runsOverTime({
      ...query(c.get('identity').environmentId, q),
      bucket: q.bucket,
    });
    return c.json({ source: analytics.source, bucket: q.bucket, data }, 200);
  });
  app.openapi(failureRate, async (c) => {
    const data = await analytics.failureRate(
      query(c.get('identity').environmentId, c.req.valid('query')),
    );
    return c.json({ source: analytics.source, data }, 200);
  });
  app.openapi(durations, async (c) => {
    const data = await analytics.runDurations(
      query(c.get('identity').environmentId, c.req.valid('query')),
    );
    return c.json({ source: analytics.source, data }, 200);
  });
  app.openapi(stepDurations, async (c) => {
    const data = await analytics.stepDurations(
      query(c.get('identity').environmentId, c.req.valid('query')),
    );
    return c.json({ source: analytics.source, data }, 200);
  });
  app.openapi(queueWait, async (c) => {
    const data = await analytics.queueWait(
      query(c.get('identity').environmentId, c.req.valid('query')),
    );
    return c.json({ source: analytics.source, data }, 200);
  });
}
