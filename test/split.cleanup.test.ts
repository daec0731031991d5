/**
 * Deleting an environment, a project or an organization in the control plane cleans its run data
 * in the run-ops database (no cascade crosses the split): a bounded, resumable cleanup job. On
 * PostgreSQL with the control plane and run-ops in two databases, and on PGlite in one. After the
 * job: no row of the deleted environments in any run table, no orphan row anywhere (events,
 * attempts, step runs, waitpoints, dataclips without their run), and the other tenants untouched.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import type { Engine } from '../src/engine/engine.js';
import { createPgExecutor } from '../src/store/pg-executor.js';
import { createPgliteExecutor } from '../src/store/pglite-executor.js';
import { CleanupStore } from '../src/store/cleanup-store.js';
import { createStores, type Stores } from '../src/store/stores.js';
import { BACKENDS, createPgDatabase, type Backend } from './support/databases.js';
import { startTestEngine } from './support/engine.js';

const quick = defineWorkflow<{ n: number }>('quick')
  .step('a', async ({ n }) => n + 1)
  .step('b', { after: 'a' }, async (n: number) => n * 2);

// Parked on a long sleep: a run still open when its environment is deleted.
const parked = defineWorkflow<{ n: number }>('parked')
  .step('a', async ({ n }) => n)
  .sleep('wait', { duration: '1h', after: 'a' });

const RUN_TABLES = ['runs', 'step_runs', 'dataclips', 'waitpoints'] as const;

async function openSplitStores(
  backend: Backend,
): Promise<{ stores: Stores; close: () => Promise<void> }> {
  if (backend === 'pglite') {
    const stores = createStores({ control: await createPgliteExecutor() });
    await stores.migrate();
    return { stores, close: () => stores.close() };
  }
  const control = await createPgDatabase('split_cl_ctl');
  const ops = await createPgDatabase('split_cl_ops');
  const stores = createStores({
    control: createPgExecutor({ connectionString: control.url, max: 6 }),
    runOps: createPgExecutor({ connectionString: ops.url, max: 6 }),
  });
  await stores.migrate();
  return {
    stores,
    close: async () => {
      await stores.close();
      await control.drop();
      await ops.drop();
    },
  };
}

describe.each(BACKENDS)('cleanup of deleted tenants on %s', (backend) => {
  let stores: Stores;
  let close: () => Promise<void>;
  let engines: Engine[] = [];

  beforeAll(async () => {
    ({ stores, close } = await openSplitStores(backend));
  }, 60_000);
  afterAll(async () => {
    await Promise.all(engines.map((e) => e.stop()));
    await close?.();
  });

  /** Rows of these environments in every run table of every location and ops schema. */
  async function rowsOf(environments: string[]): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const loc of stores.runs.locations.values()) {
      for (const table of RUN_TABLES) {
        const r = await loc.db.query<{ n: string }>(
          `select count(*) as n from ${loc.schema}.${table} where environment_id = any($1::text[])`,
          [environments],
        );
        out[`${loc.tag}.${table}`] = Number(r.rows[0]!.n);
      }
    }
    for (const db of stores.runOpsDbs)
      for (const table of ['idempotency_keys', 'bulk_reruns']) {
        const r = await db.query<{ n: string }>(
          `select count(*) as n from ${stores.schemas.ops}.${table} where environment_id = any($1::text[])`,
          [environments],
        );
        out[`ops.${table}`] = Number(r.rows[0]!.n);
      }
    return out;
  }

  /** Rows that point at a run that no longer exists (the tables without a foreign key to runs). */
  async function orphans(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const loc of stores.runs.locations.values()) {
      const l = loc.schema;
      const q = async (name: string, sql: string) => {
        const r = await loc.db.query<{ n: string }>(sql);
        out[`${loc.tag}.${name}`] = Number(r.rows[0]!.n);
      };
      await q(
        'run_events',
        `select count(*) as n from ${l}.run_events e where not exists (select 1 from ${l}.runs r where r.id = e.run_id)`,
      );
      await q(
        'attempts',
        `select count(*) as n from ${l}.attempts a where not exists (select 1 from ${l}.runs r where r.id = a.run_id)`,
      );
      await q(
        'dataclips',
        `select count(*) as n from ${l}.dataclips d where d.run_id is not null and not exists (select 1 from ${l}.runs r where r.id = d.run_id)`,
      );
      await q(
        'step_runs',
        `select count(*) as n from ${l}.step_runs s where not exists (select 1 from ${l}.runs r where r.id = s.run_id)`,
      );
      await q(
        'waitpoints',
        `select count(*) as n from ${l}.waitpoints w where not exists (select 1 from ${l}.runs r where r.id = w.run_id)`,
      );
      await q(
        'run_event_watchers',
        `select count(*) as n from ${l}.run_event_watchers w where not exists (select 1 from ${l}.runs r where r.id = w.run_id)`,
      );
    }
    return out;
  }

  const allZero = (counts: Record<string, number>) =>
    Object.fromEntries(Object.keys(counts).map((k) => [k, 0]));

  it('deleting an environment, then an organization, leaves no row of theirs and no orphan in any run table; others are untouched', async () => {
    // Organization 1 has two environments (doomed, doomedToo); organization 2 one (kept).
    const e1 = await startTestEngine(stores, [quick, parked]);
    const env1 = (await stores.control.getEnvironment(e1.environmentId))!;
    const env2 = await stores.control.createEnvironment(env1.projectId, 'second');
    const e2 = await startTestEngine(stores, [quick, parked], { environmentId: env2 });
    const keep = await startTestEngine(stores, [quick, parked]);
    engines = [e1, e2, keep];

    for (const engine of engines) {
      const runs = [];
      for (let i = 0; i < 12; i++)
        runs.push((await engine.trigger('quick', { n: i }, { idempotencyKey: `k${i}` })).run.id);
      for (let i = 0; i < 3; i++) await engine.trigger('parked', { n: i });
      for (const id of runs) await engine.waitForRun(id, { timeoutMs: 30_000 });
    }
    await Promise.all(engines.map((e) => e.stop()));
    engines = [];

    const keptBefore = await rowsOf([keep.environmentId]);
    expect(keptBefore['a0.runs']).toBe(15);
    const before = await rowsOf([e1.environmentId]);
    expect(before['a0.runs']).toBe(15);
    expect(before['a0.waitpoints']).toBe(3);
    expect(before['ops.idempotency_keys']).toBe(12);

    // 1. Delete one environment: the control rows go at once, the run data by the job.
    const deleted = await stores.control.deleteTenant('environment', e1.environmentId);
    expect(deleted.environments).toEqual([e1.environmentId]);
    expect(await stores.control.getEnvironment(e1.environmentId)).toBeNull();
    const cleanup = new CleanupStore(stores);
    expect((await cleanup.listJobs()).map((j) => [j.environmentId, j.status])).toEqual([
      [e1.environmentId, 'pending'],
    ]);

    // Bounded and resumable: one batch of 4 runs per call; a "crashed" owner's lease expires
    // and another process carries on from where the rows are.
    const first = await cleanup.runOnce({
      owner: 'crashes',
      batchSize: 4,
      maxBatches: 1,
      graceMs: 0,
      leaseMs: 1,
    });
    expect(first.batches).toBe(1);
    expect(first.deleted.runs).toBe(4);
    expect(first.finished).toEqual([]);
    expect((await rowsOf([e1.environmentId]))['a0.runs']).toBe(11);
    expect((await cleanup.listJobs())[0]!.status).toBe('pending');
    await new Promise((r) => setTimeout(r, 20)); // the 1 ms lease is over
    let passes = 0;
    for (;;) {
      passes++;
      const pass = await cleanup.runOnce({
        owner: 'resumes',
        batchSize: 4,
        maxBatches: 2,
        graceMs: 0,
      });
      expect(pass.batches).toBeLessThanOrEqual(2);
      if (pass.finished.includes(e1.environmentId)) break;
      expect(passes).toBeLessThan(20);
    }
    const job = (await cleanup.listJobs())[0]!;
    expect(job.status).toBe('done');
    expect(job.deleted.runs).toBe(15);
    expect(job.deleted.idempotency_keys).toBe(12);

    const after = await rowsOf([e1.environmentId]);
    expect(after).toEqual(allZero(after));
    expect(await orphans()).toEqual(allZero(await orphans()));
    expect(await rowsOf([keep.environmentId])).toEqual(keptBefore);
    expect((await rowsOf([env2]))['a0.runs']).toBe(15);

    // 2. Delete the whole organization: its remaining environment is cleaned the same way.
    const orgDeleted = await stores.control.deleteTenant('organization', env1.organizationId);
    expect(orgDeleted.environments).toEqual([env2]);
    const pass = await cleanup.runOnce({ graceMs: 0 });
    expect(pass.finished).toEqual([env2]);
    const after2 = await rowsOf([env2]);
    expect(after2).toEqual(allZero(after2));
    expect(await orphans()).toEqual(allZero(await orphans()));
    expect(await rowsOf([keep.environmentId])).toEqual(keptBefore);

    // Nothing left to do: a pass is one probe of the pending index.
    expect(await cleanup.runOnce({ graceMs: 0 })).toMatchObject({ batches: 0, environments: [] });
  }, 120_000);

  it('a job waits out the grace period (triggers accepted on a cached environment row land first)', async () => {
    const engine = await startTestEngine(stores, [quick], { worker: false });
    await engine.trigger('quick', { n: 1 });
    await engine.stop();
    await stores.control.deleteTenant(
      'project',
      (await stores.control.getEnvironment(engine.environmentId))!.projectId,
    );
    const cleanup = new CleanupStore(stores);
    expect(await cleanup.runOnce({ graceMs: 60_000 })).toMatchObject({ batches: 0 });
    expect((await rowsOf([engine.environmentId]))['a0.runs']).toBe(1);
    const done = await cleanup.runOnce({ graceMs: 0 });
    expect(done.finished).toEqual([engine.environmentId]);
    expect((await rowsOf([engine.environmentId]))['a0.runs']).toBe(0);
  }, 60_000);
});
