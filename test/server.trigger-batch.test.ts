/**
 * POST /api/v1/workflows/{workflowId}/runs/batch: many runs in one request, each item settled on
 * its own (created, deduplicated, or refused with the single trigger's error), and every refusal
 * of the whole request checked to have written nothing.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineWorkflow } from '../src/index.js';
import { MAX_TRIGGER_BATCH } from '../src/server/schemas.js';
import { BACKENDS } from './support/databases.js';
import {
  allRunIds,
  call,
  openServerFixture,
  type ServerFixture,
} from './support/server-fixture.js';

const greet = defineWorkflow('greet', { input: z.object({ name: z.string() }) }).step(
  'hello',
  (input) => `hello ${input.name}`,
);

describe.each(BACKENDS)('triggering a batch of runs over HTTP on %s', (backend) => {
  let f: ServerFixture;
  let before: string[];

  beforeAll(async () => {
    f = await openServerFixture(backend, [greet]);
  });
  afterAll(async () => {
    await f?.close();
  });
  beforeEach(async () => {
    before = await allRunIds(f.db, f.environmentId);
  });

  const batch = (body: unknown, workflowId = 'greet', headers = f.auth) =>
    call(f.app, 'POST', `/api/v1/workflows/${workflowId}/runs/batch`, headers, body);

  async function expectRefused(
    res: Awaited<ReturnType<typeof batch>>,
    status: number,
    code: string,
  ) {
    expect({ status: res.status, code: res.body?.error?.code }).toEqual({ status, code });
    expect(await allRunIds(f.db, f.environmentId)).toEqual(before);
  }

  it('starts every good item, returns the earlier run for a repeated key, and refuses each bad item alone', async () => {
    const items = [
      ...Array.from({ length: 120 }, (_, i) => ({ input: { name: `n${i}` } })),
      { input: { name: 42 } }, // 120: the schema refuses it
      { input: { name: 'keyed' }, idempotencyKey: 'k-1' }, // 121
      { input: { name: 'keyed' }, idempotencyKey: 'k-1' }, // 122: the same key and input
      { input: { name: 'other' }, idempotencyKey: 'k-1' }, // 123: the same key, another input
      {}, // 124: no input: the schema refuses null
    ];
    const res = await batch({ items });
    expect(res.status).toBe(200);
    expect(res.body.data).toHaveLength(items.length);
    expect(res.body.data.map((r: { index: number }) => r.index)).toEqual(items.map((_, i) => i));
    for (const r of res.body.data.slice(0, 120)) {
      expect(r.status).toBe(201);
      expect(r.run).toMatchObject({ workflowId: 'greet', deduplicated: false });
    }
    expect(res.body.data[120]).toMatchObject({ status: 422, error: { code: 'invalid_input' } });
    expect(res.body.data[120].error.message).toMatch(/input\.name/);
    expect(res.body.data[124]).toMatchObject({ status: 422, error: { code: 'invalid_input' } });
    // two items with one key: one run, whichever committed first; the other item returns it
    const keyed = [res.body.data[121], res.body.data[122]];
    expect(keyed.map((r) => r.status).sort()).toEqual([200, 201]);
    expect(keyed[0].run.id).toBe(keyed[1].run.id);
    expect(res.body.data[123]).toMatchObject({
      status: 409,
      error: { code: 'idempotency_conflict', details: { runId: keyed[0].run.id } },
    });
    expect(res.body).toMatchObject({ created: 121, deduplicated: 1, refused: 3 });
    // exactly the runs the answer names exist, and they run to their end
    const created = res.body.data
      .filter((r: { status: number }) => r.status === 201)
      .map((r: { run: { id: string } }) => r.run.id);
    const after = await allRunIds(f.db, f.environmentId);
    expect(after.filter((id) => !before.includes(id)).sort()).toEqual([...created].sort());
    const ends = await Promise.all(created.map((id: string) => f.engine.waitForRun(id)));
    expect(ends.every((run) => run.status === 'succeeded')).toBe(true);
    const first = await f.db.stores.runs.getDataclip(f.environmentId, ends[0]!.finalDataclipId!);
    expect(first?.body).toBe('hello n0');
  });

  it('refuses the whole request, writing nothing, for what no item can change', async () => {
    await expectRefused(
      await batch({ items: [{ input: { name: 'a' } }] }, 'nope'),
      404,
      'unknown_workflow',
    );
    await expectRefused(await batch({ items: [] }), 400, 'bad_request');
    await expectRefused(await batch({}), 400, 'bad_request');
    const tooMany = await batch({
      items: Array.from({ length: MAX_TRIGGER_BATCH + 1 }, () => ({ input: { name: 'a' } })),
    });
    await expectRefused(tooMany, 400, 'bad_request');
    expect(tooMany.body.error.message).toMatch(/items/);
    const stray = await batch({ items: [{ input: { name: 'a' } }, { input: {}, nmae: 'typo' }] });
    await expectRefused(stray, 400, 'bad_request');
    expect(stray.body.error.message).toMatch(/items\[1\]/);
    expect(stray.body.error.message).toMatch(/nmae/);
    // a text PostgreSQL cannot store, deep in an item: refused by the request's schema, by name
    const nul = await batch({ items: [{ input: { name: 'a' } }, { idempotencyKey: 'k\u0000' }] });
    expect(nul.status).toBe(422);
    expect(nul.body.error.message).toMatch(/items\[1\]\.idempotencyKey/);
    expect(await allRunIds(f.db, f.environmentId)).toEqual(before);
    await expectRefused(
      await batch({ items: [{ input: { name: 'a' } }], source: 'carrier-pigeon' }),
      400,
      'bad_request',
    );
    await expectRefused(
      await batch({ items: [{ input: { name: 'a' } }] }, 'greet', {
        'content-type': 'application/json',
      }),
      401,
      'unauthorized',
    );
  });

  it('is in the OpenAPI document with its scope', async () => {
    const doc = await call(f.app, 'GET', '/api/openapi.json', {});
    const op = doc.body.paths['/api/v1/workflows/{workflowId}/runs/batch']?.post;
    expect(op?.operationId).toBe('triggerRunBatch');
    expect(op?.security).toEqual([{ bearerAuth: ['trigger'] }]);
    expect(Object.keys(op?.responses ?? {})).toContain('200');
  });
});
