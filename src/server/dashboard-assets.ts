/**
 * Serving the dashboard: the Vite build of `dashboard/` (a static single-page app) at `/`.
 *
 * GET and HEAD requests outside the API's own prefixes are answered from the build folder: a
 * file that exists is sent with its content type, anything else gets `index.html`, so a reload of
 * `/runs/run_…` opens the page the browser was on (the app routes on the path). Files under
 * `assets/` carry a content hash in their name and are cached for a year; `index.html` is
 * revalidated on every load, so a new build is picked up at once.
 *
 * The folder is looked up per request until it is found (then remembered): building the
 * dashboard while `weft dev` runs needs no restart. Without a build, `/` explains how to make one.
 */
import { readFile, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MiddlewareHandler } from 'hono';

export interface DashboardOptions {
  /** The folder holding the build (`index.html` and `assets/`). */
  dir: string;
}

/** Paths that belong to the API and probes: never answered with the dashboard. */
const API_PREFIXES = ['/api', '/hooks', '/healthz', '/readyz', '/metrics'];

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
};

/**
 * The page's own code only: React Flow and the app set inline styles, nothing is loaded from
 * elsewhere, and the API is same-origin.
 */
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/**
 * The build next to the compiled server: `dist/server/dashboard-assets.js` → `dist/dashboard`.
 * Run from source (`src/server`, e.g. under tsx), the same relative path is `src/dashboard`,
 * which never exists; then `dist/dashboard` of the checkout is used. `WEFT_DASHBOARD_DIR` overrides
 * both.
 */
export function defaultDashboardDir(): string {
  // Another build (a fork's, or the browser test's own) without changing code.
  const fromEnv = process.env.WEFT_DASHBOARD_DIR;
  if (fromEnv) return resolve(fromEnv);
  const besideServer = fileURLToPath(new URL('../dashboard', import.meta.url));
  if (existsSync(join(besideServer, 'index.html'))) return besideServer;
  return fileURLToPath(new URL('../../dist/dashboard', import.meta.url));
}

export function isApiPath(path: string): boolean {
  return API_PREFIXES.some((p) => path === p || path.startsWith(`${p}/`));
}

/** Middleware that answers dashboard requests and passes everything else on. */
export function serveDashboard(options: DashboardOptions): MiddlewareHandler {
  const root = resolve(options.dir);
  let built = false;

  return async (c, next) => {
    const method = c.req.method;
    if ((method !== 'GET' && method !== 'HEAD') || isApiPath(c.req.path)) return next();

    if (!built) {
      built = existsSync(join(root, 'index.html'));
      if (!built) {
        c.header('Cache-Control', 'no-store');
        return c.html(notBuiltPage(root), 404);
      }
    }

    const file = await findFile(root, c.req.path);
    const target = file ?? join(root, 'index.html');
    // A missing hashed asset is a stale page asking for an old build: 404, not the SPA page.
    if (!file && c.req.path.startsWith('/assets/')) return next();
    let body: Buffer;
    try {
      body = await readFile(target);
    } catch {
      return next();
    }
    const type = CONTENT_TYPES[extname(target)] ?? 'application/octet-stream';
    const hashed = file !== undefined && c.req.path.startsWith('/assets/');
    const headers: Record<string, string> = {
      'Content-Type': type,
      'Cache-Control': hashed ? 'public, max-age=31536000, immutable' : 'no-cache',
    };
    if (type.startsWith('text/html')) {
      headers['Content-Security-Policy'] = CSP;
      headers['Referrer-Policy'] = 'no-referrer';
    }
    if (method === 'HEAD') return c.body(null, 200, headers);
    return c.body(new Uint8Array(body), 200, headers);
  };
}

/** The file a URL path names inside `root`, or undefined (directories, escapes, missing). */
async function findFile(root: string, urlPath: string): Promise<string | undefined> {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  if (decoded === '/' || decoded.includes('\0')) return undefined;
  const candidate = resolve(root, `.${decoded}`);
  if (!candidate.startsWith(root + sep)) return undefined;
  try {
    return (await stat(candidate)).isFile() ? candidate : undefined;
  } catch {
    return undefined;
  }
}

function notBuiltPage(dir: string): string {
  const escaped = dir.replace(/[&<>"]/g, (ch) => `&#${ch.charCodeAt(0)};`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Weft — dashboard not built</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1f2937}code{background:#f3f4f6;padding:.1rem .3rem;border-radius:4px}</style>
</head><body>
<h1>The dashboard is not built</h1>
<p>This server looks for the dashboard in <code>${escaped}</code>, and there is no <code>index.html</code> there.</p>
<p>In a checkout of Weft, run <code>npm run build</code> (or only the dashboard: <code>npx vite build --config dashboard/vite.config.ts</code>) and reload this page. The installed npm package ships the build.</p>
<p>The API works without it: <a href="/api/docs">/api/docs</a>.</p>
</body></html>`;
}
