/**
 * Group commit of triggers (src/store/runs/creation-batch.ts): a burst of triggers without an
 * idempotency key is written in a few statements, each run exactly as the single statement
 * writes it, and a trigger the database refuses fails alone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileWorkflow } from '../src/core/graph.js';
import { defineWorkflow } from '../src/index.js';
import type { CreateRunParams } from '../src/store/runs/run-creation.js';
import {
  BACKENDS,
  finalStateOf,
  openTestDatabase,
  type TestDatabase,
} from './support/databases.js';
import { startTestEngine } from './support/engine.js';

/** Three roots and a join: four step runs, three `ready` and one waiting on two; two leaves. */
const join = defineWorkflow('join')
  .step('a', () => 'a')
  .step('b', () => 'b')
  .step('c', { after: ['a', 'b'] }, () => 'c')
  .step('d', (input: unknown) => ({ got: input }));

describe.each(BACKENDS)('trigger group commit on %s', (backend) => {
  let db: TestDatabase;
  let environmentId: string;
  let base: Omit<CreateRunParams, 'inputText' | 'inputBytes'>;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
    const compiled = compileWorkflow(join);
    ({ environmentId } = await db.stores.control.createTenant({
      organization: 'o',
      project: 'p',
      environment: 'burst',
    }));
    const { versionId } = await db.stores.control.registerWorkflow(environmentId, compiled);
    base = {
      environmentId,
      workflowId: 'join',
      versionId,
      graph: compiled.graph,
      saveDataclips: true,
      trigger: { kind: 'api' },
    };
  });
  afterAll(async () => {
    await db?.close();
  });

  const rowsOf = async (runId: string) => {
    const q = (sql: string) => db.executor.query<Record<string, unknown>>(sql, [runId]);
    const run = await q(
      `select environment_id, workflow_id, version_id, status, trigger_kind, trigger_ref, save_dataclips,
              idempotency_key, parent_run_id, max_concurrency, state, started_at, finished_at
         from weft_loc_a0.runs where id = $1`,
    );
    const input = await q(
      `select d.kind, d.body, d.body_hash = md5(d.body::text) as hash_ok, d.size_bytes
         from weft_loc_a0.runs r join weft_loc_a0.dataclips d on d.id = r.input_dataclip_id where r.id = $1`,
    );
    const steps = await q(
      `select s.step_key, s.status, s.pending_parents, s.parents, s.successors, s.max_attempts,
              s.input_dataclip_id = r.input_dataclip_id as reads_input,
              s.input_hash = d.body_hash as input_hash_ok, s.attempt_count
         from weft_loc_a0.step_runs s join weft_loc_a0.runs r on r.id = s.run_id
         left join weft_loc_a0.dataclips d on d.id = r.input_dataclip_id
        where s.run_id = $1 order by s.step_key`,
    );
    const events = await q(`select kind, data from weft_loc_a0.run_events where run_id = $1`);
    return { run: run.rows, input: input.rows, steps: steps.rows, events: events.rows };
  };

  it('writes a burst in a few transactions, each run as the single statement writes it', async () => {
    const inputs = [null, 0, 'text', { nested: { list: [1, 'two', null] } }, [true, false]];
    const paramsOf = (i: number): CreateRunParams => {
      const text = JSON.stringify(inputs[i % inputs.length]);
      return {
        ...base,
        inputText: text,
        inputBytes: Buffer.byteLength(text),
        trigger: { kind: i % 2 ? 'webhook' : 'api', ref: i % 2 ? `hook-${i}` : null },
        ...(i % 3 === 0 ? { inputKind: 'webhook_request' as const } : {}),
      };
    };
    // alone, one after another: the single statement, one transaction each
    const kinds = inputs.length * 6; // every input × trigger kind × input kind
    const single = [];
    for (let i = 0; i < kinds; i++) single.push(await db.stores.runs.createRun(paramsOf(i)));
    // a burst: all at once
    const burst = await Promise.all(
      Array.from({ length: 150 }, (_, i) => db.stores.runs.createRun(paramsOf(i % kinds))),
    );
    expect(new Set(burst.map((r) => r.run.id)).size).toBe(150);
    for (const [i, r] of burst.entries()) {
      expect(r.deduplicated).toBe(false);
      expect(r.run).toMatchObject({ workflowId: 'join', status: 'queued' });
      // the same rows, but for ids and times, as the run created alone with the same trigger
      const [a, b] = await Promise.all([rowsOf(r.run.id), rowsOf(single[i % kinds]!.run.id)]);
      expect(a).toEqual(b);
      expect(a.input[0]).toMatchObject({ body: inputs[i % inputs.length], hash_ok: true });
      expect(a.steps.map((s) => [s.step_key, s.status])).toEqual([
        ['a', 'ready'],
        ['b', 'ready'],
        ['c', 'pending'],
        ['d', 'ready'],
      ]);
      expect(a.events).toEqual([
        { kind: 'run.created', data: { trigger: i % 2 ? 'webhook' : 'api' } },
      ]);
    }
    // the rows of one transaction carry its id (xmin): the single ones have one each, the burst's
    // 150 came in a few groups
    const times = async (ids: string[]) =>
      (
        await db.executor.query<{ n: number }>(
          `select count(distinct xmin::text)::int as n from weft_loc_a0.runs where id = any($1::text[])`,
          [ids],
        )
      ).rows[0]!.n;
    expect(await times(single.map((r) => r.run.id))).toBe(single.length);
    const groups = await times(burst.map((r) => r.run.id));
    expect(groups).toBeLessThan(20);
  });

  it('fails only the trigger the database refuses; the rest of its group is created', async () => {
    const good = (i: number): CreateRunParams => ({ ...base, inputText: String(i), inputBytes: 2 });
    // a trigger kind outside the runs table's CHECK: only the store's own callers could send one,
    // which is why it serves here as "a value the database refuses" inside a group
    const bad: CreateRunParams = {
      ...good(-1),
      trigger: { kind: 'carrier-pigeon' as CreateRunParams['trigger']['kind'] },
    };
    const before = await db.executor.query<{ n: number }>(
      `select count(*)::int as n from weft_loc_a0.runs`,
    );
    const settled = await Promise.allSettled(
      Array.from({ length: 60 }, (_, i) => db.stores.runs.createRun(i === 30 ? bad : good(i))),
    );
    const refused = settled.flatMap((s, i) => (s.status === 'rejected' ? [[i, s.reason]] : []));
    expect(refused).toHaveLength(1);
    expect(refused[0]![0]).toBe(30);
    expect(String((refused[0]![1] as Error).message)).toMatch(/trigger_kind/);
    const after = await db.executor.query<{ n: number }>(
      `select count(*)::int as n from weft_loc_a0.runs`,
    );
    expect(after.rows[0]!.n - before.rows[0]!.n).toBe(59);
    const orphans = await db.executor.query<{ n: number }>(
      `select count(*)::int as n from weft_loc_a0.step_runs s
        where not exists (select 1 from weft_loc_a0.runs r where r.id = s.run_id)`,
    );
    expect(orphans.rows[0]!.n).toBe(0);
  });

  it('runs every run of a burst to its end through the engine', async () => {
    const engine = await startTestEngine(db.stores, [join]);
    try {
      const triggered = await Promise.all(
        Array.from({ length: 120 }, (_, i) => engine.trigger('join', { n: i })),
      );
      const ended = await Promise.all(triggered.map((t) => engine.waitForRun(t.run.id)));
      for (const [i, run] of ended.entries()) {
        expect(run.status).toBe('succeeded');
        expect(await finalStateOf(db, engine.environmentId, run.id)).toEqual({
          c: 'c',
          d: { got: { n: i } },
        });
      }
    } finally {
      await engine.stop();
    }
  });
});
