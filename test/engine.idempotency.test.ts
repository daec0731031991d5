import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';
import { startTestEngine } from './support/engine.js';

describe.each(BACKENDS)('idempotency keys on %s', (backend) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
  });
  afterAll(async () => {
    await db?.close();
  });

  const wf = defineWorkflow<{ order: number }>('charge').step('charge', ({ order }) => ({
    charged: order,
  }));

  it('a repeated trigger returns the existing run; the same key with another input is a conflict', async () => {
    const engine = await startTestEngine(db.stores, [wf], { worker: false });
    try {
      const first = await engine.trigger('charge', { order: 1 }, { idempotencyKey: 'order-1' });
      const again = await engine.trigger('charge', { order: 1 }, { idempotencyKey: 'order-1' });
      expect(first.deduplicated).toBe(false);
      expect(again.deduplicated).toBe(true);
      expect(again.run.id).toBe(first.run.id);
      const conflict = await engine
        .trigger('charge', { order: 2 }, { idempotencyKey: 'order-1' })
        .catch((e: unknown) => e);
      expect(conflict).toMatchObject({
        code: 'idempotency_conflict',
        details: { runId: first.run.id },
      });
      // key order in the input does not matter (compared on canonical jsonb)
      const a = await engine.trigger('charge', { order: 3, note: 'x' } as never, {
        idempotencyKey: 'k3',
      });
      const b = await engine.trigger('charge', { note: 'x', order: 3 } as never, {
        idempotencyKey: 'k3',
      });
      expect(b.run.id).toBe(a.run.id);
      const { data } = await db.stores.runs.listRuns({
        environmentId: engine.environmentId,
        limit: 100,
      });
      expect(data).toHaveLength(2);
    } finally {
      await engine.stop();
    }
  });

  it('accepts the longest TTL (30 days) and refuses longer', async () => {
    const engine = await startTestEngine(db.stores, [wf], { worker: false });
    try {
      const month = 30 * 24 * 3_600_000;
      const ok = await engine.trigger(
        'charge',
        { order: 1 },
        { idempotencyKey: 'long', idempotencyTtlMs: month },
      );
      expect(ok.deduplicated).toBe(false);
      const rows = await db.executor.query<{ days: number }>(
        `select round(extract(epoch from expires_at - created_at) / 86400)::int as days from weft_ops.idempotency_keys where key = 'long'`,
      );
      expect(rows.rows[0]!.days).toBe(30);
      const tooLong = await engine
        .trigger('charge', { order: 1 }, { idempotencyKey: 'longer', idempotencyTtlMs: month + 1 })
        .catch((e: unknown) => e);
      expect(tooLong).toMatchObject({ code: 'invalid_input' });
    } finally {
      await engine.stop();
    }
  });

  it('an expired key starts a new run', async () => {
    const engine = await startTestEngine(db.stores, [wf], { worker: false });
    try {
      const first = await engine.trigger(
        'charge',
        { order: 1 },
        { idempotencyKey: 'short', idempotencyTtlMs: 1000 },
      );
      await db.executor.query(
        `update weft_ops.idempotency_keys set expires_at = now() - interval '1 second' where key = 'short'`,
      );
      const second = await engine.trigger('charge', { order: 9 }, { idempotencyKey: 'short' });
      expect(second.deduplicated).toBe(false);
      expect(second.run.id).not.toBe(first.run.id);
    } finally {
      await engine.stop();
    }
  });

  it('50 concurrent triggers for each of 20 keys create exactly 20 runs', async () => {
    const engine = await startTestEngine(db.stores, [wf], { worker: false });
    try {
      const calls = Array.from({ length: 20 }, (_, k) =>
        Array.from({ length: 50 }, () =>
          engine.trigger('charge', { order: k }, { idempotencyKey: `race-${k}` }),
        ),
      ).flat();
      const results = await Promise.all(calls);
      const ids = new Set(results.map((r) => r.run.id));
      expect(ids.size).toBe(20);
      expect(results.filter((r) => !r.deduplicated)).toHaveLength(20);
      const { data } = await db.stores.runs.listRuns({
        environmentId: engine.environmentId,
        limit: 100,
      });
      expect(data).toHaveLength(20);
    } finally {
      await engine.stop();
    }
  });
});
