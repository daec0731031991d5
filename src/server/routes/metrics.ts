/**
 * `GET /metrics`: Prometheus text format. Two sources:
 * - the in-process registry the worker and the reaper of this process count into (claim latency,
 *   step durations, successes, failures, retries, fenced commits, reaped attempts);
 * - the database at scrape time (queue depth, delayed and running step runs, active runs), so
 *   every server reports the same numbers whichever process did the work. Two grouped counts per
 *   location, nothing per step.
 *
 * No API key, as Prometheus scrapers expect — and the numbers name environments and workflows:
 * operators should keep `/metrics` off the public internet (bind it to an internal network, or
 * block the path at the proxy), or turn it off with `createApp({ metrics: false })`.
 */
import { metricsSnapshot } from '../../engine/run-views.js';
import { createRoute, z } from '@hono/zod-openapi';
import { Hono } from 'hono';
import {
  renderFamily,
  trackListeners,
  type MetricsRegistry,
  type Sample,
} from '../../engine/metrics.js';
import type { ListenerHealth } from '../../store/executor.js';
import type { ServerApp, ServerDeps } from '../types.js';

/** A scrape must not hang on a slow database: past this, its part is reported as down. */
export const METRICS_DB_TIMEOUT_MS = 2_000;

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const metrics = createRoute({
  method: 'get',
  path: '/metrics',
  operationId: 'metrics',
  tags: ['Health'],
  summary: 'Prometheus metrics',
  description:
    'Prometheus text format (0.0.4): queue depth, running step runs and active runs by workflow (from the database), and this process’s claim latency, step durations, failures, retries and reaped attempts. No API key: do not expose it publicly.',
  responses: {
    200: {
      description: 'The metrics.',
      content: { 'text/plain': { schema: z.string() } },
    },
  },
});

export function registerMetricsRoutes(
  app: ServerApp,
  deps: ServerDeps,
  registry: MetricsRegistry,
): void {
  // weft_listener_connected / weft_listener_reconnects_total: the LISTEN connection this
  // server's live events and run waits use (the same executor as a worker's of this process).
  trackListeners(registry, [{ database: 'run_ops', db: deps.stores.runOpsDb }]);
  app.openapi(metrics, async (c) => {
    const database = await databaseMetrics(deps).catch((error: unknown) => {
      deps.logger.warn({ err: error }, 'metrics: the database part of the scrape failed');
      return undefined;
    });
    const up = renderFamily(
      'weft_metrics_database_up',
      'gauge',
      'Whether the database answered this scrape (1) or not (0: the database gauges are missing).',
      [{ labels: {}, value: database === undefined ? 0 : 1 }],
    );
    return c.text(up + (database ?? '') + registry.render(), 200, {
      'Content-Type': PROMETHEUS_CONTENT_TYPE,
      'Cache-Control': 'no-store',
    });
  });
}

/**
 * `GET /metrics` alone, for a process that serves no API (`weft worker --metrics-port`): this
 * process's counters and histograms only. The database gauges come from the API servers — N
 * workers each counting the queue would cost N queries per scrape and report the same numbers N
 * times.
 */
export function createMetricsApp(
  registry: MetricsRegistry,
  options: {
    /** `GET /readyz`: 503 with a reason while the worker's LISTEN connection is down. */
    listener?: () => ListenerHealth | undefined;
  } = {},
): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', (c) => {
    const health = options.listener?.();
    if (health?.state !== 'down') return c.json({ status: 'ready' });
    return c.json(
      {
        status: 'not_ready',
        reason: 'listener_down',
        message: `The LISTEN connection has been down for ${Date.now() - health.since.getTime()} ms (reconnecting with backoff, ${health.failedAttempts} failed attempts): wake-ups and cancels fall back to polling until it is back.`,
      },
      503,
    );
  });
  app.get('/metrics', (c) =>
    c.text(registry.render(), 200, {
      'Content-Type': PROMETHEUS_CONTENT_TYPE,
      'Cache-Control': 'no-store',
    }),
  );
  app.notFound((c) => c.text('Only GET /metrics, /healthz and /readyz are served here.\n', 404));
  return app;
}

async function databaseMetrics(deps: ServerDeps): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`the database did not answer within ${METRICS_DB_TIMEOUT_MS} ms`)),
      METRICS_DB_TIMEOUT_MS,
    );
  });
  const snapshot = await Promise.race([metricsSnapshot(deps.stores.runs), timeout]).finally(() =>
    clearTimeout(timer),
  );
  const steps = (state: 'ready' | 'delayed' | 'running'): Sample[] =>
    snapshot.steps
      .filter((s) => s.state === state)
      .map((s) => ({
        labels: { environment: s.environmentId, workflow: s.workflowId },
        value: s.count,
      }));
  return [
    renderFamily(
      'weft_queue_depth',
      'gauge',
      'Step runs ready to be claimed now, by environment and workflow.',
      steps('ready'),
    ),
    renderFamily(
      'weft_step_runs_delayed',
      'gauge',
      'Step runs ready but not due yet (retry backoff), by environment and workflow.',
      steps('delayed'),
    ),
    renderFamily(
      'weft_step_runs_running',
      'gauge',
      'Step runs claimed by a worker (running), by environment and workflow.',
      steps('running'),
    ),
    renderFamily(
      'weft_runs_active',
      'gauge',
      'Runs queued, running, waiting or paused, by environment, workflow and status.',
      snapshot.runs.map((r) => ({
        labels: { environment: r.environmentId, workflow: r.workflowId, status: r.status },
        value: r.count,
      })),
    ),
  ].join('');
}
