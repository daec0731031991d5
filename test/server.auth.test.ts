/**
 * The key matrix: every /api/v1 route, called by a key of the same environment, of a sibling
 * environment in the same project, of another organization, and by revoked, malformed and
 * missing keys. Another tenant's ids are 404 (never 403); list routes show only the caller's
 * environment.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS } from './support/databases.js';
import {
  allRunIds,
  call,
  openServerFixture,
  type ServerFixture,
} from './support/server-fixture.js';

const greet = defineWorkflow<{ name: string }>('greet')
  .step('hello', ({ name }) => `hello ${name}`)
  .step('shout', { after: 'hello' }, (s) => s.toUpperCase());

interface RouteCase {
  name: string;
  method: 'GET' | 'POST';
  path: (ids: Ids) => string;
  body?: unknown;
  /** Status for the owning environment's key. */
  ok: number;
  /** How another environment's key sees it: 404, or a list without the owner's items. */
  foreign: 404 | { list: (body: { data: Array<{ id: string }> }, ids: Ids) => void };
}

interface Ids {
  runId: string;
  dataclipId: string;
}

const ROUTES: RouteCase[] = [
  {
    name: 'list workflows',
    method: 'GET',
    path: () => '/api/v1/workflows',
    ok: 200,
    foreign: { list: (body) => expect(body.data.map((w) => w.id)).not.toContain('only-in-a') },
  },
  {
    name: 'get workflow',
    method: 'GET',
    path: () => '/api/v1/workflows/only-in-a',
    ok: 200,
    foreign: 404,
  },
  {
    name: 'trigger run',
    method: 'POST',
    path: () => '/api/v1/workflows/only-in-a/runs',
    body: { input: { name: 'matrix' } },
    ok: 201,
    foreign: 404,
  },
  {
    name: 'list runs',
    method: 'GET',
    path: () => '/api/v1/runs?limit=100',
    ok: 200,
    foreign: { list: (body, ids) => expect(body.data.map((r) => r.id)).not.toContain(ids.runId) },
  },
  {
    name: 'get run',
    method: 'GET',
    path: (ids) => `/api/v1/runs/${ids.runId}`,
    ok: 200,
    foreign: 404,
  },
  {
    name: 'list step runs',
    method: 'GET',
    path: (ids) => `/api/v1/runs/${ids.runId}/steps`,
    ok: 200,
    foreign: 404,
  },
  {
    name: 'get dataclip',
    method: 'GET',
    path: (ids) => `/api/v1/dataclips/${ids.dataclipId}`,
    ok: 200,
    foreign: 404,
  },
];

describe.each(BACKENDS)('API keys and tenancy on %s', (backend) => {
  let f: ServerFixture;
  let ids: Ids;

  beforeAll(async () => {
    const onlyInA = defineWorkflow<unknown>('only-in-a').step('echo', (x) => x);
    f = await openServerFixture(backend, [greet]);
    await f.engine.register(onlyInA);
    const { run } = await f.engine.trigger('greet', { name: 'a' });
    const done = await f.engine.waitForRun(run.id);
    expect(done.status).toBe('succeeded');
    ids = { runId: run.id, dataclipId: done.finalDataclipId! };
  });
  afterAll(async () => {
    await f?.close();
  });

  describe.each(ROUTES)('$method $name', (route) => {
    it('answers the owning environment', async () => {
      const res = await call(f.app, route.method, route.path(ids), f.auth, route.body);
      expect(res.status).toBe(route.ok);
    });

    it.each(['sibling', 'foreign'] as const)(
      'hides it from a key of a %s environment',
      async (who) => {
        const other = who === 'sibling' ? f.sibling : f.foreign;
        const before = await allRunIds(f.db, f.environmentId);
        const res = await call(f.app, route.method, route.path(ids), other.auth, route.body);
        if (route.foreign === 404) {
          expect(res.status).toBe(404);
          expect(res.body.error.code).toMatch(/^(not_found|unknown_workflow)$/);
          // The answer must not differ from that for an id that never existed.
          expect(JSON.stringify(res.body)).not.toContain(f.environmentId);
        } else {
          expect(res.status).toBe(200);
          route.foreign.list(res.body, ids);
        }
        // Nothing was written in the owner's environment or the caller's.
        expect(await allRunIds(f.db, f.environmentId)).toEqual(before);
        expect(await allRunIds(f.db, other.environmentId)).toEqual([]);
      },
    );

    it('refuses revoked, unknown, malformed and missing keys with 401', async () => {
      for (const caller of f.unauthorized) {
        const res = await call(f.app, route.method, route.path(ids), caller.headers, route.body);
        expect({
          caller: caller.name,
          status: res.status,
          code: res.body.error?.code,
          reason: res.body.error?.details?.reason,
        }).toEqual({
          caller: caller.name,
          status: 401,
          code: 'unauthorized',
          reason: caller.reason,
        });
        expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
        // The key is never echoed back.
        expect(JSON.stringify(res.body)).not.toMatch(/[0-9A-Za-z]{31,}/);
      }
    });
  });

  it('sees the sibling environment’s own runs with the sibling key, and only those', async () => {
    const { run } = await f.sibling.engine.trigger('greet', { name: 'sibling' });
    const mine = await call(f.app, 'GET', '/api/v1/runs?limit=100', f.sibling.auth);
    expect(mine.body.data.map((r: { id: string }) => r.id)).toEqual([run.id]);
    const asA = await call(f.app, 'GET', `/api/v1/runs/${run.id}`, f.auth);
    expect(asA.status).toBe(404);
    const asSibling = await call(f.app, 'GET', `/api/v1/runs/${run.id}`, f.sibling.auth);
    expect(asSibling.status).toBe(200);
    expect(asSibling.body.id).toBe(run.id);
  });

  it('stops accepting a key as soon as it is revoked', async () => {
    const key = await f.db.stores.control.createApiKey(f.environmentId);
    const headers = { authorization: `Bearer ${key.token}` };
    expect((await call(f.app, 'GET', '/api/v1/workflows', headers)).status).toBe(200);
    await f.db.stores.control.revokeApiKey(key.id);
    expect((await call(f.app, 'GET', '/api/v1/workflows', headers)).status).toBe(401);
  });

  it('accepts the scheme name in any case and surrounding spaces, as RFC 7235 allows', async () => {
    const token = f.auth.authorization!.slice('Bearer '.length);
    for (const header of [`bearer ${token}`, `BEARER  ${token}`, `Bearer ${token} `]) {
      const res = await call(f.app, 'GET', '/api/v1/workflows', { authorization: header });
      expect(res.status).toBe(200);
    }
  });

  it('needs no key for the probes and the API description', async () => {
    for (const path of ['/healthz', '/readyz', '/api/openapi.json', '/api/docs']) {
      const res = await call(f.app, 'GET', path, {});
      expect({ path, status: res.status }).toEqual({ path, status: 200 });
    }
  });
});
