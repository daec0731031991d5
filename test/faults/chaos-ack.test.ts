/**
 * Chaos (e): a commit that succeeds but whose acknowledgement is lost. The worker's fault point
 * `afterCommitBeforeAck` runs after a commit try has committed and before the worker reads its
 * reply; here it throws a connection error on a seeded random share of commits, so the worker
 * believes the commit failed with the database away and retries it. The retry must be fenced (the
 * step's output is committed once) and the next step that lost commit claimed for this worker must
 * be given back uncharged, not left to run twice or to wait out its lease. In-process engine (the
 * fault point is an option), on PGlite and PostgreSQL; the ledger checker judges.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../src/engine/engine.js';
import { seededRandom } from '../support/crash-process.js';
import {
  BACKENDS,
  createPgDatabase,
  openTestDatabase,
  type TestDatabase,
} from '../support/databases.js';
import { startTestEngine } from '../support/engine.js';
import { budget, report, scaled } from './harness.js';
import { checkLedger, createLedgerTable, ledgerAppender, pidOfWorkerId } from './ledger.js';
import { buildWorkflow, CHAOS_CHAIN, type WorkflowSpec } from './spec.js';

/** The chain, and a fan-out into a join (commits that ready a join, not a chain successor). */
const FAN: WorkflowSpec = {
  id: 'chaos-fan',
  nodes: [
    { id: 'a', kind: 'step', after: [], mul: 3, add: 1, failMod: 0, maxAttempts: 5 },
    { id: 'b', kind: 'step', after: [{ from: 'a' }], mul: 5, add: 2, failMod: 0, maxAttempts: 5 },
    { id: 'c', kind: 'step', after: [{ from: 'a' }], mul: 7, add: 3, failMod: 0, maxAttempts: 5 },
    { id: 'p', kind: 'parallel', after: [{ from: 'a' }], count: 3, mul: 2, add: 9, maxAttempts: 5 },
    {
      id: 'j',
      kind: 'step',
      after: [{ from: 'b' }, { from: 'c' }, { from: 'p' }],
      mul: 1,
      add: 0,
      failMod: 0,
      maxAttempts: 5,
    },
  ],
};

describe.each(BACKENDS)(
  'chaos: commit acknowledgements lost (afterCommitBeforeAck) on %s',
  (backend) => {
    let db: TestDatabase;
    let ledgerDb: { url: string; drop: () => Promise<void> };
    let ledger: ReturnType<typeof ledgerAppender>;
    let engine: Engine;
    const seed = Number(process.env.WEFT_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const random = seededRandom(seed);
    let faults = 0;

    beforeAll(async () => {
      db = await openTestDatabase(backend);
      ledgerDb = await createPgDatabase('ledger');
      ledger = ledgerAppender(ledgerDb.url);
      const setup = new pg.Pool({ connectionString: ledgerDb.url, max: 1 });
      await createLedgerTable(setup);
      await setup.end();
      const workflows = [CHAOS_CHAIN, FAN].map((s) => buildWorkflow(s, ledger.append));
      engine = await startTestEngine(db.stores, workflows, {
        reaperIntervalMs: 200,
        worker: {
          leaseMs: 1500,
          heartbeatMs: 300,
          pollIntervalMs: 50,
          concurrency: 8,
          faults: {
            afterCommitBeforeAck: () => {
              if (random() < 0.3) {
                faults++;
                throw Object.assign(
                  new Error(
                    'Connection terminated unexpectedly (fault: the commit reply was lost)',
                  ),
                  { code: 'ECONNRESET' },
                );
              }
            },
          },
        },
      });
    });
    afterAll(async () => {
      await engine?.stop();
      await ledger?.close();
      await ledgerDb?.drop();
      await db?.close();
    });

    it(
      'commits whose reply is lost are retried and fenced: every output once, nothing run twice, results as fault-free',
      async () => {
        console.log(`[chaos ack-lost ${backend}] seed ${seed} (replay: WEFT_CHAOS_SEED=${seed})`);
        const count = scaled(30);
        const runs: Array<{ runId: string; spec: WorkflowSpec; input: number }> = [];
        for (let i = 0; i < count; i++)
          for (const spec of [CHAOS_CHAIN, FAN])
            runs.push({ runId: (await engine.trigger(spec.id, i)).run.id, spec, input: i });
        for (const r of runs) {
          const done = await engine.waitForRun(r.runId, { timeoutMs: 60_000 });
          expect(done.status).toBe('succeeded');
        }
        const ledgerPool = new pg.Pool({ connectionString: ledgerDb.url, max: 2 });
        ledgerPool.on('error', () => {});
        try {
          const result = await checkLedger({
            weft: db.executor,
            schema: db.stores.schemas.locations[0]!,
            ledger: ledgerPool,
            runs,
            pidOf: pidOfWorkerId,
          });
          report(`ack-lost-${backend}`, seed, { faults }, result);
          expect(result.violations, `seed ${seed}`).toEqual([]);
          expect(faults, 'acknowledgements were lost').toBeGreaterThan(scaled(10));
        } finally {
          await ledgerPool.end();
        }
      },
      budget(120_000),
    );
  },
);
