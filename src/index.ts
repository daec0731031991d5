/**
 * Weft's public SDK: define workflows, and embed the engine.
 *
 * @example
 * import { defineWorkflow } from 'weft';
 *
 * export default defineWorkflow<{ email: string }>('welcome')
 *   .step('send', async ({ email }, ctx) => mailer.send(email, { idempotencyKey: ctx.idempotencyKey }))
 *   .step('record', { after: 'send' }, (receipt) => ({ sent: receipt.id }));
 */
export { defineWorkflow, Workflow } from './core/workflow.js';
export type {
  StepContext,
  StepOptions,
  FailureInput,
  RunState,
  EdgeOn,
  StepLogger,
  WorkflowOptions,
} from './core/workflow.js';
export { ERROR_CODES, TerminalError, WeftError } from './core/errors.js';
export type { ErrorCodeSpec, StepErrorInfo, WeftErrorCode } from './core/errors.js';
export type { RetryPolicy, Duration } from './core/retry.js';
export { Engine } from './engine/engine.js';
export { ensureEnvironment } from './engine/tenant.js';
export type { EngineOptions } from './engine/engine.js';
export type { WorkerOptions } from './engine/worker.js';
// The HTTP API, to serve on its own or mount in your server (docs/embedding.md).
export {
  createApp,
  createRequestListener,
  createServer,
  requestLogFields,
  startServer,
} from './server/index.js';
export type {
  CreateAppOptions,
  CreateServerOptions,
  RunningServer,
  ServerApp,
  StartServerOptions,
} from './server/index.js';
export { createStores, openExecutor } from './store/stores.js';
export type { Stores, StoresOptions } from './store/stores.js';
export type {
  RunRecord,
  StepRunRecord,
  DataclipRecord,
  RunStatus,
  StepRunStatus,
} from './store/rows.js';
