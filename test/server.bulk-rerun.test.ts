/**
 * Bulk recovery: after an "outage" fails a batch of runs at one step, a dry run summarizes what
 * rerunning them would do and writes nothing; the real thing reruns each from its failed step
 * as a tracked action whose progress reads over HTTP. Exactly once per source run, even when a
 * process dies mid-item, holds a lease and dies, or two processes work on one action at once.
 * Bad input gets 4xx errors that name what is wrong.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createBulkRerun,
  processBulkRerunBatch,
  selectBulkRuns,
  summarizeBulkRerun,
  bulkStoreOf,
} from '../src/engine/bulk-rerun.js';
import { Engine } from '../src/engine/engine.js';
import { prepareRerun } from '../src/engine/rerun.js';
import { silentLogger } from '../src/engine/logger.js';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';
import { call, openServerFixture, type ServerFixture } from './support/server-fixture.js';

let broken = true;
const calls = { a: 0, b: 0, c: 0 };
const outage = defineWorkflow<number>('bk-outage')
  .step('a', (x: number) => {
    calls.a++;
    return x + 1;
  })
  .step('b', { after: 'a', retry: { maxAttempts: 1 } }, (x: number) => {
    calls.b++;
    if (broken) throw new Error('payments API is down');
    return x * 10;
  })
  .step('c', { after: 'b' }, (x: number) => {
    calls.c++;
    return { total: x };
  });

let loopBroken = true;
const loopCalls: number[] = [];
const looping = defineWorkflow<number[]>('bk-loop').forEach('each', {
  items: (xs: number[]) => xs,
  body: (b) =>
    b.step('sq', { retry: { maxAttempts: 1 } }, (n: number) => {
      loopCalls.push(n);
      if (loopBroken && n === 3) throw new Error('three is down');
      return n * n;
    }),
});

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

describe.each(BACKENDS)('bulk reruns over HTTP on %s', (backend) => {
  let f: ServerFixture;
  const failedRuns: string[] = [];
  beforeAll(async () => {
    f = await openServerFixture(backend, [outage]);
    broken = true;
    for (let i = 0; i < 5; i++) failedRuns.push((await f.engine.trigger('bk-outage', i)).run.id);
    for (const id of failedRuns) expect((await f.engine.waitForRun(id)).status).toBe('failed');
  });
  afterAll(async () => {
    await f?.close();
  });

  const runTotal = async () =>
    (await f.db.stores.runs.listRuns({ environmentId: f.environmentId, limit: 100 })).data.length;

  it('dry run: how many runs, which steps rerun and which are reused; nothing written', async () => {
    const before = await runTotal();
    const res = await call(f.app, 'POST', '/api/v1/bulk-reruns', f.auth, {
      filter: { workflowId: 'bk-outage' },
      dryRun: true,
    });
    expect(res.status).toBe(200);
    expect(res.body.summary).toEqual({
      runs: 5,
      planned: 5,
      steps: [
        { stepId: 'a', rerun: 0, reuse: 5, skip: 0 },
        { stepId: 'b', rerun: 5, reuse: 0, skip: 0 },
        { stepId: 'c', rerun: 5, reuse: 0, skip: 0 },
      ],
      fromSteps: [{ fromStep: 'b', runs: 5 }],
      problems: [],
    });
    expect(await runTotal()).toBe(before);
  });

  it('reruns every failed run from its failed step, tracked to the end', async () => {
    broken = false;
    const aBefore = calls.a;
    const res = await call(f.app, 'POST', '/api/v1/bulk-reruns', f.auth, {
      filter: { workflowId: 'bk-outage', status: ['failed'] },
    });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({
      id: expect.stringMatching(/^bulk_/),
      total: 5,
      fromStep: null,
      version: 'original',
    });
    const id = res.body.id as string;
    let progress = res.body;
    for (let i = 0; i < 200 && progress.status === 'running'; i++) {
      await sleep(50);
      progress = (await call(f.app, 'GET', `/api/v1/bulk-reruns/${id}`, f.auth)).body;
    }
    expect(progress).toMatchObject({ status: 'succeeded', total: 5, done: 5, failed: 0 });
    expect(progress.runIds).toHaveLength(5);
    expect(progress.items.map((i: { sourceRunId: string }) => i.sourceRunId).sort()).toEqual(
      [...failedRuns].sort(),
    );
    for (const item of progress.items)
      expect(item).toMatchObject({ status: 'done', fromStep: 'b' });
    for (const runId of progress.runIds as string[]) {
      const run = await f.engine.waitForRun(runId);
      expect(run.status).toBe('succeeded');
      expect(failedRuns).toContain(run.rerunOf);
    }
    expect(calls.a).toBe(aBefore); // `a` reused in every rerun
    // The failed runs are still failed (reruns are new runs): a second action would find them
    // again; the dashboard follows `rerunOf` to show they were recovered.
  });

  it('4xx for bad input: unknown workflow, nothing matching, unknown step, wrong types, bad id', async () => {
    const unknown = await call(f.app, 'POST', '/api/v1/bulk-reruns', f.auth, {
      filter: { workflowId: 'nope' },
    });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.message).toMatch(
      /`nope` is not a workflow .*Registered: `bk-outage`/,
    );

    const none = await call(f.app, 'POST', '/api/v1/bulk-reruns', f.auth, {
      filter: { workflowId: 'bk-outage', createdFrom: '2999-01-01T00:00:00Z' },
      dryRun: true,
    });
    expect(none.status).toBe(422);
    expect(none.body.error.message).toMatch(
      /No run of workflow `bk-outage` has status failed, created from 2999.*nothing to rerun/,
    );

    const step = await call(f.app, 'POST', '/api/v1/bulk-reruns', f.auth, {
      filter: { workflowId: 'bk-outage' },
      fromStep: 'zzz',
    });
    expect(step.status).toBe(422);
    expect(step.body.error.code).toBe('unknown_step');
    expect(step.body.error.message).toContain('`zzz`');

    for (const body of [
      { filter: { workflowId: 'bk-outage', status: 'failed' } },
      { filter: { workflowId: 'bk-outage', status: ['running'] } },
      { filter: { workflowId: 'bk-outage' }, dryRun: 'yes' },
      { filter: { workflowId: 'bk-outage', createdFrom: 'last week' } },
      { filter: {} },
      { workflowId: 'bk-outage' },
    ]) {
      const res = await call(f.app, 'POST', '/api/v1/bulk-reruns', f.auth, body);
      expect({ body, status: res.status }).toEqual({ body, status: 400 });
    }

    for (const id of ['bulk_00000000000000000000000000', 'run_a0x', 'nope']) {
      const res = await call(f.app, 'GET', `/api/v1/bulk-reruns/${id}`, f.auth);
      expect(res.status).toBe(404);
      expect(res.body.error.message).toContain(id);
    }
  });

  it('another environment sees neither the runs nor the action', async () => {
    const res = await call(f.app, 'POST', '/api/v1/bulk-reruns', f.sibling.auth, {
      filter: { workflowId: 'bk-outage' },
      dryRun: true,
    });
    expect(res.status).toBe(422); // the sibling has the workflow but no failed run
    const list = await bulkStoreOf(f.db.stores).db.query<{ id: string }>(
      `select id from ${f.db.stores.schemas.ops}.bulk_reruns where environment_id = $1`,
      [f.environmentId],
    );
    for (const { id } of list.rows) {
      const got = await call(f.app, 'GET', `/api/v1/bulk-reruns/${id}`, f.foreign.auth);
      expect(got.status).toBe(404);
    }
  });
});

describe.each(BACKENDS)('bulk reruns are exactly once per run on %s', (backend) => {
  let db: TestDatabase;
  let engine: Engine;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
    const suffix = randomBytes(4).toString('hex');
    const { environmentId } = await db.stores.control.createTenant({
      organization: `org-${suffix}`,
      project: `prj-${suffix}`,
      environment: 'test',
    });
    // No background bulk processing here: the test decides who works on the action.
    engine = await Engine.start({
      stores: db.stores,
      environmentId,
      workflows: [outage, looping as never],
      logger: silentLogger(),
      worker: { pollIntervalMs: 100, concurrency: 8 },
      bulkRerunIntervalMs: false,
    });
  });
  afterAll(async () => {
    await engine?.stop();
    await db?.close();
  });

  async function rerunsOf(sourceIds: string[]): Promise<Map<string, number>> {
    const loc = [...db.stores.runs.locations.values()][0]!;
    const rows = await loc.db.query<{ rerun_of: string; n: number }>(
      `select rerun_of, count(*)::int as n from ${loc.schema}.runs where rerun_of = any($1::text[]) group by rerun_of`,
      [sourceIds],
    );
    return new Map(rows.rows.map((r) => [r.rerun_of, Number(r.n)]));
  }

  it('a crash mid-item, a dead lease holder and two concurrent processes rerun each run once', async () => {
    broken = true;
    const sources: string[] = [];
    for (let i = 0; i < 12; i++) sources.push((await engine.trigger('bk-outage', i)).run.id);
    for (const id of sources) expect((await engine.waitForRun(id)).status).toBe('failed');
    broken = false;
    const env = engine.environmentId;
    const filter = { workflowId: 'bk-outage' };
    const runs = await selectBulkRuns(db.stores, env, filter);
    const bulk = await createBulkRerun(db.stores, env, { filter }, runs);
    const store = bulkStoreOf(db.stores);

    // 1. A process creates the rerun of the first item and dies before its commit: nothing of
    //    it stays (the rerun and the progress row share one transaction).
    const first = (await store.pendingItems(bulk.id, 1))[0]!;
    const prepared = await prepareRerun(db.stores, env, first, { fromStep: 'b' });
    let created: string | undefined;
    await expect(
      store.processItem(bulk.id, first, 'b', async (tx) => {
        created = (await db.stores.runs.createRerun(prepared.create!, tx)).id;
        throw new Error('killed');
      }),
    ).rejects.toThrow('killed');
    expect(created).toMatch(/^run_/);
    expect(await db.stores.runs.getRun(env, created!)).toBeUndefined();
    expect((await rerunsOf([first])).get(first)).toBeUndefined();
    expect(await store.pendingItems(bulk.id, 100)).toHaveLength(12);

    // 2. A process takes the lease and dies: nobody else works on the action until it expires.
    expect(await store.claim('dead-worker', 60_000)).toMatchObject({ id: bulk.id });
    expect(await processBulkRerunBatch(db.stores, { workerId: 'live-1' })).toBeUndefined();
    await store.db.query(
      `update ${db.stores.schemas.ops}.bulk_reruns set lease_expires_at = now() - interval '1 second' where id = $1`,
      [bulk.id],
    );

    // 3. Two processes at once, in small batches, until it is done.
    const work = async (workerId: string) => {
      for (let i = 0; i < 50; i++) {
        const b = await processBulkRerunBatch(db.stores, { workerId, batchSize: 3 });
        if (!b || b.status !== 'running') return;
      }
    };
    await Promise.all([work('live-1'), work('live-2')]);
    for (let i = 0; i < 10; i++) await processBulkRerunBatch(db.stores, { workerId: 'live-3' });
    const done = (await store.get(env, bulk.id))!;
    expect(done.bulk).toMatchObject({ status: 'succeeded', total: 12, done: 12, failed: 0 });
    const counts = await rerunsOf(sources);
    expect(sources.map((s) => counts.get(s))).toEqual(sources.map(() => 1));
    for (const item of done.items) {
      const rerun = await engine.waitForRun(item.rerunId!);
      expect(rerun).toMatchObject({ status: 'succeeded', rerunOf: item.sourceRunId });
    }
    // Processing again changes nothing.
    expect(await processBulkRerunBatch(db.stores, { workerId: 'live-4' })).toBeUndefined();
    expect((await rerunsOf(sources)).size).toBe(12);
  });

  it('a loop that failed in iteration k is rerun from that iteration by default', async () => {
    const env = engine.environmentId;
    loopBroken = true;
    const source = (await engine.trigger('bk-loop', [1, 2, 3, 4])).run.id;
    expect((await engine.waitForRun(source)).status).toBe('failed');
    const filter = { workflowId: 'bk-loop' };
    const runs = await selectBulkRuns(db.stores, env, filter);
    const summary = await summarizeBulkRerun(db.stores, env, { filter }, runs);
    expect(summary.fromSteps).toEqual([{ fromStep: 'sq[2]', runs: 1 }]);
    loopBroken = false;
    loopCalls.length = 0;
    const bulk = await createBulkRerun(db.stores, env, { filter }, runs);
    let b = await processBulkRerunBatch(db.stores, { workerId: 'w' });
    while (b && b.status === 'running')
      b = await processBulkRerunBatch(db.stores, { workerId: 'w' });
    const read = (await bulkStoreOf(db.stores).get(env, bulk.id))!;
    expect(read.bulk).toMatchObject({ status: 'succeeded', done: 1 });
    const rerun = await engine.waitForRun(read.items[0]!.rerunId!);
    expect(rerun.status).toBe('succeeded');
    expect(loopCalls).toEqual([3, 4]); // iterations 0 and 1 kept
  });

  it('a run that cannot be rerun is recorded with the reason; the rest go on', async () => {
    const env = engine.environmentId;
    const ok = (await engine.trigger('bk-outage', 1)).run.id;
    expect((await engine.waitForRun(ok)).status).toBe('succeeded');
    const runs = await selectBulkRuns(db.stores, env, {
      workflowId: 'bk-outage',
      status: ['succeeded'],
    });
    // a succeeded run has no failed step: without fromStep it cannot be planned
    const bulk = await createBulkRerun(
      db.stores,
      env,
      { filter: { workflowId: 'bk-outage', status: ['succeeded'] } },
      runs.slice(0, 2),
    );
    let b = await processBulkRerunBatch(db.stores, { workerId: 'w' });
    while (b && b.status === 'running')
      b = await processBulkRerunBatch(db.stores, { workerId: 'w' });
    const read = (await bulkStoreOf(db.stores).get(env, bulk.id))!;
    expect(read.bulk).toMatchObject({ status: 'failed', done: 0, failed: 2 });
    expect(read.items[0]!.error).toMatchObject({
      code: 'unknown_step',
      message: expect.stringMatching(/has no failed step to rerun from; pass fromStep/),
    });
  });
});
