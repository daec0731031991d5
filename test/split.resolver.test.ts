/**
 * The cache-first control-plane resolver (src/store/cache.ts, ControlStore):
 * - missing vs not cached, bounded (least recently used first), TTL, the per-organization epoch,
 *   and a load in flight across a change is not kept;
 * - invalidation across processes: two ControlStores on two connections (two "processes") — a
 *   key revoked, an environment paused, a flag flipped, a new current version on one is what the
 *   other serves on its next strict read; a change in one organization leaves another's cached
 *   rows in place (no reload: counted statements);
 * - with the split off nothing of this costs anything: a cached, authenticated API request
 *   issues no statement for its key or environment and no LISTEN round trip (statement count);
 * - no foreign key crosses the split: the run-ops schemas reference nothing outside themselves.
 * On PostgreSQL (the cross-process parts need two connections) and PGlite where meaningful.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileWorkflow } from '../src/core/graph.js';
import { defineWorkflow } from '../src/index.js';
import { TtlCache } from '../src/store/cache.js';
import { ControlStore } from '../src/store/control-store.js';
import type { Executor } from '../src/store/executor.js';
import { createPgExecutor } from '../src/store/pg-executor.js';
import { createStores, type Stores } from '../src/store/stores.js';
import { createApp } from '../src/server/index.js';
import { silentLogger } from '../src/engine/logger.js';
import {
  BACKENDS,
  createPgDatabase,
  openTestDatabase,
  type TestDatabase,
} from './support/databases.js';

/** A real executor that counts the statements sent through it (pool and transactions). */
function counting(db: Executor): Executor & { statements: string[]; barriers: number } {
  const statements: string[] = [];
  const wrapped = {
    ...db,
    statements,
    barriers: 0,
    query: ((sql: string, params?: readonly unknown[]) => {
      statements.push(sql);
      return db.query(sql, params);
    }) as Executor['query'],
    transaction: ((fn) =>
      db.transaction((tx) =>
        fn({
          ...tx,
          query: ((sql: string, params?: readonly unknown[]) => {
            statements.push(sql);
            return tx.query(sql, params);
          }) as Executor['query'],
        }),
      )) as Executor['transaction'],
  };
  if (db.listenBarrier)
    wrapped.listenBarrier = () => {
      wrapped.barriers++;
      return db.listenBarrier!();
    };
  return wrapped;
}

describe('TtlCache: the resolver storage', () => {
  it('tells "missing" (a cached null) from "not cached"', async () => {
    const cache = new TtlCache<string | null>(60_000);
    expect(cache.peek('k')).toEqual({ cached: false });
    expect(await cache.get('k', async () => null)).toBeNull();
    expect(cache.peek('k')).toEqual({ cached: true, value: null });
  });

  it('is bounded: the least recently used entry goes first', async () => {
    const cache = new TtlCache<number>(60_000, 3);
    for (const k of ['a', 'b', 'c']) await cache.get(k, async () => 1);
    cache.peek('a'); // a is now the most recently used
    await cache.get('d', async () => 1);
    expect(cache.size).toBe(3);
    expect(cache.peek('b')).toEqual({ cached: false });
    expect(cache.peek('a').cached).toBe(true);
    expect(cache.peek('d').cached).toBe(true);
  });

  it('expires entries after the TTL', async () => {
    const cache = new TtlCache<number>(30);
    await cache.get('k', async () => 1);
    expect(cache.peek('k').cached).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    expect(cache.peek('k')).toEqual({ cached: false });
  });

  it("drops one organization's entries (and cached misses), not another's", async () => {
    const cache = new TtlCache<{ org: string } | null>(60_000);
    await cache.get(
      'x1',
      async () => ({ org: 'X' }),
      (v) => v?.org,
    );
    await cache.get(
      'y1',
      async () => ({ org: 'Y' }),
      (v) => v?.org,
    );
    await cache.get(
      'gone',
      async () => null,
      (v) => v?.org,
    );
    cache.dropOrganization('X');
    expect(cache.peek('x1')).toEqual({ cached: false });
    expect(cache.peek('gone')).toEqual({ cached: false });
    expect(cache.peek('y1').cached).toBe(true);
  });

  it('does not keep a value loaded across a change', async () => {
    const cache = new TtlCache<string>(60_000);
    let release!: () => void;
    const loading = cache.get('k', () => new Promise<string>((r) => (release = () => r('old'))));
    cache.dropOrganization('X');
    release();
    expect(await loading).toBe('old');
    expect(cache.peek('k')).toEqual({ cached: false });
  });

  it('loads a key once for callers that miss together; a failed load fails them all and is not kept', async () => {
    const cache = new TtlCache<string>(60_000);
    let loads = 0;
    const releases: Array<(v: string) => void> = [];
    const load = () => {
      loads++;
      return new Promise<string>((r) => releases.push(r));
    };
    const burst = Array.from({ length: 100 }, () => cache.get('k', load));
    for (const release of releases) release('v1');
    expect(await Promise.all(burst)).toEqual(Array(100).fill('v1'));
    expect(loads).toBe(1);
    expect(await cache.get('k', load)).toBe('v1');
    expect(loads).toBe(1);

    const fails: Array<(e: Error) => void> = [];
    const failing = () => {
      loads++;
      return new Promise<string>((_, reject) => fails.push(reject));
    };
    const both = [cache.get('e', failing), cache.get('e', failing)];
    for (const fail of fails) fail(new Error('database down'));
    for (const p of both) await expect(p).rejects.toThrow('database down');
    expect(loads).toBe(2);
    // nothing kept: the next read loads again
    expect(await cache.get('e', () => Promise.resolve('back'))).toBe('back');
  });

  it('a caller that misses after a drop does not join a load that started before it', async () => {
    const cache = new TtlCache<string>(60_000);
    const releases: Array<(v: string) => void> = [];
    const load = () => new Promise<string>((r) => releases.push(r));
    const before = cache.get('k', load);
    cache.invalidate('k');
    const after = cache.get('k', load);
    expect(releases).toHaveLength(2);
    releases[0]!('read before the change');
    releases[1]!('read after the change');
    expect(await before).toBe('read before the change');
    expect(await after).toBe('read after the change');
    expect(cache.peek('k')).toEqual({ cached: true, value: 'read after the change' });
  });
});

describe('invalidation across processes (PostgreSQL: two stores on two connections)', () => {
  let db: { url: string; drop: () => Promise<void> };
  let stores: Stores;
  let otherDb: ReturnType<typeof counting>;
  let other: ControlStore;

  beforeAll(async () => {
    db = await createPgDatabase('split_rs');
    stores = createStores({ control: createPgExecutor({ connectionString: db.url, max: 4 }) });
    await stores.migrate();
    otherDb = counting(createPgExecutor({ connectionString: db.url, max: 4 }));
    other = new ControlStore(otherDb, 'weft', 'strict');
    await other.watchChanges();
  }, 60_000);
  afterAll(async () => {
    await stores?.close();
    await otherDb?.close();
    await db?.drop();
  });

  it('revoke, pause, flag flip, new version on one process: the other serves the change on its next (strict) read', async () => {
    const t = await stores.control.createTenant({
      organization: 'o1',
      project: 'p1',
      environment: 'prod',
    });
    const key = await stores.control.createApiKey(t.environmentId, 'k', ['read']);
    await other.syncBeforeServe();
    expect(await other.resolveApiKey(key.token)).not.toBeNull();
    expect((await other.getEnvironment(t.environmentId))!.paused).toBe(false);
    expect(await other.currentVersion(t.environmentId, 'wf')).toBeNull();

    for (let round = 0; round < 10; round++) {
      const k = await stores.control.createApiKey(t.environmentId, `k${round}`, ['read']);
      await other.syncBeforeServe();
      expect(await other.resolveApiKey(k.token)).not.toBeNull(); // cached now
      await stores.control.revokeApiKey(k.id);
      await other.syncBeforeServe(); // what the server does before each request
      expect(await other.resolveApiKey(k.token)).toBeNull();
    }

    const project = (await stores.control.findProject(t.organizationId, 'p1'))!;
    await stores.control.setEnvironmentPaused(project.id, 'prod', true);
    await other.syncBeforeServe();
    expect((await other.getEnvironment(t.environmentId))!.paused).toBe(true);

    await stores.control.updateOrganizationFlags(t.organizationId, { 'runs.location': 'a0' });
    await other.syncBeforeServe();
    expect((await other.getEnvironment(t.environmentId))!.flags['runs.location']).toBe('a0');

    await stores.control.updateProjectSettings(project.id, { saveDataclips: false });
    await other.syncBeforeServe();
    expect((await other.getEnvironment(t.environmentId))!.saveDataclips).toBe(false);

    // workflow → current version: a cached "no such workflow", then v1, then v2
    const v1 = await stores.control.registerWorkflow(
      t.environmentId,
      compileWorkflow(defineWorkflow('wf').step('a', async () => 1)),
    );
    await other.syncBeforeServe();
    expect((await other.currentVersion(t.environmentId, 'wf'))?.id).toBe(v1.versionId);
    const v2 = await stores.control.registerWorkflow(
      t.environmentId,
      compileWorkflow(defineWorkflow('wf').step('b', async () => 2)),
    );
    await other.syncBeforeServe();
    expect((await other.currentVersion(t.environmentId, 'wf'))?.id).toBe(v2.versionId);
  }, 60_000);

  it("a change in one organization keeps another organization's rows cached (no reload)", async () => {
    const x = await stores.control.createTenant({
      organization: 'ox',
      project: 'px',
      environment: 'prod',
    });
    const y = await stores.control.createTenant({
      organization: 'oy',
      project: 'py',
      environment: 'prod',
    });
    const keyY = await stores.control.createApiKey(y.environmentId, 'y', ['read']);
    await other.syncBeforeServe();
    await other.resolveApiKey(keyY.token);
    await other.getEnvironment(y.environmentId);
    await other.getEnvironment(x.environmentId);

    const notified = other.cacheStats.notifications;
    await stores.control.updateOrganizationFlags(x.organizationId, { beta: true });
    await other.syncBeforeServe();
    expect(other.cacheStats.notifications).toBeGreaterThan(notified); // the change arrived
    const before = otherDb.statements.length;
    await other.resolveApiKey(keyY.token);
    await other.getEnvironment(y.environmentId);
    expect(otherDb.statements.length).toBe(before); // Y's rows: still cached
    expect((await other.getEnvironment(x.environmentId))!.flags.beta).toBe(true); // X's: reloaded
    expect(otherDb.statements.length).toBe(before + 1);
  });

  it('while the LISTEN connection is down, strict reads go to the database (never a stale row)', async () => {
    const lone = counting(createPgExecutor({ connectionString: db.url, max: 2 }));
    const store = new ControlStore(lone, 'weft', 'strict');
    try {
      const t = await stores.control.createTenant({
        organization: 'od',
        project: 'pd',
        environment: 'prod',
      });
      const k = await stores.control.createApiKey(t.environmentId, 'd', ['read']);
      // never watched: no LISTEN connection, so nothing can be promised
      await store.syncBeforeServe();
      expect(await store.resolveApiKey(k.token)).not.toBeNull();
      await stores.control.revokeApiKey(k.id);
      await store.syncBeforeServe();
      expect(store.cacheStats.syncsDown).toBe(2);
      expect(await store.resolveApiKey(k.token)).toBeNull();
    } finally {
      await lone.close();
    }
  });
});

describe.each(BACKENDS)(
  'with the split off, the resolver costs nothing per request (%s)',
  (backend) => {
    let db: TestDatabase;
    let counted: ReturnType<typeof counting>;
    let stores: Stores;

    beforeAll(async () => {
      db = await openTestDatabase(backend);
      counted = counting(db.executor);
      stores = createStores({ control: counted });
    }, 60_000);
    afterAll(async () => {
      await db?.close();
    });

    it('a cached, authenticated request: no statement for the key or environment, no LISTEN round trip', async () => {
      expect(stores.control.consistency).toBe('notify');
      const t = await stores.control.createTenant({
        organization: 'o',
        project: 'p',
        environment: 'prod',
      });
      const key = await stores.control.createApiKey(t.environmentId, 'k', ['read']);
      const app = createApp({ stores, logger: silentLogger(), dashboard: false, metrics: false });
      const get = () =>
        app.request('/api/v1/workflows', { headers: { authorization: `Bearer ${key.token}` } });
      expect((await get()).status).toBe(200); // warms the key cache and starts the listener
      const before = counted.statements.length;
      const N = 20;
      for (let i = 0; i < N; i++) expect((await get()).status).toBe(200);
      const perRequest = counted.statements.slice(before);
      // Only the route's own read of the workflows, once per request: nothing for the key.
      expect(perRequest.filter((s) => /api_keys|environments|organizations/.test(s))).toEqual([]);
      expect(perRequest.length).toBe(N);
      expect(counted.barriers).toBe(0);
      expect(stores.control.cacheStats.syncs).toBe(0);
      console.log(
        `${backend}, split off: ${perRequest.length / N} statement per cached request (the route's own), 0 for the key, 0 LISTEN round trips`,
      );
    });
  },
);

describe('no foreign key crosses the split (PostgreSQL, control and run-ops in two databases)', () => {
  let control: { url: string; drop: () => Promise<void> };
  let ops: { url: string; drop: () => Promise<void> };
  let stores: Stores;

  beforeAll(async () => {
    control = await createPgDatabase('split_fk_ctl');
    ops = await createPgDatabase('split_fk_ops');
    stores = createStores({
      control: createPgExecutor({ connectionString: control.url, max: 2 }),
      runOps: createPgExecutor({ connectionString: ops.url, max: 2 }),
      locationTags: ['a0', 'b1'],
    });
    await stores.migrate();
  }, 60_000);
  afterAll(async () => {
    await stores?.close();
    await control?.drop();
    await ops?.drop();
  });

  it('run-ops schemas reference nothing outside their own schema; the control plane references nothing of theirs', async () => {
    const crossing = `
      select c.conname, n.nspname as from_schema, fn.nspname as to_schema
        from pg_constraint c
        join pg_class t on t.oid = c.conrelid join pg_namespace n on n.oid = t.relnamespace
        join pg_class f on f.oid = c.confrelid join pg_namespace fn on fn.oid = f.relnamespace
       where c.contype = 'f' and n.nspname like 'weft%' and n.nspname <> fn.nspname`;
    expect((await stores.runOpsDb.query(crossing)).rows).toEqual([]);
    expect((await stores.controlDb.query(crossing)).rows).toEqual([]);
    // and the run-ops database holds no control table a reference could point at
    const controlTables = await stores.runOpsDb.query(
      `select 1 from pg_tables where schemaname = 'weft'`,
    );
    expect(controlTables.rows).toEqual([]);
  });
});
