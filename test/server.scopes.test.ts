/**
 * The key-scope matrix: every /api/v1 route the app has registered × every scope. The routes are
 * read from the app itself (and checked against the OpenAPI document), so a route added later is
 * in the matrix without editing this file, and a route with no line in ROUTE_SCOPES fails here.
 * A key whose scope does not cover a route gets 403 `forbidden` naming the route, the scope it
 * needs, the key's scopes and the fix; a key whose scope covers it never does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/engine/logger.js';
import { defineWorkflow } from '../src/index.js';
import { createApp } from '../src/server/index.js';
import { openApiPath, requiredScope, ROUTE_SCOPES, scopesAllow } from '../src/server/auth.js';
import { KEY_SCOPES, type KeyScope } from '../src/store/control-store.js';
import { BACKENDS } from './support/databases.js';
import { bearer, call, openServerFixture, type ServerFixture } from './support/server-fixture.js';

const greet = defineWorkflow<{ name: string }>('greet').step('hello', ({ name }) => `hi ${name}`);

/** `METHOD /api/v1/...{param}` of every route registered on the app (middleware excluded). */
function registeredRoutes(f: ServerFixture): string[] {
  const names = f.app.routes
    .filter((r) => r.method !== 'ALL' && r.path.startsWith('/api/v1/'))
    .map((r) => `${r.method} ${openApiPath(r.path)}`);
  return [...new Set(names)].sort();
}

/** A concrete URL for a route: every path parameter filled with an id that names nothing. */
const concrete = (route: string): { method: string; path: string } => {
  const [method, template] = route.split(' ') as [string, string];
  return { method, path: template.replace(/\{[^}]+\}/g, 'none_0000') };
};

describe.each(BACKENDS)('key scopes on %s', (backend) => {
  let f: ServerFixture;
  const keys = {} as Record<KeyScope, { headers: Record<string, string>; id: string }>;

  beforeAll(async () => {
    f = await openServerFixture(backend, [greet], { worker: false });
    for (const scope of KEY_SCOPES) {
      const key = await f.db.stores.control.createApiKey(f.environmentId, `${scope} only`, [scope]);
      keys[scope] = { headers: bearer(key.token), id: key.id };
    }
  });
  afterAll(async () => {
    await f?.close();
  });

  it('every registered /api/v1 route has a declared scope, and the OpenAPI document lists the same routes', async () => {
    const routes = registeredRoutes(f);
    expect(routes.length).toBeGreaterThan(20);
    const undeclared = routes.filter((r) => ROUTE_SCOPES[r] === undefined);
    expect(undeclared, 'add these routes to ROUTE_SCOPES in src/server/auth.ts').toEqual([]);
    // …and no line of the table names a route that is not served (a typo, a removed route).
    const stale = Object.keys(ROUTE_SCOPES).filter((r) => !routes.includes(r));
    expect(stale, 'remove or fix these lines of ROUTE_SCOPES').toEqual([]);

    const doc = (await call(f.app, 'GET', '/api/openapi.json', {})).body as {
      paths: Record<string, Record<string, unknown>>;
    };
    const documented = Object.entries(doc.paths)
      .filter(([path]) => path.startsWith('/api/v1/'))
      .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`))
      .sort();
    expect(documented).toEqual(routes);
    // The document states each operation's scope from the same table.
    const trigger = doc.paths['/api/v1/workflows/{workflowId}/runs']!.post as {
      security: unknown;
    };
    expect(trigger.security).toEqual([{ bearerAuth: ['trigger'] }]);
  });

  it('an undeclared route needs admin (fail closed), also when it is really served', async () => {
    expect(requiredScope('GET', '/api/v1/never-declared')).toBe('admin');
    // Served, but not in ROUTE_SCOPES: an app of its own (routes are fixed after the first request).
    const app = createApp({ stores: f.db.stores, logger: silentLogger() });
    app.get('/api/v1/zz-undeclared', (c) => c.json({ ok: true }));
    const read = await call(app, 'GET', '/api/v1/zz-undeclared', keys.read.headers);
    expect(read.status).toBe(403);
    expect(read.body.error.details).toMatchObject({
      route: 'GET /api/v1/zz-undeclared',
      needed: 'admin',
    });
    const admin = await call(app, 'GET', '/api/v1/zz-undeclared', keys.admin.headers);
    expect(admin.status).toBe(200);
  });

  it('a path that matches no route is a 404 for every scope (nothing to guard)', async () => {
    for (const scope of KEY_SCOPES) {
      const res = await call(f.app, 'GET', '/api/v1/no-such-route', keys[scope].headers);
      expect(res.status).toBe(404);
    }
  });

  it('route × scope: 403 exactly when the scope does not cover the route', async () => {
    const routes = registeredRoutes(f);
    const matrix: string[] = [];
    for (const route of routes) {
      const needed = ROUTE_SCOPES[route]!;
      const { method, path } = concrete(route);
      for (const scope of KEY_SCOPES) {
        const allowed = scopesAllow([scope], needed);
        const body = method === 'GET' || method === 'DELETE' ? undefined : {};
        const res = await call(f.app, method, path, keys[scope].headers, body);
        matrix.push(`${route} ${scope} → ${res.status}`);
        if (allowed) {
          expect([401, 403, 500], `${route} with a ${scope} key`).not.toContain(res.status);
          continue;
        }
        expect(res.status, `${route} with a ${scope} key`).toBe(403);
        expect(res.body.error.code).toBe('forbidden');
        const message = res.body.error.message as string;
        expect(message).toContain(route);
        expect(message).toContain(`\`${needed}\``);
        expect(message).toContain(`\`${scope}\``);
        expect(message).toContain(`weft keys create --scope ${needed}`);
        expect(res.body.error.details).toEqual({
          route,
          needed,
          scopes: [scope],
          keyId: keys[scope].id,
        });
      }
    }
    // Each route was called with each scope.
    expect(matrix).toHaveLength(routes.length * KEY_SCOPES.length);
  });

  it('scopes nest: admin covers everything, trigger covers read, read covers only read', () => {
    expect(scopesAllow(['admin'], 'admin')).toBe(true);
    expect(scopesAllow(['admin'], 'read')).toBe(true);
    expect(scopesAllow(['trigger'], 'read')).toBe(true);
    expect(scopesAllow(['trigger'], 'admin')).toBe(false);
    expect(scopesAllow(['read'], 'trigger')).toBe(false);
    expect(scopesAllow(['read', 'trigger'], 'trigger')).toBe(true);
  });

  it('a key made before scopes existed (the column default) is admin', async () => {
    const rows = await f.db.executor.query<{ scopes: string[] }>(
      `select scopes from weft.api_keys where id = $1`,
      [f.keyId],
    );
    expect(rows.rows[0]?.scopes).toEqual(['admin']);
    await f.db.executor.query(
      `insert into weft.api_keys (id, environment_id, token_hash, token_prefix) values ('key_legacy', $1, 'x', 'weft_x_')`,
      [f.environmentId],
    );
    const legacy = await f.db.executor.query<{ scopes: string[] }>(
      `select scopes from weft.api_keys where id = 'key_legacy'`,
    );
    expect(legacy.rows[0]?.scopes).toEqual(['admin']);
  });
});
