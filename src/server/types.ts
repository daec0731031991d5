import type { OpenAPIHono } from '@hono/zod-openapi';
import type { RequestIdVariables } from 'hono/request-id';
import type { Logger } from '../engine/logger.js';
import type { Stores } from '../store/stores.js';
import type { RunAnalytics } from '../analytics/run-analytics.js';
import type { AuthVariables } from './auth.js';

/** Context variables every handler can read: the request id, and after auth the key's identity. */
export type AppEnv = { Variables: AuthVariables & RequestIdVariables };

export type ServerApp = OpenAPIHono<AppEnv>;

/** What route modules receive: `createApp`'s options with defaults filled in. */
export interface ServerDeps {
  stores: Stores;
  logger: Logger;
  maxBodyBytes: number;
  /** Filtered run lists and /api/v1/metrics: ClickHouse when configured, else PostgreSQL. */
  analytics: RunAnalytics;
  /** `GET /api/v1/runs` from `analytics` (createApp's `runsListFrom: 'analytics'`). */
  runsListFromAnalytics: boolean;
}
