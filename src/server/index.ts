/**
 * The HTTP API server: `createApp` builds the Hono app over a set of stores, `startServer`
 * serves it.
 *
 * @example
 * import { createApp, startServer } from './server/index.js';
 * const server = await startServer(createApp({ stores }), { port: 3000 });
 */
export { createApp, type CreateAppOptions } from './app.js';
export {
  createRequestListener,
  createServer,
  startServer,
  type CreateServerOptions,
  type RunningServer,
  type StartServerOptions,
} from './serve.js';
export { requestLogFields } from './edge.js';
export { DEFAULT_MAX_BODY_BYTES } from './body.js';
export { statusForCode, type ApiErrorCode, type ErrorBody } from './errors.js';
export type { AppEnv, ServerApp } from './types.js';
