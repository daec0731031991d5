/**
 * Everything around the routes: probes, the OpenAPI document and its page, unknown routes and
 * methods, request ids, unexpected errors, and serving over a real socket.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/engine/logger.js';
import { defineWorkflow } from '../src/index.js';
import { createApp, startServer } from '../src/server/index.js';
import { createPgliteExecutor } from '../src/store/pglite-executor.js';
import { createPgExecutor } from '../src/store/pg-executor.js';
import { createStores, type Stores } from '../src/store/stores.js';
import { BACKENDS, createPgDatabase, type Backend } from './support/databases.js';
import {
  allRunIds,
  call,
  openServerFixture,
  type ServerFixture,
} from './support/server-fixture.js';

const hello = defineWorkflow<unknown>('hello').step('s', () => 'hi');

/** Stores whose schemas were never migrated. */
async function unmigratedStores(
  backend: Backend,
): Promise<{ stores: Stores; close: () => Promise<void> }> {
  if (backend === 'pglite') {
    const stores = createStores({ control: await createPgliteExecutor() });
    return { stores, close: () => stores.close() };
  }
  const db = await createPgDatabase();
  const stores = createStores({ control: createPgExecutor({ connectionString: db.url, max: 2 }) });
  return {
    stores,
    close: async () => {
      await stores.close();
      await db.drop();
    },
  };
}

describe.each(BACKENDS)('probes on %s', (backend) => {
  let f: ServerFixture;
  beforeAll(async () => {
    f = await openServerFixture(backend, [hello], { worker: false });
  });
  afterAll(async () => {
    await f?.close();
  });

  it('answers liveness and readiness', async () => {
    expect(await call(f.app, 'GET', '/healthz', {})).toMatchObject({
      status: 200,
      body: { status: 'ok' },
    });
    expect(await call(f.app, 'GET', '/readyz', {})).toMatchObject({
      status: 200,
      body: { status: 'ready' },
    });
  });

  it('is not ready (503) on a database whose migrations were not applied', async () => {
    const { stores, close } = await unmigratedStores(backend);
    try {
      const app = createApp({ stores, logger: silentLogger() });
      const res = await call(app, 'GET', '/readyz', {});
      expect(res.status).toBe(503);
      expect(res.body.error).toMatchObject({
        code: 'not_ready',
        details: { reason: 'not_migrated' },
      });
      expect(res.body.error.message).toMatch(/migrat/);
      // Liveness does not depend on the database.
      expect((await call(app, 'GET', '/healthz', {})).status).toBe(200);
    } finally {
      await close();
    }
  });

  it('is not ready (503) once the database is gone', async () => {
    const { stores, close } = await unmigratedStores(backend);
    await stores.migrate();
    const app = createApp({ stores, logger: silentLogger() });
    expect((await call(app, 'GET', '/readyz', {})).status).toBe(200);
    await close();
    const res = await call(app, 'GET', '/readyz', {});
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('not_ready');
  });

  it('is not ready (503) when the database does not answer in time, without hanging', async () => {
    const hung: Stores = { ...f.db.stores, readiness: () => new Promise<never>(() => {}) };
    const app = createApp({ stores: hung, logger: silentLogger() });
    const started = Date.now();
    const res = await call(app, 'GET', '/readyz', {});
    expect(res.status).toBe(503);
    expect(res.body.error.details.reason).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe.each(BACKENDS)('the API description and the plumbing on %s', (backend) => {
  let f: ServerFixture;
  beforeAll(async () => {
    f = await openServerFixture(backend, [hello], { worker: false });
  });
  afterAll(async () => {
    await f?.close();
  });

  it('serves an OpenAPI 3.1 document of exactly the v1 routes, generated from the validating schemas', async () => {
    const res = await call(f.app, 'GET', '/api/openapi.json', {});
    expect(res.status).toBe(200);
    const doc = res.body;
    expect(doc.openapi).toBe('3.1.0');
    const operations = Object.entries(
      doc.paths as Record<
        string,
        Record<
          string,
          { operationId: string; security?: unknown[]; responses: Record<string, unknown> }
        >
      >,
    ).flatMap(([path, item]) =>
      Object.entries(item).map(([method, op]) => ({ path, method, ...op })),
    );
    expect(
      operations.map((o) => `${o.method.toUpperCase()} ${o.path} ${o.operationId}`).sort(),
    ).toEqual(
      [
        'GET /healthz healthz',
        'GET /readyz readyz',
        'GET /api/v1/workflows listWorkflows',
        'GET /api/v1/workflows/{workflowId} getWorkflow',
        'POST /api/v1/workflows/{workflowId}/runs triggerRun',
        'POST /api/v1/workflows/{workflowId}/runs/batch triggerRunBatch',
        'GET /api/v1/runs listRuns',
        'GET /api/v1/runs/{runId} getRun',
        'GET /api/v1/runs/{runId}/steps listStepRuns',
        'GET /api/v1/runs/{runId}/state getRunState',
        'GET /api/v1/runs/counts countRuns',
        'POST /api/v1/bulk-reruns createBulkRerun',
        'GET /api/v1/bulk-reruns/{id} getBulkRerun',
        'POST /api/v1/runs/{runId}/rerun rerunRun',
        'POST /api/v1/runs/{runId}/cancel cancelRun',
        'POST /api/v1/runs/{runId}/resume resumeRun',
        'GET /api/v1/runs/{runId}/events streamRunEvents',
        'GET /api/v1/runs/{runId}/waitpoints listWaitpoints',
        'POST /api/v1/waitpoints/{token}/complete completeWaitpoint',
        'GET /api/v1/dataclips/{dataclipId} getDataclip',
        'GET /api/v1/schedules listSchedules',
        'POST /api/v1/schedules createSchedule',
        'GET /api/v1/schedules/{scheduleId} getSchedule',
        'PATCH /api/v1/schedules/{scheduleId} updateSchedule',
        'DELETE /api/v1/schedules/{scheduleId} deleteSchedule',
        'POST /hooks/{webhookId} receiveWebhook',
        'GET /api/v1/webhooks listWebhooks',
        'POST /api/v1/webhooks createWebhook',
        'DELETE /api/v1/webhooks/{webhookId} deleteWebhook',
        'PATCH /api/v1/webhooks/{webhookId} updateWebhook',
        'GET /metrics metrics',
        'GET /api/v1/keys listApiKeys',
        'POST /api/v1/keys createApiKey',
        'POST /api/v1/keys/{keyId}/revoke revokeApiKey',
        'GET /api/v1/environments listEnvironments',
        'POST /api/v1/environments createEnvironment',
        'PATCH /api/v1/environments/{name} updateEnvironment',
        'DELETE /api/v1/environments/{name} deleteEnvironment',
        'GET /api/v1/projects listProjects',
        'POST /api/v1/projects createProject',
        'PATCH /api/v1/projects/{name} updateProject',
        'DELETE /api/v1/projects/{name} deleteProject',
        'GET /api/v1/organization getOrganization',
        'POST /api/v1/organization/cutover cutoverOrganization',
        'PATCH /api/v1/organization updateOrganization',
        'GET /api/v1/audit listAudit',
        'GET /api/v1/metrics/runs metricsRunsOverTime',
        'GET /api/v1/metrics/failure-rate metricsFailureRate',
        'GET /api/v1/metrics/durations metricsRunDurations',
        'GET /api/v1/metrics/step-durations metricsStepDurations',
        'GET /api/v1/metrics/queue-wait metricsQueueWait',
      ].sort(),
    );
    for (const op of operations) {
      const needsKey = op.path.startsWith('/api/v1/');
      expect({ op: op.operationId, secured: Boolean(op.security?.length) }).toEqual({
        op: op.operationId,
        secured: needsKey,
      });
      if (needsKey) expect(Object.keys(op.responses)).toContain('401');
    }
    expect(
      Object.keys(doc.paths['/api/v1/workflows/{workflowId}/runs'].post.responses).sort(),
    ).toEqual(['200', '201', '400', '401', '404', '409', '413', '415', '422'].sort());
    // The request schema is the strict zod object that validates bodies.
    const body = doc.components.schemas.TriggerRunRequest;
    expect(body.additionalProperties).toBe(false);
    expect(Object.keys(body.properties).sort()).toEqual([
      'idempotencyKey',
      'idempotencyKeyTTL',
      'input',
      'source',
    ]);
    expect(body.properties.idempotencyKey).toMatchObject({ minLength: 1, maxLength: 255 });
    expect(body.properties.source).toMatchObject({ enum: ['api', 'cli', 'dashboard'] });
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({
      type: 'http',
      scheme: 'bearer',
    });
    expect(doc.components.schemas.Error.properties.error.properties.code.enum).toEqual(
      expect.arrayContaining([
        'bad_request',
        'unauthorized',
        'not_found',
        'idempotency_conflict',
        'payload_too_large',
        'invalid_input',
        'internal',
      ]),
    );
    const status = doc.paths['/api/v1/runs'].get.parameters.find(
      (p: { name: string }) => p.name === 'status',
    );
    expect(status).toMatchObject({
      in: 'query',
      style: 'form',
      explode: true,
      schema: { type: 'array' },
    });
  });

  it('serves a self-contained docs page naming every operation', async () => {
    const res = await f.app.request('/api/docs');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await res.text();
    // Works offline: nothing is loaded from anywhere.
    expect(html).not.toMatch(/<script|<link|src=|@import|url\(/i);
    expect(html).not.toMatch(/https?:\/\//);
    for (const id of [
      'listWorkflows',
      'getWorkflow',
      'triggerRun',
      'listRuns',
      'getRun',
      'listStepRuns',
      'getDataclip',
      'healthz',
      'readyz',
    ]) {
      expect(html).toContain(`id="${id}"`);
    }
    expect(html).toContain('id="schema-TriggerRunRequest"');
    expect(html).toContain('<b>idempotencyKeyTTL</b>?');
    // Text from the schemas is escaped, not interpreted.
    expect(html).not.toContain('weft_<environment>');
    expect(html).toContain('weft_&#60;environment&#62;');
    // Nullable references read as such, not as intersections.
    expect(html).toContain(
      '<b>currentVersion</b>: <a href="#schema-WorkflowVersion">WorkflowVersion</a> | null',
    );
  });

  it('answers unknown routes with the error envelope (404) and wrong methods with 405 and Allow', async () => {
    const unknown = await call(f.app, 'GET', '/api/v2/anything', {});
    expect(unknown).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
    expect(unknown.body.error.message).toContain('/api/docs');
    const wrong = await call(f.app, 'DELETE', '/api/v1/runs', f.auth);
    expect(wrong.status).toBe(405);
    expect(wrong.body.error.code).toBe('method_not_allowed');
    expect(wrong.headers.get('allow')).toContain('GET');
    // The rerun route validates its body before looking the run up.
    const rerun = await call(
      f.app,
      'POST',
      '/api/v1/runs/run_a001m7y9khy4p46aqpyr3ef2m5es/rerun',
      f.auth,
      {},
    );
    expect(rerun.status).toBe(400);
  });

  it('gives every response a request id, and keeps a safe one the client sent', async () => {
    const res = await f.app.request('/healthz');
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const mine = await f.app.request('/healthz', { headers: { 'x-request-id': 'trace-123' } });
    expect(mine.headers.get('x-request-id')).toBe('trace-123');
    const unsafe = await f.app.request('/healthz', { headers: { 'x-request-id': 'a b<script>' } });
    expect(unsafe.headers.get('x-request-id')).not.toBe('a b<script>');
  });

  it('logs each request with its status and never the API key', async () => {
    f.logs.length = 0;
    await call(f.app, 'GET', '/api/v1/runs', f.auth);
    const line = f.logs.find((l) => l.msg === 'http request' && l.path === '/api/v1/runs');
    expect(line).toMatchObject({
      method: 'GET',
      status: 200,
      environmentId: f.environmentId,
      requestId: expect.any(String),
    });
    const token = f.auth.authorization!.slice('Bearer '.length);
    expect(JSON.stringify(f.logs)).not.toContain(token);
  });

  it('turns an unexpected failure into a 500 `internal` that hides the cause and logs it with the request id', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino(
      { level: 'info' },
      { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) },
    );
    const runs = Object.create(f.db.stores.runs) as Stores['runs'];
    runs.listRuns = () => Promise.reject(new Error('relation "secret_table" does not exist'));
    const app = createApp({ stores: { ...f.db.stores, runs }, logger });
    const res = await call(app, 'GET', '/api/v1/runs', f.auth);
    expect(res.status).toBe(500);
    expect(res.body.error.code).toBe('internal');
    expect(JSON.stringify(res.body)).not.toContain('secret_table');
    const requestId = res.headers.get('x-request-id');
    expect(res.body.error.details.requestId).toBe(requestId);
    expect(res.body.error.message).toContain(requestId);
    const logged = lines.find((l) => l.msg === 'request failed unexpectedly');
    expect(logged).toMatchObject({ requestId, path: '/api/v1/runs' });
    expect(JSON.stringify(logged)).toContain('secret_table');
  });
});

describe.each(BACKENDS)('serving over a socket on %s', (backend) => {
  let f: ServerFixture;
  beforeAll(async () => {
    f = await openServerFixture(backend, [hello], { worker: false, maxBodyBytes: 64 * 1024 });
  });
  afterAll(async () => {
    await f?.close();
  });

  it('listens on a free port, serves requests, refuses an oversized chunked upload, and closes', async () => {
    const server = await startServer(f.app, { port: 0 });
    try {
      expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
      expect(await (await fetch(`${server.url}/healthz`)).json()).toEqual({ status: 'ok' });
      const created = await fetch(`${server.url}/api/v1/workflows/hello/runs`, {
        method: 'POST',
        headers: f.auth,
        body: JSON.stringify({ input: { via: 'socket' } }),
      });
      expect(created.status).toBe(201);
      const big = new TextEncoder().encode(JSON.stringify({ input: 'x'.repeat(200 * 1024) }));
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < big.length; i += 16 * 1024)
            controller.enqueue(big.subarray(i, i + 16 * 1024));
          controller.close();
        },
      });
      const refused = await fetch(`${server.url}/api/v1/workflows/hello/runs`, {
        method: 'POST',
        headers: f.auth,
        body: stream,
        duplex: 'half',
      } as RequestInit);
      expect(refused.status).toBe(413);
      // The rest of the upload was not read: the connection is not reused.
      expect(refused.headers.get('connection')).toBe('close');
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe(
        'payload_too_large',
      );
      expect(await allRunIds(f.db, f.environmentId)).toHaveLength(1);
      // A keep-alive connection left open must not hold close() up.
      await fetch(`${server.url}/healthz`, { headers: { connection: 'keep-alive' } });
    } finally {
      await server.close();
    }
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
  });

  it('rejects when the port is taken', async () => {
    const first = await startServer(f.app, { port: 0 });
    try {
      await expect(startServer(f.app, { port: first.port })).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await first.close();
    }
  });
});
