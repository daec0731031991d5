/**
 * Workers that ride out a database outage, on a PostgreSQL cluster of this file's own
 * (test/support/throwaway-cluster.ts) that is stopped and started under them:
 * - the LISTEN connection comes back after a restart longer than its first retry, so wake-ups are
 *   instant again and a cancel aborts a running step (not the next heartbeat, not the poll);
 * - `weft worker` started while the cluster is down waits for it instead of exiting;
 * - a commit that fails because the server restarts is retried (fenced) while the lease holds, so
 *   the step's attempt count stays 1 and a `maxAttempts: 1` step does not fail its run;
 * - when the outage outlasts the lease, the attempt is given back uncharged and the step runs again.
 *
 * PostgreSQL only by nature (PGlite runs in-process and cannot be restarted under a worker).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import { silentLogger } from '../src/engine/logger.js';
import { MetricsRegistry } from '../src/engine/metrics.js';
import { createApp } from '../src/server/index.js';
import { triggerRun } from '../src/engine/trigger.js';
import { cancelRun } from '../src/engine/run-control.js';
import type { Executor } from '../src/store/executor.js';
import { createPgExecutor } from '../src/store/pg-executor.js';
import { createStores, type Stores } from '../src/store/stores.js';
import { startCli } from './support/cli-process.js';
import { call } from './support/server-fixture.js';
import { startTestEngine } from './support/engine.js';
import { ThrowawayCluster } from './support/throwaway-cluster.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(50);
  }
  return false;
}

function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    promise,
    sleep(ms).then(() => {
      throw new Error(`${what} (waited ${ms} ms)`);
    }),
  ]);
}

describe('workers ride out a PostgreSQL outage (throwaway cluster)', () => {
  let cluster: ThrowawayCluster;
  let url: string;
  let executor: Executor;
  let stores: Stores;

  beforeAll(async () => {
    cluster = await ThrowawayCluster.create();
    url = await cluster.createDatabase('weft_outage');
    executor = createPgExecutor({ connectionString: url, max: 10 });
    stores = createStores({ control: executor });
    await stores.migrate();
  });

  beforeEach(async () => {
    await cluster.ensureRunning();
  });

  /**
   * Poll the run's status (not engine.waitForRun, which LISTENs: on the code before this fix a
   * LISTEN while the server is down threw, and the test would fail for that instead).
   */
  async function settled(environmentId: string, runId: string, timeoutMs: number) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const run = await stores.runs.getRun(environmentId, runId).catch(() => undefined);
      if (run && ['succeeded', 'failed', 'canceled', 'paused'].includes(run.status)) return run;
      if (Date.now() > deadline) return run;
      await sleep(100);
    }
  }

  afterAll(async () => {
    await stores?.close().catch(() => {});
    await cluster?.destroy();
  });

  it('after a restart longer than 2 s the LISTEN connection is back: the wake-up is instant and a cancel aborts the running step', async () => {
    const registry = new MetricsRegistry();
    const started = deferred<number>();
    const aborted = deferred<number>();
    const wf = defineWorkflow('outage-listen').step('long', async (_input, ctx) => {
      started.resolve(Date.now());
      await new Promise<void>((resolve) => {
        ctx.signal.addEventListener(
          'abort',
          () => {
            aborted.resolve(Date.now());
            resolve();
          },
          { once: true },
        );
        setTimeout(resolve, 40_000);
      });
      return 'done';
    });
    // Polling every 60 s and renewing leases every 20 s: only NOTIFY can make either fast.
    const engine = await startTestEngine(stores, [wf], {
      worker: { pollIntervalMs: 60_000, leaseMs: 60_000, metrics: registry },
      reaperIntervalMs: false,
    });
    try {
      await sleep(300); // the worker has claimed once and is waiting for a wake-up
      await cluster.stop('fast');
      await sleep(2_500);
      await cluster.start();
      // The listener retries with backoff capped at 5 s; the code before this fix never returned
      // (its one retry, after 1 s, failed while the server was down).
      // (Not asserted here, so that the code before the fix fails on behaviour below.)
      await until(() => executor.listenerHealth?.().state === 'connected', 10_000);

      const triggeredAt = Date.now();
      const { run } = await engine.trigger('outage-listen', null);
      const startedAt = await within(
        started.promise,
        5_000,
        'the step did not start: the wake-up was lost and the worker only polls every 60 s',
      );
      expect(startedAt - triggeredAt).toBeLessThan(1_500);

      const canceledAt = Date.now();
      await engine.cancel(run.id, 'outage test');
      const abortedAt = await within(
        aborted.promise,
        5_000,
        "ctx.signal did not abort: the cancel's NOTIFY was lost (the next lease renewal is 20 s away)",
      );
      expect(abortedAt - canceledAt).toBeLessThan(2_000);

      expect(executor.listenerHealth?.()).toMatchObject({ state: 'connected' });
      expect(executor.listenerHealth?.().reconnects).toBeGreaterThanOrEqual(1);
      const metrics = registry.render();
      expect(metrics).toContain('weft_listener_connected{database="run_ops"} 1');
      expect(metrics).toMatch(/weft_listener_reconnects_total\{database="run_ops"\} [1-9]/);
    } finally {
      await engine.stop();
    }
  });

  it('a cancel made while the LISTEN connection was down still aborts the running step once it is back', async () => {
    const started = deferred();
    const aborted = deferred<number>();
    const wf = defineWorkflow('outage-missed-cancel').step('long', async (_input, ctx) => {
      started.resolve();
      await new Promise<void>((resolve) => {
        ctx.signal.addEventListener('abort', () => (aborted.resolve(Date.now()), resolve()), {
          once: true,
        });
        setTimeout(resolve, 40_000);
      });
      return 'done';
    });
    // Leases renewed every 20 s: the first renewal comes after this test's window.
    const engine = await startTestEngine(stores, [wf], {
      worker: { pollIntervalMs: 60_000, leaseMs: 60_000 },
      reaperIntervalMs: false,
    });
    // Cancel through a second connection pool while the worker's LISTEN connection is cut and
    // cannot reconnect (the database refuses new connections): the NOTIFY is lost.
    const admin = createPgExecutor({ connectionString: cluster.url(), max: 1 });
    const canceler = createPgExecutor({ connectionString: url, max: 1 });
    try {
      const { run } = await engine.trigger('outage-missed-cancel', null);
      await within(started.promise, 5_000, 'the step did not start');
      await canceler.query('select 1');
      await admin.query(`alter database weft_outage allow_connections false`);
      await admin.query(
        `select pg_terminate_backend(pid) from pg_stat_activity where datname = 'weft_outage' and application_name like '%-listen'`,
      );
      await sleep(1_000); // the listener noticed, and its reconnects are refused
      // through a connection opened before the outage: the engine's pool may have closed its idle
      // connections by now (a loaded machine) and could not open one while connections are refused
      await cancelRun(
        createStores({ control: canceler }),
        engine.environmentId,
        run.id,
        'canceled during the outage',
      );
      await sleep(500);
      const canceledAt = Date.now();
      await admin.query(`alter database weft_outage allow_connections true`);
      const abortedAt = await within(
        aborted.promise,
        10_000,
        'ctx.signal did not abort after the LISTEN connection came back',
      );
      // the reconnect backoff (capped at 5 s) plus the catch-up renewal, not the 20 s heartbeat
      expect(abortedAt - canceledAt).toBeLessThan(7_000);
    } finally {
      await admin.query(`alter database weft_outage allow_connections true`).catch(() => {});
      await canceler.close();
      await admin.close();
      await engine.stop();
    }
  });

  it('/readyz says listener_down and /metrics shows the listener at 0 while it cannot reconnect; both recover', async () => {
    const registry = new MetricsRegistry();
    const engine = await startTestEngine(
      stores,
      [defineWorkflow('outage-probe').step('x', () => 1)],
      {
        worker: { metrics: registry },
        reaperIntervalMs: false,
      },
    );
    const app = createApp({ stores, logger: silentLogger(), metrics: registry });
    const admin = createPgExecutor({ connectionString: cluster.url(), max: 1 });
    const listenerGauge = async () => {
      const text = await (await app.request('/metrics')).text();
      return /weft_listener_connected\{database="run_ops"\} (\d)/.exec(text)?.[1];
    };
    try {
      expect(await call(app, 'GET', '/readyz', {})).toMatchObject({ status: 200 });
      expect(await listenerGauge()).toBe('1');
      const reconnectsBefore = executor.listenerHealth!().reconnects;
      // /readyz's checks run in parallel on pooled connections: open enough of them now, since
      // the database will refuse new ones (a loaded machine may have closed the idle ones)
      await Promise.all(Array.from({ length: 8 }, () => executor.query('select pg_sleep(0.05)')));
      await admin.query(`alter database weft_outage allow_connections false`);
      await admin.query(
        `select pg_terminate_backend(pid) from pg_stat_activity where datname = 'weft_outage' and application_name like '%-listen'`,
      );
      expect(await until(() => executor.listenerHealth?.().state === 'down', 5_000)).toBe(true);
      const down = await call(app, 'GET', '/readyz', {});
      expect(down.status).toBe(503);
      expect(down.body.error).toMatchObject({
        code: 'not_ready',
        details: { reason: 'listener_down', database: 'run_ops' },
      });
      expect(down.body.error.message).toMatch(/LISTEN connection .* down/);
      expect(await listenerGauge()).toBe('0');

      await admin.query(`alter database weft_outage allow_connections true`);
      expect(await until(() => executor.listenerHealth?.().state === 'connected', 10_000)).toBe(
        true,
      );
      expect(await call(app, 'GET', '/readyz', {})).toMatchObject({ status: 200 });
      expect(await listenerGauge()).toBe('1');
      expect(executor.listenerHealth!().reconnects).toBe(reconnectsBefore + 1);
      expect(await (await app.request('/metrics')).text()).toContain(
        `weft_listener_reconnects_total{database="run_ops"} ${reconnectsBefore + 1}`,
      );
    } finally {
      await admin.query(`alter database weft_outage allow_connections true`).catch(() => {});
      await admin.close();
      await engine.stop();
    }
  });

  it('a LISTEN connection cut without a reset (a partition) is noticed by its ping and replaced', async () => {
    // A TCP proxy in front of the cluster: `blackhole()` stops forwarding on the connections open
    // now, without closing them — what a partition or a dead host looks like to the client.
    const pairs: Array<{ client: Socket; server: Socket; dead: boolean }> = [];
    const proxy = createServer((client) => {
      const server = connect(cluster.port, '127.0.0.1');
      const pair = { client, server, dead: false };
      pairs.push(pair);
      client.on('data', (d) => void (pair.dead || server.write(d)));
      server.on('data', (d) => void (pair.dead || client.write(d)));
      const close = () => (client.destroy(), server.destroy());
      client.on('error', close).on('close', close);
      server.on('error', close).on('close', close);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const port = (proxy.address() as { port: number }).port;
    const proxied = createPgExecutor({
      connectionString: `postgres://postgres@127.0.0.1:${port}/weft_outage`,
      max: 1,
      listenerPing: { everyMs: 200, timeoutMs: 400 },
    });
    const got: string[] = [];
    const reconnected = deferred();
    try {
      await proxied.listen('weft_outage_ping', (p) => got.push(p), {
        onReconnect: () => reconnected.resolve(),
      });
      expect(proxied.listenerHealth?.().state).toBe('connected');
      for (const pair of pairs) pair.dead = true; // every connection open now goes silent
      await within(reconnected.promise, 5_000, 'the silent connection was not replaced');
      expect(proxied.listenerHealth?.()).toMatchObject({ state: 'connected', reconnects: 1 });
      // and the new connection LISTENs again
      await executor.query(`select pg_notify('weft_outage_ping', 'after')`);
      expect(await until(() => got.includes('after'), 3_000)).toBe(true);
    } finally {
      await proxied.close();
      for (const pair of pairs) pair.client.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it('a commit that fails while the server restarts is retried: attempt count 1, and a maxAttempts: 1 run succeeds', async () => {
    const restarts: Array<Promise<void>> = [];
    const blipped = new Set<string>();
    const wf = defineWorkflow('outage-commit')
      .step('a', { retry: { maxAttempts: 1 } }, () => 'A')
      .step('b', { after: 'a', retry: { maxAttempts: 1 } }, (a) => `${a}B`);
    const engine = await startTestEngine(stores, [wf], {
      worker: {
        leaseMs: 8_000,
        heartbeatMs: 500,
        // Right before each step's first commit, the server goes away for ~1.5 s.
        faults: {
          beforeCommit: async (claim) => {
            if (blipped.has(claim.stepKey)) return;
            blipped.add(claim.stepKey);
            // b's commit comes as soon as a's commit got through, which can be before pg_ctl has
            // confirmed the restart of a's outage: stopping then made that start fail
            await Promise.all(restarts);
            await cluster.stop('fast');
            restarts.push(sleep(1_500).then(() => cluster.start()));
          },
        },
      },
      reaperIntervalMs: 200,
    });
    try {
      const { run } = await engine.trigger('outage-commit', null);
      const done = (await settled(engine.environmentId, run.id, 40_000))!;
      await Promise.all(restarts);
      expect(done.status).toBe('succeeded');
      expect(blipped).toEqual(new Set(['a', 'b']));
      const steps = (await stores.runs.listStepRuns(engine.environmentId, run.id))!;
      for (const s of steps) {
        expect(s.status).toBe('succeeded');
        expect(s.attempts.map((a) => a.number)).toEqual([1]);
      }
    } finally {
      await Promise.all(restarts);
      await engine.stop();
    }
  });

  it('when the outage outlasts the lease, the attempt is released uncharged and the step runs again', async () => {
    const restarts: Array<Promise<void>> = [];
    let runs = 0;
    const wf = defineWorkflow('outage-long').step('only', { retry: { maxAttempts: 1 } }, () => {
      runs++;
      return 'ok';
    });
    const engine = await startTestEngine(stores, [wf], {
      worker: {
        leaseMs: 2_000,
        heartbeatMs: 300,
        faults: {
          beforeCommit: async () => {
            if (restarts.length > 0) return;
            await cluster.stop('fast');
            restarts.push(sleep(4_000).then(() => cluster.start()));
          },
        },
      },
      reaperIntervalMs: 200,
    });
    try {
      const { run } = await engine.trigger('outage-long', null);
      const done = (await settled(engine.environmentId, run.id, 40_000))!;
      await Promise.all(restarts);
      expect(done.status).toBe('succeeded');
      expect(runs).toBe(2);
      const [step] = (await stores.runs.listStepRuns(engine.environmentId, run.id))!;
      expect(step!.attempts.map((a) => [a.number, a.status])).toEqual([
        [1, 'lost'],
        [2, 'succeeded'],
      ]);
      expect(step!.attempts[0]!.error).toMatchObject({
        code: 'database_unavailable',
      });
    } finally {
      await Promise.all(restarts);
      await engine.stop();
    }
  });

  it('`weft worker` started while the server is down waits for it, then runs a run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-outage-'));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'outage', type: 'module' }));
    writeFileSync(
      join(dir, 'hello.ts'),
      `import { defineWorkflow } from 'weft';
export const hello = defineWorkflow<{ who: string }>('hello').step('greet', ({ who }) => \`hello, \${who}\`);
`,
    );
    await cluster.stop('fast');
    const worker = startCli(
      ['worker', '--workflows', join(dir, 'hello.ts'), '--project', 'ops', '--environment', 'prod'],
      { cwd: dir, env: { DATABASE_URL: url, WEFT_CONNECT_TIMEOUT: '30s' } },
    );
    try {
      await worker.waitFor('stdout', /waiting for it/, 20_000);
      await sleep(3_000);
      expect(worker.child.exitCode, `the worker exited: ${worker.stderr()}`).toBeNull();
      await cluster.start();
      await worker.waitFor('stdout', /"msg":"worker started"/, 30_000);
      expect(worker.stdout()).toMatch(/"msg":"the database is up; continuing"/);
      const environmentId = (await stores.control.findEnvironmentByName('ops', 'prod'))!;
      const { run } = await triggerRun(stores, {
        environmentId,
        workflowId: 'hello',
        input: { who: 'outage' },
      });
      expect(
        await until(
          async () => (await stores.runs.getRun(environmentId, run.id))?.status === 'succeeded',
          15_000,
        ),
      ).toBe(true);
    } finally {
      if (!cluster.isRunning) await cluster.start();
      await worker.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
