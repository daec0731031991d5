/**
 * The HTTP API as a Hono app: probes, the OpenAPI document and its browsable page, and the v1
 * routes behind bearer authentication. `createApp` wires; each route module owns its routes.
 */
import { OpenAPIHono } from '@hono/zod-openapi';
import { methodNotAllowed } from 'hono/method-not-allowed';
import { requestId } from 'hono/request-id';
import { createLogger, type Logger } from '../engine/logger.js';
import { processMetrics, type MetricsRegistry } from '../engine/metrics.js';
import type { Stores } from '../store/stores.js';
import { documentScopes, requireApiKey, requireScope, watchControlChanges } from './auth.js';
import { DEFAULT_MAX_BODY_BYTES } from './body.js';
import { rateLimitPerKey, type RateLimit } from './rate-limit.js';
import {
  clientAddress,
  clientProtocol,
  corsFor,
  createDrainSignal,
  drainGate,
  requestDeadline,
  withRequestContext,
} from './edge.js';
import { defaultDashboardDir, serveDashboard, type DashboardOptions } from './dashboard-assets.js';
import { renderDocsPage, type DocsDocument } from './docs-page.js';
import { errorBody, toErrorResponse, validationError } from './errors.js';
import { BEARER_AUTH, DOCUMENT_INFO, registerSecurityScheme } from './openapi.js';
import { registerAdminRoutes } from './routes/admin.js';
import { registerAuditRoutes } from './routes/audit.js';
import { registerAnalyticsRoutes } from './routes/analytics.js';
import { PostgresRunAnalytics, type RunAnalytics } from '../analytics/run-analytics.js';
import { registerDataclipRoutes } from './routes/dataclips.js';
import { registerEventRoutes, type LiveEventsOptions } from './routes/events.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerMetricsRoutes } from './routes/metrics.js';
import { registerRunControlRoutes } from './routes/run-control.js';
import { registerBulkRerunRoutes } from './routes/bulk-reruns.js';
import { registerRerunRoutes } from './routes/rerun.js';
import { registerRunRoutes } from './routes/runs.js';
import { registerScheduleRoutes } from './routes/schedules.js';
import { registerWebhookRoutes } from './routes/webhooks.js';
import { registerWorkflowRoutes } from './routes/workflows.js';
import type { AppEnv, ServerApp, ServerDeps } from './types.js';

export interface CreateAppOptions {
  stores: Stores;
  /** Access and error logs. Default: a pino logger named `weft-server`. */
  logger?: Logger;
  /** Largest request body accepted, in bytes. Default 10 MiB (the run input limit) + 64 KiB. */
  maxBodyBytes?: number;
  /** Run event streams (SSE): fallback poll and keep-alive intervals. */
  liveEvents?: LiveEventsOptions;
  /**
   * What `GET /metrics` serves besides the database gauges: the registry the engine of this
   * process counts into (default: the process registry). `false` removes the route.
   */
  metrics?: MetricsRegistry | false;
  /**
   * Origins a browser may call the API from (CORS), e.g. `https://admin.example.com`; `'*'`
   * allows any. `OPTIONS` preflights are answered before authentication. Default: none, and no
   * CORS headers at all.
   */
  corsOrigins?: readonly string[];
  /**
   * Read the client's address and scheme from `X-Forwarded-For` / `X-Forwarded-Proto` (for the
   * access log). Only behind a proxy that sets them: otherwise clients can forge them. Default false.
   */
  trustProxy?: boolean;
  /**
   * A handler that has not answered within this many ms gets `503 request_timeout` (an event
   * stream counts as answered once it starts). Default: no deadline.
   */
  requestTimeoutMs?: number;
  /**
   * Aborted when the process is shutting down: event streams end with a reconnect hint (clients
   * resume on another process with `Last-Event-ID`), `/readyz` answers 503 and responses close
   * their connections. `RunningServer.close()` does the same for the app it serves; pass a
   * signal when the app is mounted in a server of your own.
   */
  shutdownSignal?: AbortSignal;
  /**
   * The web dashboard at `/` (GET outside /api, /hooks and the probes). Default: the build
   * shipped with the package (`dist/dashboard`); `false` serves none.
   */
  dashboard?: DashboardOptions | false;
  /**
   * Requests per API key (token bucket, in this process: N processes allow N × the limit).
   * Over it: 429 `rate_limited` with `Retry-After`. Default: no limit.
   */
  rateLimit?: RateLimit;
  /**
   * The analytics mirror (docs/analytics.md): `new ClickhouseRunAnalytics(clickhouse)` answers the
   * filtered runs list and `/api/v1/metrics/*` from ClickHouse. Default: PostgreSQL answers them.
   */
  analytics?: RunAnalytics;
  /**
   * Where `GET /api/v1/runs` is answered when `analytics` is ClickHouse. Default `postgres`: its
   * keyset indexes serve every filter the list has (status, workflow, time range) in a few ms at
   * 1,000,000 runs, where ClickHouse 18.16 needs a FINAL merge of the environment's range (1–4 s,
   * bench/RESULTS.md, issue 12). `clickhouse` takes that read off the database workers commit to,
   * fresh to the replication lag. Metrics always come from `analytics`.
   */
  runsListFrom?: 'postgres' | 'analytics';
}

const PROBE_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * Build the API. The app holds no state of its own beyond the stores it is given, so several
 * apps (or processes) can serve the same databases.
 *
 * @example
 * const app = createApp({ stores });
 * const server = await startServer(app, { port: 3000 });
 * // GET http://127.0.0.1:3000/api/docs
 */
export function createApp(options: CreateAppOptions): ServerApp {
  const deps: ServerDeps = {
    stores: options.stores,
    logger: options.logger ?? createLogger({ name: 'weft-server' }),
    maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    analytics: options.analytics ?? new PostgresRunAnalytics(options.stores.runs),
    runsListFromAnalytics: options.runsListFrom === 'analytics',
  };
  const { logger } = deps;

  const app: ServerApp = new OpenAPIHono<AppEnv>({
    // Schema violations become the error envelope (400) instead of zod's raw result.
    defaultHook: (result) => {
      if (!result.success) {
        throw validationError(
          result.target === 'json' ? 'body' : result.target === 'query' ? 'query' : 'path',
          result.error,
        );
      }
    },
  });

  const drainSignal = createDrainSignal(app, options.shutdownSignal);
  const trustProxy = options.trustProxy ?? false;
  app.use(requestId());
  app.use(async (c, next) => {
    const started = performance.now();
    // Every line logged while serving the request carries its id (requestLogFields).
    await withRequestContext(c.get('requestId'), next);
    c.header('X-Content-Type-Options', 'nosniff');
    const fields = {
      requestId: c.get('requestId'),
      method: c.req.method,
      // A webhook id is a capability: logs keep only its time-ordered head.
      path: c.req.path.replace(/^(\/hooks\/hook_[0-9a-z]{10})[^/]*/, '$1…'),
      status: c.res.status,
      durationMs: Math.round((performance.now() - started) * 10) / 10,
      environmentId: c.get('identity')?.environmentId,
      ip: clientAddress(c, trustProxy),
      ...(trustProxy ? { protocol: clientProtocol(c, true) } : {}),
    };
    if (PROBE_PATHS.has(c.req.path)) logger.debug(fields, 'http request');
    else logger.info(fields, 'http request');
  });
  app.use(drainGate(drainSignal));
  if (options.corsOrigins?.length) app.use(corsFor(options.corsOrigins));
  if (options.requestTimeoutMs !== undefined) app.use(requestDeadline(options.requestTimeoutMs));
  if (options.dashboard !== false)
    app.use(serveDashboard(options.dashboard ?? { dir: defaultDashboardDir() }));
  app.use(
    methodNotAllowed({
      app,
      onMethodNotAllowed: (c, methods) =>
        c.json(
          errorBody(
            'method_not_allowed',
            `${c.req.method} is not supported on ${c.req.path}; it accepts ${methods.join(', ')}.`,
            { allowed: methods },
          ),
          405,
          { Allow: methods.join(', ') },
        ),
    }),
  );
  app.use(
    '/api/v1/*',
    watchControlChanges(deps.stores.control, logger),
    requireApiKey(deps.stores.control),
    ...(options.rateLimit ? [rateLimitPerKey(options.rateLimit)] : []),
    // One place decides what each key scope may call: ROUTE_SCOPES in auth.ts.
    requireScope(),
  );
  app.use('/api/v1/*', async (c, next) => {
    await next();
    // Tenant data: never to be kept by shared caches.
    c.header('Cache-Control', 'no-store');
  });

  registerSecurityScheme(app);
  registerHealthRoutes(app, deps);
  registerWorkflowRoutes(app, deps);
  registerRunRoutes(app, deps);
  registerRunControlRoutes(app, deps);
  registerRerunRoutes(app, deps);
  registerBulkRerunRoutes(app, deps);
  registerEventRoutes(app, deps, options.liveEvents, drainSignal);
  registerDataclipRoutes(app, deps);
  registerScheduleRoutes(app, deps);
  registerWebhookRoutes(app, deps);
  registerAdminRoutes(app, deps);
  registerAuditRoutes(app, deps);
  registerAnalyticsRoutes(app, deps);
  if (options.metrics !== false)
    registerMetricsRoutes(app, deps, options.metrics ?? processMetrics);

  // Generated on first request: the routes are all registered by then and never change.
  let document: ReturnType<ServerApp['getOpenAPI31Document']> | undefined;
  let docsPage: string | undefined;
  const getDocument = () =>
    (document ??= documentScopes(app.getOpenAPI31Document(DOCUMENT_INFO), BEARER_AUTH));
  app.get('/api/openapi.json', (c) => c.json(getDocument()));
  app.get('/api/docs', (c) => {
    // The generator's document type is wider than the page reads; DocsDocument is that subset.
    docsPage ??= renderDocsPage(getDocument() as unknown as DocsDocument);
    c.header(
      'Content-Security-Policy',
      "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    );
    return c.html(docsPage);
  });

  app.notFound((c) =>
    c.json(
      errorBody(
        'not_found',
        `No route ${c.req.method} ${c.req.path}. The API is described at /api/docs (and /api/openapi.json).`,
      ),
      404,
    ),
  );

  app.onError((error, c) => {
    const requestId = c.get('requestId');
    const { status, body, unexpected } = toErrorResponse(error, requestId);
    if (unexpected) {
      logger.error(
        { err: error, requestId, method: c.req.method, path: c.req.path },
        'request failed unexpectedly',
      );
    } else if (status >= 500) {
      logger.warn(
        { requestId, code: body.error.code, message: body.error.message },
        'request not served',
      );
    }
    if (status === 401 && body.error.code === 'unauthorized')
      c.header('WWW-Authenticate', 'Bearer realm="weft"');
    return c.json(body, status);
  });

  return app;
}
