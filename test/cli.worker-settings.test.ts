/**
 * `weft worker` timing flags and environment variables (--lease, --heartbeat, --reaper-interval,
 * --connect-timeout): defaults, flags over env, and clear errors for values that cannot work —
 * checked on the parser and once through the real CLI, which must exit 1 with the message before
 * it touches the database.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConnectTimeout } from '../src/cli/database.js';
import { resolveWorkerTimings, workerPoolSize } from '../src/cli/worker-command.js';
import { Engine } from '../src/engine/engine.js';
import { silentLogger } from '../src/engine/logger.js';
import { createPgliteExecutor } from '../src/store/pglite-executor.js';
import { createStores } from '../src/store/stores.js';
import { runCli } from './support/cli-process.js';

describe('weft worker timings', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-worker-settings-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('opens one connection per step up to 16, plus 2: --concurrency 200 fits under max_connections', () => {
    expect(workerPoolSize(1)).toBe(3);
    expect(workerPoolSize(10)).toBe(12);
    expect(workerPoolSize(16)).toBe(18);
    expect(workerPoolSize(200)).toBe(18);
  });

  it('defaults to the engine defaults: lease 30 s, heartbeat a third of it, reaper 5 s', () => {
    expect(resolveWorkerTimings({}, {})).toEqual({
      leaseMs: 30_000,
      heartbeatMs: 10_000,
      reaperIntervalMs: 5_000,
    });
  });

  it('reads flags, else WEFT_LEASE / WEFT_HEARTBEAT / WEFT_REAPER_INTERVAL; flags win', () => {
    expect(resolveWorkerTimings({ lease: '2m' }, {})).toEqual({
      leaseMs: 120_000,
      heartbeatMs: 40_000,
      reaperIntervalMs: 5_000,
    });
    const env = { WEFT_LEASE: '10s', WEFT_HEARTBEAT: '2s', WEFT_REAPER_INTERVAL: '500ms' };
    expect(resolveWorkerTimings({}, env)).toEqual({
      leaseMs: 10_000,
      heartbeatMs: 2_000,
      reaperIntervalMs: 500,
    });
    expect(resolveWorkerTimings({ heartbeat: '1s', reaperInterval: 'off' }, env)).toEqual({
      leaseMs: 10_000,
      heartbeatMs: 1_000,
      reaperIntervalMs: false,
    });
  });

  it('refuses a heartbeat that is not well below the lease, naming both and the fix', () => {
    expect(() => resolveWorkerTimings({ lease: '10s', heartbeat: '6s' }, {})).toThrow(
      /--heartbeat is "6s" but the lease is 10000 ms \(--lease\): the heartbeat must be well below the lease — at most half of it.*Lower the heartbeat or raise --lease/,
    );
    expect(() => resolveWorkerTimings({ heartbeat: '20s' }, {})).toThrow(
      /the lease is 30000 ms \(the default\)/,
    );
    expect(() => resolveWorkerTimings({}, { WEFT_LEASE: '4s', WEFT_HEARTBEAT: '3s' })).toThrow(
      /WEFT_HEARTBEAT is "3s" but the lease is 4000 ms \(WEFT_LEASE\)/,
    );
  });

  it('refuses malformed and out-of-range values with what was expected', () => {
    expect(() => resolveWorkerTimings({ lease: '30' }, {})).toThrow(
      /--lease must be a duration like "500ms", "10s", "5m" or "1h"; found "30"/,
    );
    expect(() => resolveWorkerTimings({ lease: '500ms' }, {})).toThrow(
      /--lease is "500ms": a lease must be from 1s to 24h/,
    );
    expect(() => resolveWorkerTimings({}, { WEFT_HEARTBEAT: '10ms' })).toThrow(
      /WEFT_HEARTBEAT is "10ms": a heartbeat must be at least 50ms/,
    );
    expect(() => resolveWorkerTimings({ reaperInterval: 'never' }, {})).toThrow(
      /--reaper-interval must be a duration .* \(or "off"\); found "never"/,
    );
    expect(() => resolveWorkerTimings({ reaperInterval: '10ms' }, {})).toThrow(
      /at least 100ms \(or "off" when another process reaps\)/,
    );
  });

  it('--connect-timeout / WEFT_CONNECT_TIMEOUT: a duration, 0 for "fail at once"', () => {
    const saved = process.env.WEFT_CONNECT_TIMEOUT;
    try {
      delete process.env.WEFT_CONNECT_TIMEOUT;
      expect(parseConnectTimeout(undefined)).toBe(60_000);
      expect(parseConnectTimeout('0')).toBe(0);
      expect(parseConnectTimeout('2m')).toBe(120_000);
      process.env.WEFT_CONNECT_TIMEOUT = '5s';
      expect(parseConnectTimeout(undefined)).toBe(5_000);
      expect(() => parseConnectTimeout('soon')).toThrow(
        /--connect-timeout must be a duration like "30s", "2m" or "500ms" \(0 to fail at once when the database is down\); found "soon"/,
      );
    } finally {
      if (saved === undefined) delete process.env.WEFT_CONNECT_TIMEOUT;
      else process.env.WEFT_CONNECT_TIMEOUT = saved;
    }
  });

  it('the SDK refuses a heartbeat that is not below the lease (what cannot work)', async () => {
    const stores = createStores({ control: await createPgliteExecutor() });
    try {
      await expect(
        Engine.start({
          stores,
          environmentId: 'env_unused',
          logger: silentLogger(),
          worker: { leaseMs: 1_000, heartbeatMs: 1_000 },
        }),
      ).rejects.toThrow(
        'worker heartbeatMs (1000) must be above 0 and well below leaseMs (1000); a third of the lease is the default.',
      );
    } finally {
      await stores.close();
    }
  });

  it('the CLI exits 1 with the message before it opens the database', async () => {
    const result = await runCli(['worker', '--workflows', dir, '--lease', '3s'], {
      cwd: dir,
      env: { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', WEFT_HEARTBEAT: '2s' },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      'WEFT_HEARTBEAT is "2s" but the lease is 3000 ms (--lease): the heartbeat must be well below the lease',
    );
  });

  it('a worker whose database never comes up gives up after --connect-timeout, naming the flag', async () => {
    const started = Date.now();
    const result = await runCli(['worker', '--workflows', dir, '--connect-timeout', '1500ms'], {
      cwd: dir,
      env: { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' },
      timeoutMs: 30_000,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /cannot reach the database postgres:\/\/nobody@127\.0\.0\.1:1\/none \(DATABASE_URL\): connect ECONNREFUSED .*did not accept connections within 1500 ms \(--connect-timeout/,
    );
    expect(Date.now() - started).toBeGreaterThan(1_400);
    expect(result.stdout).toMatch(/waiting for it \(retrying with backoff\)/);
  });
});
