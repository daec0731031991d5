/**
 * Rate limits per API key: a token bucket per key in this process; over it a 429 `rate_limited`
 * with `Retry-After`; other keys, probes and CORS preflights are not limited; off by default.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveServerSettings } from '../src/cli/server-command.js';
import { silentLogger } from '../src/engine/logger.js';
import { createApp, type ServerApp } from '../src/server/index.js';
import { KeyBuckets, parseRateLimit } from '../src/server/rate-limit.js';
import { openTestDatabase, type TestDatabase } from './support/databases.js';
import { bearer, call } from './support/server-fixture.js';
import { ensureEnvironment } from '../src/engine/tenant.js';

describe('token buckets', () => {
  it('allow the burst, then one request per 1/rate seconds, with the wait in whole seconds', () => {
    let t = 0;
    const buckets = new KeyBuckets({ perSecond: 2, burst: 3 }, () => t);
    expect([1, 2, 3].map(() => buckets.take('a'))).toEqual([0, 0, 0]);
    expect(buckets.take('a')).toBe(1);
    expect(buckets.take('b')).toBe(0);
    t += 499;
    expect(buckets.take('a')).toBe(1);
    t += 2;
    expect(buckets.take('a')).toBe(0);
    const slow = new KeyBuckets({ perSecond: 1 / 60, burst: 1 }, () => t);
    expect(slow.take('a')).toBe(0);
    expect(slow.take('a')).toBe(60);
  });

  it('parse 20/s, 600/min, 5,burst=10 and off; anything else names its source', () => {
    expect(parseRateLimit('20/s', 'x')).toEqual({ perSecond: 20, burst: 20 });
    expect(parseRateLimit('600/min', 'x')).toEqual({ perSecond: 10, burst: 600 });
    expect(parseRateLimit('5, burst=10', 'x')).toEqual({ perSecond: 5, burst: 10 });
    expect(parseRateLimit('off', 'x')).toBeUndefined();
    expect(() => parseRateLimit('fast', '--rate-limit')).toThrow(
      /--rate-limit must be a rate such as 20\/s/,
    );
    expect(resolveServerSettings({}, {}).rateLimit).toBeUndefined();
    expect(resolveServerSettings({}, { WEFT_RATE_LIMIT: '3/s' }).rateLimit).toEqual({
      perSecond: 3,
      burst: 3,
    });
    expect(
      resolveServerSettings({ rateLimit: '7/s' }, { WEFT_RATE_LIMIT: '3/s' }).rateLimit,
    ).toEqual({ perSecond: 7, burst: 7 });
    expect(() => resolveServerSettings({}, { WEFT_RATE_LIMIT: '3/hour' })).toThrow(
      /WEFT_RATE_LIMIT must be a rate/,
    );
  });
});

describe('rate limits over HTTP (pglite)', () => {
  let db: TestDatabase;
  let app: ServerApp;
  let a: Record<string, string>;
  let b: Record<string, string>;

  beforeAll(async () => {
    db = await openTestDatabase('pglite');
    const environmentId = await ensureEnvironment(db.stores.control, {
      project: 'default',
      environment: 'dev',
    });
    a = bearer((await db.stores.control.createApiKey(environmentId, 'a')).token);
    b = bearer((await db.stores.control.createApiKey(environmentId, 'b')).token);
    app = createApp({
      stores: db.stores,
      logger: silentLogger(),
      dashboard: false,
      rateLimit: { perSecond: 2, burst: 4 },
      corsOrigins: ['https://admin.example.com'],
    });
  });
  afterAll(async () => {
    await db?.close();
  });

  it('answers 429 with Retry-After once a key has spent its burst; other keys, probes and preflights go on', async () => {
    for (let i = 0; i < 4; i++)
      expect((await call(app, 'GET', '/api/v1/workflows', a)).status).toBe(200);
    const limited = await call(app, 'GET', '/api/v1/workflows', a);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('1');
    expect(limited.body.error).toMatchObject({
      code: 'rate_limited',
      details: { retryAfterSeconds: 1, burst: 4, limit: '2/s' },
    });
    expect(limited.body.error.message).toContain('Retry after 1 s');
    expect((await call(app, 'GET', '/api/v1/workflows', b)).status).toBe(200);
    for (let i = 0; i < 10; i++) {
      expect((await app.request('/healthz')).status).toBe(200);
      const preflight = await app.request('/api/v1/workflows', {
        method: 'OPTIONS',
        headers: {
          origin: 'https://admin.example.com',
          'access-control-request-method': 'GET',
        },
      });
      expect(preflight.status).toBeLessThan(300);
    }
    await new Promise((r) => setTimeout(r, 1100));
    expect((await call(app, 'GET', '/api/v1/workflows', a)).status).toBe(200);
  });

  it('is off unless configured', async () => {
    const open = createApp({ stores: db.stores, logger: silentLogger(), dashboard: false });
    for (let i = 0; i < 30; i++)
      expect((await call(open, 'GET', '/api/v1/workflows', a)).status).toBe(200);
  });
});
