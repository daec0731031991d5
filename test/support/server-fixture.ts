/**
 * A server over a real database with the tenants the key matrix needs: environment A (the one
 * under test, with a running engine), a sibling environment in A's project, an environment of
 * another organization, and keys of every kind — valid, revoked, malformed, missing.
 */
import { pino, type Logger } from 'pino';
import type { AnyWorkflow } from '../../src/engine/registry.js';
import { Engine } from '../../src/engine/engine.js';
import { silentLogger } from '../../src/engine/logger.js';
import type { WorkerOptions } from '../../src/engine/worker.js';
import { createApp, type ServerApp } from '../../src/server/index.js';
import type { Backend, TestDatabase } from './databases.js';
import { openTestDatabase } from './databases.js';
import { startTestEngine } from './engine.js';

export interface Caller {
  name: string;
  headers: Record<string, string>;
}

export interface ServerFixture {
  db: TestDatabase;
  app: ServerApp;
  /** Environment A's engine. */
  engine: Engine;
  environmentId: string;
  keyId: string;
  /** Authorization (and JSON content type) for environment A. */
  auth: Record<string, string>;
  /** The same project, another environment; its engine has the same workflows registered. */
  sibling: { environmentId: string; auth: Record<string, string>; engine: Engine };
  /** Another organization and project. */
  foreign: { environmentId: string; auth: Record<string, string> };
  /** Callers that must get 401 on every /api/v1 route, with the `details.reason` expected. */
  unauthorized: Array<Caller & { reason: string }>;
  /** Log lines the app wrote (JSON objects), when `captureLogs` was set. */
  logs: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

export const bearer = (token: string): Record<string, string> => ({
  authorization: `Bearer ${token}`,
  'content-type': 'application/json',
});

export async function openServerFixture(
  backend: Backend,
  workflows: readonly AnyWorkflow[],
  options: { worker?: WorkerOptions | false; maxBodyBytes?: number; saveDataclips?: boolean } = {},
): Promise<ServerFixture> {
  const db = await openTestDatabase(backend);
  const engineOptions: Parameters<typeof startTestEngine>[2] = { worker: options.worker ?? {} };
  if (options.saveDataclips !== undefined) engineOptions.saveDataclips = options.saveDataclips;
  const engine = await startTestEngine(db.stores, workflows, engineOptions);
  const control = db.stores.control;
  const env = (await control.getEnvironment(engine.environmentId))!;
  const key = await control.createApiKey(engine.environmentId, 'server test');

  const siblingEnv = await control.createEnvironment(env.projectId, 'staging');
  const siblingKey = await control.createApiKey(siblingEnv);
  const siblingEngine = await Engine.start({
    stores: db.stores,
    environmentId: siblingEnv,
    workflows,
    worker: false,
    reaperIntervalMs: false,
    logger: silentLogger(),
  });

  const foreignTenant = await control.createTenant({
    organization: 'other-org',
    project: 'other-project',
    environment: 'test',
  });
  const foreignKey = await control.createApiKey(foreignTenant.environmentId);

  const revoked = await control.createApiKey(engine.environmentId, 'revoked');
  await control.revokeApiKey(revoked.id);

  const logs: Array<Record<string, unknown>> = [];
  const logger: Logger = pino(
    { level: 'debug' },
    { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) },
  );
  const appOptions: Parameters<typeof createApp>[0] = { stores: db.stores, logger };
  if (options.maxBodyBytes !== undefined) appOptions.maxBodyBytes = options.maxBodyBytes;
  const app = createApp(appOptions);

  const randomLooking = `weft_test_${'A'.repeat(32)}`;
  return {
    db,
    app,
    engine,
    environmentId: engine.environmentId,
    keyId: key.id,
    auth: bearer(key.token),
    sibling: { environmentId: siblingEnv, auth: bearer(siblingKey.token), engine: siblingEngine },
    foreign: { environmentId: foreignTenant.environmentId, auth: bearer(foreignKey.token) },
    unauthorized: [
      { name: 'no key', headers: { 'content-type': 'application/json' }, reason: 'missing_key' },
      { name: 'revoked key', headers: bearer(revoked.token), reason: 'unknown_key' },
      { name: 'unknown key', headers: bearer(randomLooking), reason: 'unknown_key' },
      { name: 'truncated key', headers: bearer(key.token.slice(0, -1)), reason: 'unknown_key' },
      { name: 'not a weft key', headers: bearer('sk_live_abc'), reason: 'malformed_key' },
      {
        name: 'basic auth',
        headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` },
        reason: 'malformed_header',
      },
      {
        name: 'raw key without Bearer',
        headers: { authorization: key.token },
        reason: 'malformed_header',
      },
    ],
    logs,
    async close() {
      await siblingEngine.stop();
      await engine.stop();
      await db.close();
    },
  };
}

/** `app.request` with a JSON body, returning the status, headers and parsed body. */
export async function call(
  app: ServerApp,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: unknown,
  // The body's shape is what the test asserts on; `any` keeps those assertions readable.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
): Promise<{ status: number; headers: Headers; body: any }> {
  const init: RequestInit = { method, headers };
  if (body !== undefined) init.body = typeof body === 'string' ? body : JSON.stringify(body);
  const res = await app.request(path, init);
  const text = await res.text();
  const contentType = res.headers.get('content-type') ?? '';
  return {
    status: res.status,
    headers: res.headers,
    body: contentType.includes('json') && text !== '' ? JSON.parse(text) : text,
  };
}

/** Every run of an environment, through the store (not the API under test). */
export async function allRunIds(db: TestDatabase, environmentId: string): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | undefined;
  for (;;) {
    const query: Parameters<TestDatabase['stores']['runs']['listRuns']>[0] = {
      environmentId,
      limit: 100,
    };
    if (cursor !== undefined) query.cursor = cursor;
    const page = await db.stores.runs.listRuns(query);
    ids.push(...page.data.map((r) => r.id));
    if (!page.nextCursor) return ids;
    cursor = page.nextCursor;
  }
}
