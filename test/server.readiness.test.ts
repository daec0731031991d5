/**
 * Readiness tells its reasons apart: migrated (200), a schema not migrated (503 `not_migrated`,
 * naming the schemas), a database that does not answer (503 `database_unreachable`, naming which
 * database) — through `Stores.readiness()` and through `GET /readyz`.
 */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../src/engine/logger.js';
import { createApp } from '../src/server/index.js';
import type { Executor } from '../src/store/executor.js';
import { createPgExecutor } from '../src/store/pg-executor.js';
import { createPgliteExecutor } from '../src/store/pglite-executor.js';
import { createStores } from '../src/store/stores.js';
import { BACKENDS, createPgDatabase, type Backend } from './support/databases.js';
import { call } from './support/server-fixture.js';

async function openExecutor(
  backend: Backend,
): Promise<{ db: Executor; drop: () => Promise<void> }> {
  if (backend === 'pglite') return { db: await createPgliteExecutor(), drop: async () => {} };
  const pg = await createPgDatabase('ready');
  return { db: createPgExecutor({ connectionString: pg.url, max: 2 }), drop: pg.drop };
}

describe.each(BACKENDS)('readiness on %s', (backend) => {
  it('is ready once migrated, and names the schemas that are not', async () => {
    const { db, drop } = await openExecutor(backend);
    const stores = createStores({ control: db });
    const app = createApp({ stores, logger: silentLogger(), metrics: false });
    try {
      expect(await stores.readiness()).toEqual({
        ready: false,
        reason: 'not_migrated',
        schemas: ['weft', 'weft_ops', 'weft_loc_a0'],
        details: [
          expect.stringMatching(
            /^schema weft has 0 of this build's \d+ control migrations; run `weft migrate`$/,
          ),
          expect.stringMatching(
            /^schema weft_ops has 0 of this build's \d+ ops migrations; run `weft migrate`$/,
          ),
          expect.stringMatching(
            /^schema weft_loc_a0 has 0 of this build's \d+ location migrations; run `weft migrate`$/,
          ),
        ],
      });
      const before = await call(app, 'GET', '/readyz', {});
      expect(before.status).toBe(503);
      expect(before.body.error).toMatchObject({
        code: 'not_ready',
        details: { reason: 'not_migrated', schemas: ['weft', 'weft_ops', 'weft_loc_a0'] },
      });
      expect(before.body.error.message).toMatch(/weft migrate/);

      await stores.migrate();
      expect(await stores.readiness()).toEqual({ ready: true });
      expect(await stores.isReady()).toBe(true);
      expect(await call(app, 'GET', '/readyz', {})).toMatchObject({
        status: 200,
        body: { status: 'ready' },
      });

      // One location schema behind (its last migration row gone, as after a partial deploy).
      await db.query(
        `delete from weft_loc_a0.weft_migrations where number = (select max(number) from weft_loc_a0.weft_migrations)`,
      );
      expect(await stores.readiness()).toEqual({
        ready: false,
        reason: 'not_migrated',
        schemas: ['weft_loc_a0'],
        details: [
          expect.stringMatching(
            /^schema weft_loc_a0 has \d+ of this build's \d+ location migrations/,
          ),
        ],
      });
      const behind = await call(app, 'GET', '/readyz', {});
      expect(behind.status).toBe(503);
      expect(behind.body.error.details).toEqual({
        reason: 'not_migrated',
        schemas: ['weft_loc_a0'],
      });
      expect(behind.body.error.message).toContain('"weft_loc_a0"');
    } finally {
      await stores.close();
      await drop();
    }
  });

  it('says the database is unreachable once it is closed, without leaking the driver error', async () => {
    const { db, drop } = await openExecutor(backend);
    const stores = createStores({ control: db });
    await stores.migrate();
    const app = createApp({ stores, logger: silentLogger(), metrics: false });
    expect((await call(app, 'GET', '/readyz', {})).status).toBe(200);
    await stores.close();
    try {
      const verdict = await stores.readiness();
      expect(verdict).toMatchObject({ ready: false, reason: 'unreachable', database: 'control' });
      expect(await stores.isReady()).toBe(false);
      const res = await call(app, 'GET', '/readyz', {});
      expect(res.status).toBe(503);
      expect(res.body.error.details).toEqual({
        reason: 'database_unreachable',
        database: 'control',
      });
      expect(res.body.error.message).toMatch(
        /control-plane \(DATABASE_URL\) database is unreachable/,
      );
      expect(res.body.error.message).not.toContain((verdict as { message: string }).message);
      // Liveness does not depend on the database.
      expect((await call(app, 'GET', '/healthz', {})).status).toBe(200);
    } finally {
      await drop();
    }
  });

  it('names the run-ops database when that is the one that is gone (split mode)', async () => {
    const control = await openExecutor(backend);
    const runOps = await openExecutor(backend);
    const stores = createStores({ control: control.db, runOps: runOps.db });
    try {
      await stores.migrate();
      expect(await stores.readiness()).toEqual({ ready: true });
      await runOps.db.close();
      expect(await stores.readiness()).toMatchObject({
        ready: false,
        reason: 'unreachable',
        database: 'run_ops',
      });
      const app = createApp({ stores, logger: silentLogger(), metrics: false });
      const res = await call(app, 'GET', '/readyz', {});
      expect(res.body.error.details).toEqual({
        reason: 'database_unreachable',
        database: 'run_ops',
      });
      expect(res.body.error.message).toContain('RUN_OPS_DATABASE_URL');
    } finally {
      await control.db.close();
      await control.drop();
      await runOps.drop();
    }
  });
});
