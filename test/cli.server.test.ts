/**
 * `weft server`'s settings and what they switch on in the app: every flag validated with an error
 * naming it (or its environment variable) and the fix, flags winning over environment variables;
 * CORS answered before authentication and absent when not configured; the client address from
 * `X-Forwarded-For` only behind a trusted proxy; a request past the deadline answered 503; and a
 * draining app that fails `/readyz`, closes connections and ends event streams with a short
 * `retry:` hint.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveServerSettings, runsListSetting } from '../src/cli/server-command.js';
import { ensureEnvironment } from '../src/engine/tenant.js';
import { DEFAULT_MAX_BODY_BYTES } from '../src/server/body.js';
import { createApp, startServer } from '../src/server/index.js';
import { runCli, startCli } from './support/cli-process.js';
import {
  BACKENDS,
  createPgDatabase,
  openTestDatabase,
  type TestDatabase,
} from './support/databases.js';

describe('weft server settings', () => {
  it('WEFT_RUNS_LIST_FROM: PostgreSQL by default, ClickHouse only with the mirror, else a clear error', () => {
    expect(runsListSetting(undefined, true)).toBe('postgres');
    expect(runsListSetting('postgres', false)).toBe('postgres');
    expect(runsListSetting('clickhouse', true)).toBe('analytics');
    expect(() => runsListSetting('clickhouse', false)).toThrow(/set WEFT_CLICKHOUSE_URL too/);
    expect(() => runsListSetting('mysql', true)).toThrow(
      /WEFT_RUNS_LIST_FROM must be "postgres" or "clickhouse"; found "mysql"/,
    );
  });

  it('defaults, and flags win over their environment variables', () => {
    expect(resolveServerSettings({}, {})).toEqual({
      host: '127.0.0.1',
      port: 3700,
      trustProxy: false,
      corsOrigins: [],
      maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
      requestTimeoutMs: 30_000,
      drainTimeoutMs: 20_000,
      keepAliveTimeoutMs: 65_000,
      poolSize: 10,
    });
    const env = {
      PORT: '8080',
      WEFT_HOST: '0.0.0.0',
      WEFT_TRUST_PROXY: 'true',
      WEFT_CORS_ORIGINS: 'https://a.example, https://b.example:8443',
      WEFT_MAX_BODY: '2mb',
      WEFT_REQUEST_TIMEOUT: '0',
      WEFT_DRAIN_TIMEOUT: '5s',
      WEFT_POOL_SIZE: '4',
    };
    expect(resolveServerSettings({}, env)).toMatchObject({
      host: '0.0.0.0',
      port: 8080,
      trustProxy: true,
      corsOrigins: ['https://a.example', 'https://b.example:8443'],
      maxBodyBytes: 2 * 1024 * 1024,
      requestTimeoutMs: 0,
      drainTimeoutMs: 5_000,
      poolSize: 4,
    });
    expect(resolveServerSettings({}, { ...env, WEFT_PORT: '9090' }).port).toBe(9090);
    expect(
      resolveServerSettings(
        { port: '7000', host: '::1', maxBody: '4096', corsOrigin: ['*'], trustProxy: true },
        { ...env, WEFT_PORT: '9090', WEFT_TRUST_PROXY: 'false' },
      ),
    ).toMatchObject({
      port: 7000,
      host: '::1',
      maxBodyBytes: 4096,
      corsOrigins: ['*'],
      trustProxy: true,
    });
  });

  it.each([
    [{ port: 'http' }, {}, /--port must be a port number .* found "http"/],
    [{}, { WEFT_PORT: '70000' }, /WEFT_PORT must be a port number/],
    [{}, { PORT: '-1' }, /PORT must be a port number/],
    [{ host: 'a b' }, {}, /--host must be an interface address .* 0\.0\.0\.0/],
    [{ maxBody: '10' }, {}, /--max-body must be a size from 1kb to 1024mb.* found "10"/],
    [{ maxBody: '5gb' }, {}, /--max-body must be a size/],
    [{}, { WEFT_MAX_BODY: 'lots' }, /WEFT_MAX_BODY must be a size/],
    [
      { corsOrigin: ['https://a.example/'] },
      {},
      /--cors-origin must be an origin: scheme:\/\/host\[:port\] with no path/,
    ],
    [{}, { WEFT_CORS_ORIGINS: 'a.example' }, /WEFT_CORS_ORIGINS must be an origin/],
    [{}, { WEFT_TRUST_PROXY: 'maybe' }, /WEFT_TRUST_PROXY must be true or false/],
    [
      { requestTimeout: '5' },
      {},
      /--request-timeout must be a duration of at least 1s.* 0 turns it off/,
    ],
    [{ requestTimeout: 'soon' }, {}, /--request-timeout must be a duration/],
    [{}, { WEFT_DRAIN_TIMEOUT: '-3s' }, /WEFT_DRAIN_TIMEOUT must be a duration/],
    [{ keepAliveTimeout: '10ms' }, {}, /--keep-alive-timeout must be a duration of at least 1s/],
    [{ poolSize: '1' }, {}, /--pool-size must be a whole number from 2 to 1000/],
  ])('refuses %j %j with the knob and the fix', (options, env, message) => {
    expect(() => resolveServerSettings(options, env)).toThrow(message);
  });

  it('the command exits 1 with the message, before touching a database', async () => {
    const bad = await runCli(['server', '--max-body', 'huge'], {
      cwd: process.cwd(),
      env: { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' },
    });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^weft: --max-body must be a size/);
    const noDb = await runCli(['server'], { cwd: process.cwd() });
    expect(noDb.code).toBe(1);
    expect(noDb.stderr).toContain('weft server needs a database: set DATABASE_URL');
  });
});

describe.each(BACKENDS)('the app behind weft server on %s', (backend) => {
  let db: TestDatabase;
  let auth: Record<string, string>;
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean))
          lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    }),
  );

  beforeAll(async () => {
    db = await openTestDatabase(backend);
    const environmentId = await ensureEnvironment(db.stores.control, { environment: 'prod' });
    const key = await db.stores.control.createApiKey(environmentId, 'edge');
    auth = { authorization: `Bearer ${key.token}` };
  });
  afterAll(() => db?.close());

  it('CORS: none unless configured; preflights answered before authentication', async () => {
    const preflight = {
      method: 'OPTIONS',
      headers: {
        origin: 'https://admin.example.com',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
    };
    const plain = createApp({ stores: db.stores, logger, dashboard: false });
    const without = await plain.request('/api/v1/runs', preflight);
    expect(without.headers.get('access-control-allow-origin')).toBeNull();
    const get = await plain.request('/api/v1/runs', {
      headers: { ...auth, origin: 'https://admin.example.com' },
    });
    expect(get.status).toBe(200);
    expect(get.headers.get('access-control-allow-origin')).toBeNull();

    const app = createApp({
      stores: db.stores,
      logger,
      dashboard: false,
      corsOrigins: ['https://admin.example.com'],
    });
    const ok = await app.request('/api/v1/runs', preflight);
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://admin.example.com');
    expect(ok.headers.get('access-control-allow-headers')).toMatch(/Authorization/);
    expect(ok.headers.get('access-control-allow-methods')).toMatch(/POST/);
    // A browser can read the API's answers, errors included.
    const listed = await app.request('/api/v1/runs', {
      headers: { ...auth, origin: 'https://admin.example.com' },
    });
    expect(listed.status).toBe(200);
    expect(listed.headers.get('access-control-allow-origin')).toBe('https://admin.example.com');
    const denied = await app.request('/api/v1/runs', {
      headers: { origin: 'https://admin.example.com' },
    });
    expect(denied.status).toBe(401);
    expect(denied.headers.get('access-control-allow-origin')).toBe('https://admin.example.com');
    // Another origin gets no grant.
    const other = await app.request('/api/v1/runs', {
      ...preflight,
      headers: { ...preflight.headers, origin: 'https://evil.example' },
    });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('logs the client address from X-Forwarded-For only with trustProxy, and a request id on every request line', async () => {
    const forwarded = { 'x-forwarded-for': '203.0.113.9, 10.0.0.2', 'x-forwarded-proto': 'https' };
    for (const trustProxy of [false, true]) {
      const app = createApp({ stores: db.stores, logger, dashboard: false, trustProxy });
      const server = await startServer(app, { port: 0 });
      try {
        lines.length = 0;
        const res = await fetch(`${server.url}/api/v1/workflows`, {
          headers: { ...auth, ...forwarded, 'x-request-id': `edge-${trustProxy}` },
        });
        expect(res.status).toBe(200);
        expect(res.headers.get('x-request-id')).toBe(`edge-${trustProxy}`);
        const line = lines.find((l) => l.msg === 'http request');
        expect(line).toMatchObject({
          requestId: `edge-${trustProxy}`,
          path: '/api/v1/workflows',
          ip: trustProxy ? '203.0.113.9' : expect.stringMatching(/127\.0\.0\.1/),
        });
        expect(line?.protocol).toBe(trustProxy ? 'https' : undefined);
      } finally {
        await server.close();
      }
    }
  });

  it('draining: /readyz 503, Connection: close, and event streams end with a short retry hint', async () => {
    const shutdown = new AbortController();
    const app = createApp({
      stores: db.stores,
      logger,
      dashboard: false,
      shutdownSignal: shutdown.signal,
    });
    expect((await app.request('/readyz')).status).toBe(200);
    const server = await startServer(app, { port: 0, drainTimeoutMs: 5_000 });
    try {
      // A run that stays open (no worker claims it), to hold a stream on.
      const environmentId = (await db.stores.control.resolveApiKey(
        auth.authorization!.slice('Bearer '.length),
      ))!.environmentId;
      const { defineWorkflow } = await import('../src/index.js');
      const { Engine } = await import('../src/engine/engine.js');
      const engine = await Engine.start({
        stores: db.stores,
        environmentId,
        worker: false,
        workflows: [defineWorkflow('idle').step('a', () => 1)],
        logger,
      });
      try {
        const created = await fetch(`${server.url}/api/v1/workflows/idle/runs`, {
          method: 'POST',
          headers: { ...auth, 'content-type': 'application/json' },
          body: '{}',
        });
        expect(created.status).toBe(201);
        const { id } = (await created.json()) as { id: string };
        const stream = await fetch(`${server.url}/api/v1/runs/${id}/events`, { headers: auth });
        expect(stream.status).toBe(200);
        const reader = stream.body!.getReader();
        let text = '';
        const first = await reader.read();
        text += new TextDecoder().decode(first.value);
        expect(text).toContain('retry: 1000');

        const started = Date.now();
        shutdown.abort();
        const ready = await app.request('/readyz');
        expect(ready.status).toBe(503);
        expect(((await ready.json()) as { error: { details: unknown } }).error.details).toEqual({
          reason: 'draining',
        });
        expect((await app.request('/healthz')).headers.get('connection')).toBe('close');
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          text += new TextDecoder().decode(value);
        }
        expect(text.trimEnd().endsWith('retry: 250')).toBe(true);
        await server.close();
        // Ended by the drain, not cut by the timeout.
        expect(Date.now() - started).toBeLessThan(4_000);
      } finally {
        await engine.stop();
      }
    } finally {
      await server.close();
    }
  });

  it.runIf(backend === 'postgres')(
    'a request past the deadline gets 503 request_timeout, not a hung connection',
    async () => {
      const app = createApp({
        stores: db.stores,
        logger,
        dashboard: false,
        requestTimeoutMs: 1_000,
      });
      // Hold the runs table so the listing blocks in the database.
      const blocker = new pg.Client({ connectionString: db.url });
      await blocker.connect();
      try {
        await blocker.query('begin');
        await blocker.query(
          `lock table ${db.stores.schemas.locations[0]}.runs in access exclusive mode`,
        );
        const started = Date.now();
        const res = await app.request('/api/v1/runs', { headers: auth });
        expect(res.status).toBe(503);
        expect(res.headers.get('retry-after')).toBe('1');
        const body = (await res.json()) as { error: { code: string; message: string } };
        expect(body.error.code).toBe('request_timeout');
        expect(body.error.message).toMatch(/did not finish within 1000 ms.*idempotencyKey/);
        expect(Date.now() - started).toBeLessThan(3_000);
      } finally {
        await blocker.query('rollback');
        await blocker.end();
      }
    },
  );
});

describe('weft start: server and worker in one process', () => {
  let db: { url: string; drop: () => Promise<void> };
  let dir: string;

  beforeAll(async () => {
    db = await createPgDatabase('start');
    dir = mkdtempSync(join(tmpdir(), 'weft-start-'));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'start', type: 'module' }));
    writeFileSync(
      join(dir, 'double.js'),
      "import { defineWorkflow } from 'weft';\nexport default defineWorkflow('double').step('x2', (n) => n * 2);\n",
    );
  });
  afterAll(async () => {
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(
    'serves the API, runs the workflows, and drains both on SIGTERM',
    { timeout: 120_000 },
    async () => {
      const env = { DATABASE_URL: db.url };
      const bad = await runCli(['start', '--workflows', './double.js', '--pool-size', 'many'], {
        cwd: dir,
        env,
      });
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/--pool-size must be a whole number/);

      expect((await runCli(['migrate'], { cwd: dir, env, timeoutMs: 60_000 })).code).toBe(0);
      const made = await runCli(['keys', 'create', '--environment', 'prod', '--json'], {
        cwd: dir,
        env,
        timeoutMs: 60_000,
      });
      const key = JSON.parse(made.stdout) as { key?: string; token?: string };
      const auth = { authorization: `Bearer ${key.key ?? key.token}` };

      const start = startCli(
        ['start', '--port', '0', '--workflows', './double.js', '--environment', 'prod'],
        { cwd: dir, env },
      );
      try {
        const url = (
          await start.waitFor('stdout', /"url":"(http:[^"]+)"[^\n]*server listening/, 60_000)
        )[1];
        expect(start.stdout()).toContain('worker started');
        const created = await fetch(`${url}/api/v1/workflows/double/runs`, {
          method: 'POST',
          headers: { ...auth, 'content-type': 'application/json' },
          body: JSON.stringify({ input: 21 }),
        });
        expect(created.status).toBe(201);
        const { id } = (await created.json()) as { id: string };
        let run = { status: 'queued', finalDataclipId: null as string | null };
        const deadline = Date.now() + 30_000;
        while (run.status !== 'succeeded' && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 100));
          run = (await (
            await fetch(`${url}/api/v1/runs/${id}`, { headers: auth })
          ).json()) as typeof run;
        }
        expect(run.status).toBe('succeeded');
        const output = (await (
          await fetch(`${url}/api/v1/dataclips/${run.finalDataclipId}`, { headers: auth })
        ).json()) as { body: unknown };
        expect(output.body).toBe(42);
      } finally {
        expect(await start.stop(20_000)).toBe(0);
      }
      expect(start.stdout()).toMatch(/shutting down[\s\S]*stopped/);
    },
  );
});
