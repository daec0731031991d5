/**
 * Fuzzing with fast-check (seeded: WEFT_FUZZ_SEED replays; the seed is printed).
 *
 * 1. Definitions: random workflow definitions — DAGs with every node kind (step, router, forEach,
 *    times, while, parallel, sleep, approval, sub-workflow) and every edge kind (success, failure,
 *    always, timeout, `when`, router branch), random configs (retry, timeouts, payload limits,
 *    concurrency), valid and invalid values alike, built through the DSL and also as raw step
 *    lists — must compile to a version or fail with a `WeftError` whose message names the
 *    workflow; never another exception (a crash). A share of the valid ones is registered on
 *    PGlite and must get a version. 2,000 per run in CI (WEFT_FUZZ_DEFINITIONS; the soak runs
 *    10,000).
 * 2. Runs: random *valid* workflows (spec.ts: steps that fail deterministically, routers, parallels,
 *    forEach, sleeps; success / failure / always / `when` / branch edges; joins) run to their end on
 *    PGlite and PostgreSQL, and the ledger checker (ledger.ts) compares each run with the reference
 *    interpreter: same status, same final state and run state, every output once, every start an
 *    attempt.
 */
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeftError } from '../../src/core/errors.js';
import { compileWorkflow } from '../../src/core/graph.js';
import { Workflow, type StepDefinition } from '../../src/core/workflow.js';
import type { Engine } from '../../src/engine/engine.js';
import type { AnyWorkflow } from '../../src/engine/registry.js';
import {
  BACKENDS,
  createPgDatabase,
  openTestDatabase,
  type TestDatabase,
} from '../support/databases.js';
import { startTestEngine } from '../support/engine.js';
import {
  checkLedger,
  createLedgerTable,
  ledgerAppender,
  pidOfWorkerId,
  type RunExpectation,
} from './ledger.js';
import {
  buildWorkflow,
  interpret,
  type EdgeSpec,
  type NodeSpec,
  type WorkflowSpec,
} from './spec.js';
import { SCALE } from './harness.js';

const SEED = Number(process.env.WEFT_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const DEFINITIONS = Number(process.env.WEFT_FUZZ_DEFINITIONS ?? 2_000);
const RUN_SPECS = Math.max(4, Math.round(Number(process.env.WEFT_FUZZ_RUNS ?? 30) * SCALE));

// ---------------------------------------------------------------------------------------------
// 1. Definitions, valid or not

const weird = fc.constantFrom<unknown>(
  undefined,
  null,
  -1,
  0,
  1.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  '',
  'abc',
  '1s',
  '-5s',
  '10ms',
  '2h',
  {},
  [],
  '__proto__',
);
const durationArb = fc.oneof(
  fc.integer({ min: 0, max: 60_000 }),
  fc.constantFrom('10ms', '1s', '5m'),
  weird,
);
const idArb = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f') },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '',
      ' ',
      'x'.repeat(101),
      '__proto__',
      'constructor',
      'a b',
      'a[0]',
      'é',
      '1x',
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 6 }) },
);
const retryArb = fc.record(
  {
    maxAttempts: fc.oneof(fc.integer({ min: 1, max: 10 }), weird),
    minDelay: durationArb,
    maxDelay: durationArb,
    factor: fc.oneof(fc.double({ min: 1, max: 4, noNaN: true }), weird),
  },
  { requiredKeys: [] },
);
const edgeArb = fc.record(
  {
    step: idArb,
    on: fc.constantFrom<unknown>('success', 'failure', 'always', 'timeout', 'sometimes', undefined),
    branch: fc.option(fc.constantFrom('x', 'y', '', 'z'), { nil: undefined }),
    when: fc.option(
      fc.constant((o: unknown) => o !== null),
      { nil: undefined },
    ),
  },
  { requiredKeys: ['step'] },
);
const afterArb = fc.oneof(
  idArb,
  edgeArb,
  fc.array(fc.oneof(idArb, edgeArb), { maxLength: 4 }),
  weird,
);

type Op = { kind: string; id: string; options: Record<string, unknown> };
const bodyArb = fc.array(fc.record({ id: idArb, after: fc.option(afterArb, { nil: undefined }) }), {
  minLength: 0,
  maxLength: 3,
});
const opArb: fc.Arbitrary<Op> = fc
  .record({
    kind: fc.constantFrom(
      'step',
      'step',
      'step',
      'router',
      'forEach',
      'times',
      'while',
      'parallel',
      'sleep',
      'approval',
      'subWorkflow',
    ),
    id: idArb,
    after: fc.option(afterArb, { nil: undefined }),
    retry: fc.option(retryArb, { nil: undefined }),
    timeout: fc.option(durationArb, { nil: undefined }),
    onExhausted: fc.option(fc.constantFrom<unknown>('fail', 'pause', 'explode'), {
      nil: undefined,
    }),
    concurrency: fc.option(fc.oneof(fc.integer({ min: 1, max: 5 }), weird), { nil: undefined }),
    count: fc.oneof(fc.integer({ min: 0, max: 5 }), weird),
    maxIterations: fc.oneof(fc.integer({ min: 1, max: 5 }), weird),
    duration: durationArb,
    body: bodyArb,
    onBranchFailure: fc.constantFrom<unknown>('fail_fast', 'collect', 'maybe', undefined),
    // Through the DSL a string or `{ id }` (its type); a raw definition may hold anything.
    workflow: fc.constantFrom<unknown>('child', '', { id: 'child' }, { id: '' }),
  })
  .map(({ kind, id, ...rest }) => ({ kind, id, options: rest }));

const definitionArb = fc.record({
  id: fc.oneof({ weight: 9, arbitrary: fc.constantFrom('fz') }, { weight: 1, arbitrary: idArb }),
  options: fc.record(
    {
      maxPayloadBytes: fc.oneof(fc.integer({ min: 1, max: 1_000_000 }), weird),
      maxConcurrency: fc.oneof(fc.integer({ min: 1, max: 10 }), weird),
    },
    { requiredKeys: [] },
  ),
  ops: fc.array(opArb, { minLength: 0, maxLength: 8 }),
  raw: fc.boolean(),
  /** Half the definitions are cleaned into valid-looking ones, so both outcomes are exercised. */
  clean: fc.boolean(),
});

const EDGE_KINDS = ['success', 'failure', 'always', 'timeout'] as const;

/** Unique ids, parents among earlier steps, sane configs; the shape stays the generator's. */
function cleaned(def: Omit<Definition, 'clean'> & { clean: boolean }): Definition {
  if (!def.clean) return def;
  const ids: string[] = [];
  const ops = def.ops.map((op, i) => {
    const id = `s${i}`;
    const earlier = ids.slice();
    ids.push(id);
    const after =
      earlier.length === 0
        ? undefined
        : earlier
            .filter((_, k) => (i + k) % 3 === 0)
            .map((from, k) => {
              const on = EDGE_KINDS[(i + k) % 4]!;
              const parent = def.ops[Number(from.slice(1))]!;
              if (parent.kind === 'router') return { step: from, branch: 'x' };
              return on === 'timeout' && parent.kind !== 'approval' ? from : { step: from, on };
            });
    const body = (op.options.body as Array<{ id: string }>).map((b, j) => ({
      id: `b${i}_${j}`,
      ...(j > 0 ? { after: `b${i}_${j - 1}` } : {}),
    }));
    return {
      ...op,
      id,
      options: {
        ...op.options,
        after: after && after.length > 0 ? after : undefined,
        retry: { maxAttempts: 3, minDelay: '10ms', maxDelay: '1s', factor: 2 },
        timeout: op.kind === 'approval' ? '1h' : undefined,
        onExhausted: 'fail',
        concurrency: undefined,
        count: 2,
        maxIterations: 3,
        duration: '10ms',
        body: body.length > 0 ? body : [{ id: `b${i}_0` }],
        onBranchFailure: 'collect',
        workflow: 'child',
      },
    };
  });
  return { ...def, id: 'fz', options: {}, ops: ops.length > 0 ? ops : def.ops, raw: false };
}

type Definition = typeof definitionArb extends fc.Arbitrary<infer T> ? T : never;
const definitions = definitionArb.map(cleaned);
type Dsl = Record<string, (id: string, a: unknown, b?: unknown) => Dsl>;

/** Build through the DSL (what users write), with whatever values the generator chose. */
function viaDsl(def: Definition): Workflow {
  let wf = new Workflow(def.id, def.options as never) as unknown as Dsl;
  const fn = (x: unknown) => x;
  const body = (ops: Array<{ id: string; after?: unknown }>) => (b: Dsl) => {
    let w = b;
    for (const s of ops) w = w.step!(s.id, s.after === undefined ? {} : { after: s.after }, fn);
    return w;
  };
  for (const op of def.ops) {
    const o = op.options;
    const base: Record<string, unknown> = {};
    if (o.after !== undefined) base.after = o.after;
    switch (op.kind) {
      case 'step':
      case 'router':
        for (const k of ['retry', 'timeout', 'onExhausted', 'concurrency'])
          if (o[k] !== undefined) base[k] = o[k];
        wf = wf[op.kind]!(op.id, base, op.kind === 'router' ? () => 'x' : fn);
        break;
      case 'forEach':
      case 'parallel':
        wf = wf[op.kind]!(op.id, {
          ...base,
          items: () => [1, 2],
          body: body(o.body as never),
          ...(op.kind === 'parallel'
            ? { onBranchFailure: o.onBranchFailure, concurrency: o.concurrency }
            : {}),
        });
        break;
      case 'times':
        wf = wf.times!(op.id, { ...base, count: o.count, body: body(o.body as never) });
        break;
      case 'while':
        wf = wf.while!(op.id, {
          ...base,
          condition: () => false,
          maxIterations: o.maxIterations,
          body: body(o.body as never),
        });
        break;
      case 'sleep':
        wf = wf.sleep!(op.id, { ...base, duration: o.duration });
        break;
      case 'approval':
        wf = wf.approval!(op.id, o.timeout === undefined ? base : { ...base, timeout: o.timeout });
        break;
      case 'subWorkflow':
        wf = wf.subWorkflow!(op.id, { ...base, workflow: o.workflow });
        break;
    }
  }
  return wf as unknown as Workflow;
}

/** A raw step list (what a hand-made or deserialized definition could hold). */
function viaRaw(def: Definition): Workflow {
  const steps = def.ops.map((op) => {
    const after = op.options.after;
    const list = Array.isArray(after) ? after : after === undefined ? [] : [after];
    return {
      id: op.id,
      kind: op.kind,
      after: list.map((a) =>
        typeof a === 'object' && a !== null
          ? { from: (a as { step: unknown }).step, ...(a as object) }
          : { from: a, on: 'success' },
      ),
      run: (x: unknown) => x,
      retry: op.options.retry,
      timeout: op.options.timeout,
      ...(op.kind === 'step' || op.kind === 'router'
        ? {}
        : { control: { kind: op.kind, duration: op.options.duration, count: op.options.count } }),
    } as unknown as StepDefinition;
  });
  return new Workflow(def.id, def.options as never, steps);
}

describe('fuzz: workflow definitions compile to a version or fail with a clear error', () => {
  it(`${DEFINITIONS} random definitions (DSL and raw): a version or a WeftError naming the workflow, never a crash`, async () => {
    console.log(`[fuzz definitions] seed ${SEED} (replay: WEFT_FUZZ_SEED=${SEED})`);
    const db = await openTestDatabase('pglite');
    const engine = await startTestEngine(db.stores, [], { worker: false, reaperIntervalMs: false });
    const tally = { valid: 0, invalid: 0, registered: 0, builderErrors: 0 };
    const crashes: string[] = [];
    try {
      await fc.assert(
        fc.asyncProperty(definitions, async (def) => {
          let wf: Workflow;
          try {
            wf = def.raw ? viaRaw(def) : viaDsl(def);
          } catch (error) {
            // The DSL itself may refuse a value (a clear error is fine there too).
            if (error instanceof WeftError) {
              tally.builderErrors++;
              return;
            }
            crashes.push(`builder: ${String(error)} for ${JSON.stringify(def).slice(0, 400)}`);
            return;
          }
          try {
            compileWorkflow(wf as never);
            tally.valid++;
          } catch (error) {
            if (!(error instanceof WeftError)) {
              crashes.push(`compile: ${String(error)} for ${JSON.stringify(def).slice(0, 400)}`);
              return;
            }
            // Clear: it names the workflow (or shows the invalid id itself) and says what to do.
            const named =
              error.message.includes(`\`${String(def.id)}\``) ||
              error.message.includes(JSON.stringify(def.id) ?? String(def.id));
            if (!named)
              crashes.push(`unclear: ${error.message} for ${JSON.stringify(def).slice(0, 200)}`);
            tally.invalid++;
            return;
          }
          if (tally.registered < 300) {
            const version = await engine.register(
              Object.assign(Object.create(Object.getPrototypeOf(wf) as object), wf, {
                id: `fz${tally.registered}`,
              }) as AnyWorkflow,
            );
            expect(version.version).toBeGreaterThanOrEqual(1);
            tally.registered++;
          }
        }),
        { seed: SEED, numRuns: DEFINITIONS },
      );
    } finally {
      console.log(
        `[fuzz-figures] ${JSON.stringify({ suite: 'definitions', seed: SEED, definitions: DEFINITIONS, ...tally, crashes: crashes.length })}`,
      );
      await engine.stop();
      await db.close();
    }
    const kinds = [...new Set(crashes.map((c) => c.split(' for ')[0]))];
    if (kinds.length > 0) console.error(`crashes:\n${kinds.join('\n')}\nfirst: ${crashes[0]}`);
    expect(crashes).toEqual([]);
    expect(tally.valid).toBeGreaterThan(DEFINITIONS / 20);
    expect(tally.invalid).toBeGreaterThan(DEFINITIONS / 20);
  }, 300_000);
});

// ---------------------------------------------------------------------------------------------
// 2. Random valid workflows run to their end, as the reference interpreter says

let specCounter = 0;
const specArb: fc.Arbitrary<WorkflowSpec> = fc
  .array(
    fc.record({
      kind: fc.constantFrom(
        'step',
        'step',
        'step',
        'step',
        'router',
        'parallel',
        'forEach',
        'sleep',
      ),
      parents: fc.uniqueArray(fc.nat({ max: 50 }), { maxLength: 3 }),
      edges: fc.array(fc.constantFrom('success', 'failure', 'always', 'when'), {
        minLength: 3,
        maxLength: 3,
      }),
      when: fc.tuple(fc.integer({ min: 2, max: 3 }), fc.integer({ min: 0, max: 1 })),
      mul: fc.integer({ min: 1, max: 9 }),
      add: fc.integer({ min: 0, max: 20 }),
      failMod: fc.constantFrom(0, 0, 2, 3),
      // Deterministic failures are TerminalErrors (never retried); the budget only absorbs a lease
      // lost to a starved event loop (a soak round on a loaded machine lost a few at 1).
      maxAttempts: fc.integer({ min: 2, max: 4 }),
      count: fc.integer({ min: 1, max: 3 }),
      branches: fc.constantFrom<string[]>(['x', 'y'], ['x', 'y', 'z']),
      branchPick: fc.nat({ max: 2 }),
    }),
    { minLength: 1, maxLength: 8 },
  )
  .map((raw) => {
    const nodes: NodeSpec[] = [];
    raw.forEach((r, i) => {
      const id = `n${i}`;
      const parents = i === 0 ? [] : [...new Set(r.parents.map((p) => p % i))];
      const after: EdgeSpec[] = parents.map((p, k) => {
        const parent = nodes[p]!;
        if (parent.kind === 'router')
          return {
            from: parent.id,
            branch: parent.branches[r.branchPick % parent.branches.length]!,
          };
        const on = r.edges[k]!;
        if (on === 'when') return { from: parent.id, when: r.when };
        return on === 'success' ? { from: parent.id } : { from: parent.id, on };
      });
      switch (r.kind) {
        case 'step':
          nodes.push({
            id,
            kind: 'step',
            after,
            mul: r.mul,
            add: r.add,
            failMod: r.failMod,
            maxAttempts: r.maxAttempts,
          });
          break;
        case 'router':
          nodes.push({ id, kind: 'router', after, branches: r.branches });
          break;
        case 'parallel':
        case 'forEach':
          nodes.push({
            id,
            kind: r.kind,
            after,
            count: r.count,
            mul: r.mul,
            add: r.add,
            maxAttempts: r.maxAttempts,
          });
          break;
        case 'sleep':
          nodes.push({ id, kind: 'sleep', after, ms: 20 });
          break;
      }
    });
    return { id: `fuzz-${specCounter++}`, nodes };
  });

describe.each(BACKENDS)(
  'fuzz: random valid workflows end as the reference interpreter says, on %s',
  (backend) => {
    let db: TestDatabase;
    let ledgerDb: { url: string; drop: () => Promise<void> };
    let ledgerPool: pg.Pool;
    let ledger: ReturnType<typeof ledgerAppender>;
    let engine: Engine;
    beforeAll(async () => {
      db = await openTestDatabase(backend);
      ledgerDb = await createPgDatabase('ledger');
      ledgerPool = new pg.Pool({ connectionString: ledgerDb.url, max: 2 });
      // an idle connection ended under the pool (the database dropped with force) is not a crash
      ledgerPool.on('error', () => {});
      await createLedgerTable(ledgerPool);
      ledger = ledgerAppender(ledgerDb.url);
      engine = await startTestEngine(db.stores, [], {
        reaperIntervalMs: 200,
        worker: { pollIntervalMs: 20, concurrency: 16, leaseMs: 30_000 },
      });
    });
    afterAll(async () => {
      await engine?.stop();
      await ledger?.close();
      await ledgerPool?.end();
      await ledgerDb?.drop();
      await db?.close();
    });

    it(`${RUN_SPECS} random workflows × 2 inputs: status, final state and run state as the interpreter's; every output once`, async () => {
      const seed = SEED + (backend === 'postgres' ? 1 : 0);
      console.log(`[fuzz runs ${backend}] seed ${seed} (replay: WEFT_FUZZ_SEED=${SEED})`);
      const specs = fc.sample(specArb, { seed, numRuns: RUN_SPECS });
      const runs: RunExpectation[] = [];
      for (const spec of specs) {
        const rendered = JSON.stringify(spec);
        try {
          await engine.register(buildWorkflow(spec, ledger.append));
        } catch (error) {
          throw new Error(`a valid spec was refused: ${String(error)}\n${rendered}`);
        }
        for (const input of [specs.indexOf(spec) * 7 + 1, specs.indexOf(spec) * 11 + 4])
          runs.push({ runId: (await engine.trigger(spec.id, input)).run.id, spec, input });
      }
      for (const r of runs) {
        try {
          await engine.waitForRun(r.runId, { timeoutMs: 60_000 });
        } catch (error) {
          // A run that does not end: show where it stands (step runs, waitpoints) and its spec.
          const loc = db.stores.schemas.locations[0]!;
          const steps = await db.executor.query<{
            step_key: string;
            status: string;
            attempt_count: number;
          }>(
            `select step_key, status, attempt_count from ${loc}.step_runs where run_id = $1 order by step_key`,
            [r.runId],
          );
          const waits = await db.executor.query<{
            kind: string;
            status: string;
            resume_at: string | null;
          }>(`select kind, status, resume_at::text from ${loc}.waitpoints where run_id = $1`, [
            r.runId,
          ]);
          const tries = await db.executor.query<{
            step_key: string;
            number: number;
            status: string;
            code: string | null;
          }>(
            `select s.step_key, a.number, a.status, coalesce(a.error->>'code', a.error->>'message') as code
               from ${loc}.attempts a join ${loc}.step_runs s on s.id = a.step_run_id
              where a.run_id = $1 order by a.started_at`,
            [r.runId],
          );
          console.error(
            `${r.runId} input ${String(r.input)} did not end: ${JSON.stringify(r.spec)}\n  steps: ${steps.rows.map((x) => `${x.step_key} ${x.status}#${x.attempt_count}`).join(', ')}\n  attempts: ${tries.rows.map((a) => `${a.step_key}#${a.number} ${a.status}${a.code ? ` (${a.code})` : ''}`).join(', ')}\n  waitpoints: ${JSON.stringify(waits.rows)}`,
          );
          throw error;
        }
      }
      const result = await checkLedger({
        weft: db.executor,
        schema: db.stores.schemas.locations[0]!,
        ledger: ledgerPool,
        runs,
        pidOf: pidOfWorkerId,
      });
      const statuses = runs.map((r) => interpret(r.spec, r.input).status);
      console.log(
        `[fuzz-figures] ${JSON.stringify({ suite: `runs-${backend}`, seed, workflows: specs.length, runs: runs.length, referenceFailed: statuses.filter((s) => s === 'failed').length, lost: result.lost, duplicated: result.duplicated, ledgerStarts: result.ledgerStarts, outcomes: result.outcomes })}`,
      );
      if (result.violations.length > 0) {
        const bad = new Set(result.violations.map((v) => v.split('/')[0]!.split(':')[0]!));
        for (const r of runs.filter((x) => bad.has(x.runId)).slice(0, 3)) {
          // What the engine did, attempt by attempt, beside the spec: enough to tell an engine
          // bug from an interpreter one.
          const tries = await db.executor.query<{
            step_key: string;
            number: number;
            status: string;
            code: string | null;
          }>(
            `select s.step_key, a.number, a.status, a.error->>'code' as code
               from ${db.stores.schemas.locations[0]!}.attempts a
               join ${db.stores.schemas.locations[0]!}.step_runs s on s.id = a.step_run_id
              where a.run_id = $1 order by a.started_at`,
            [r.runId],
          );
          console.error(
            `${r.runId} input ${String(r.input)}: ${JSON.stringify(r.spec)}\n  attempts: ${tries.rows.map((t) => `${t.step_key}#${t.number} ${t.status}${t.code ? `:${t.code}` : ''}`).join(', ')}`,
          );
        }
      }
      expect(result.violations, `seed ${seed}`).toEqual([]);
    }, 300_000);
  },
);
