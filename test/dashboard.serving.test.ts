/**
 * How createApp serves the dashboard build (src/server/dashboard-assets.ts), on a fake build in a
 * temp folder: content types, cache headers, the SPA fallback, what stays the API's, path
 * escapes, HEAD, the page shown when no build exists, and `dashboard: false`. The database is not
 * involved beyond opening the app, so one backend (PGlite) is enough.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/engine/logger.js';
import { createApp, type ServerApp } from '../src/server/index.js';
import { openTestDatabase, type TestDatabase } from './support/databases.js';

const INDEX =
  '<!doctype html><title>Weft</title><script type="module" src="/assets/index-abc123.js"></script>';

describe('dashboard serving', () => {
  let db: TestDatabase;
  let dir: string;
  let built: ServerApp;
  let missing: ServerApp;
  let none: ServerApp;

  beforeAll(async () => {
    db = await openTestDatabase('pglite');
    dir = mkdtempSync(join(tmpdir(), 'weft-dashboard-serving-'));
    mkdirSync(join(dir, 'build', 'assets'), { recursive: true });
    writeFileSync(join(dir, 'build', 'index.html'), INDEX);
    writeFileSync(join(dir, 'build', 'assets', 'index-abc123.js'), 'console.log(1)');
    writeFileSync(join(dir, 'build', 'assets', 'index-abc123.css'), 'body{}');
    writeFileSync(join(dir, 'secret.txt'), 'outside the build');
    const logger = silentLogger();
    built = createApp({ stores: db.stores, logger, dashboard: { dir: join(dir, 'build') } });
    missing = createApp({ stores: db.stores, logger, dashboard: { dir: join(dir, 'nothing') } });
    none = createApp({ stores: db.stores, logger, dashboard: false });
  });

  afterAll(async () => {
    await db?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves index.html at / and for page paths (SPA), revalidated, with a CSP', async () => {
    for (const path of ['/', '/runs/run_a001', '/workflows/x?y=1', '/index.html']) {
      const res = await built.request(path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(res.headers.get('cache-control')).toBe('no-cache');
      expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
      expect(await res.text()).toBe(INDEX);
    }
  });

  it('serves hashed assets with their content type, cached for a year; a missing one is a 404', async () => {
    const js = await built.request('/assets/index-abc123.js');
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(await js.text()).toBe('console.log(1)');
    const css = await built.request('/assets/index-abc123.css');
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
    const gone = await built.request('/assets/index-old999.js');
    expect(gone.status).toBe(404);
    expect(gone.headers.get('content-type')).toContain('application/json');
  });

  it('answers HEAD without a body', async () => {
    const res = await built.request('/', { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
  });

  it('leaves /api, /hooks and the probes to the API', async () => {
    const api = await built.request('/api/v1/runs');
    expect(api.status).toBe(401);
    expect(api.headers.get('content-type')).toContain('application/json');
    const unknown = await built.request('/api/nothing');
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe('not_found');
    expect((await built.request('/hooks/hook_nothing')).headers.get('content-type')).toContain(
      'application/json',
    );
    expect((await built.request('/healthz')).status).toBe(200);
    const docs = await built.request('/api/docs');
    expect(await docs.text()).not.toBe(INDEX);
    // Only GET and HEAD are the dashboard's: a POST to a page path is the API's 404.
    const post = await built.request('/runs/x', { method: 'POST' });
    expect(post.status).toBe(404);
    expect(post.headers.get('content-type')).toContain('application/json');
  });

  it('never serves a file outside the build folder', async () => {
    for (const path of [
      '/../secret.txt',
      '/%2e%2e/secret.txt',
      '/assets/..%2f..%2fsecret.txt',
      '/%00',
    ]) {
      const res = await built.request(path);
      expect(await res.text(), path).not.toContain('outside the build');
    }
  });

  it('without a build, / says how to make one', async () => {
    const res = await missing.request('/');
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toContain('text/html');
    const text = await res.text();
    expect(text).toContain('The dashboard is not built');
    expect(text).toContain('npm run build');
    expect(text).toContain(join(dir, 'nothing'));
  });

  it('`dashboard: false` serves no dashboard', async () => {
    const res = await none.request('/');
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toContain('application/json');
  });
});
