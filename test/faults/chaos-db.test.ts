/**
 * Chaos on the database side, with real `weft worker` processes on a throwaway cluster:
 * (c) connections cut mid-commit — `pg_terminate_backend` of random active worker sessions;
 * (d) a network partition between one worker and the database (a TCP proxy that blackholes, then
 *     heals) longer than the lease, while another worker stays connected and reaps;
 * (b) PostgreSQL restarted twice under load, `fast` then `immediate` shutdown.
 * Each ends with the side-effect ledger checker (ledger.ts): nothing lost, nothing duplicated,
 * final states equal to the reference interpreter's. Database failures must not be charged as
 * step failures either: no attempt ends `failed` (the chain's code never fails).
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../support/crash-process.js';
import { budget, ChaosStage, chaosSeed, report, scaled } from './harness.js';
import { PartitionProxy } from './proxy.js';
import { CHAOS_CHAIN } from './spec.js';

/** Attempt outcomes that count against maxAttempts (everything but success and an uncharged release). */
const charged = (outcomes: Record<string, number>) =>
  Object.fromEntries(
    Object.entries(outcomes).filter(
      ([k]) => k !== 'succeeded' && k !== 'lost:database_unavailable',
    ),
  );

describe('chaos: the database fails under weft worker processes (throwaway cluster)', () => {
  let stage: ChaosStage;
  beforeAll(async () => {
    stage = await ChaosStage.create();
  }, budget(120_000));
  afterEach(async () => {
    await stage?.stopWorkers();
  });
  afterAll(async () => {
    await stage?.destroy();
  });

  const expectations = (runIds: string[], inputs: number[]) =>
    runIds.map((runId, i) => ({ runId, spec: CHAOS_CHAIN, input: inputs[i] }));
  let nextInput = 0;
  const inputsOf = (n: number) => Array.from({ length: n }, () => nextInput++);

  it(
    '(c) connections cut at random (pg_terminate_backend of active worker sessions): nothing lost or duplicated',
    async () => {
      const { seed, random } = chaosSeed('terminate');
      await Promise.all([1, 2].map(() => stage.startWorker({ stepMs: 60 })));
      const inputs = inputsOf(scaled(60));
      const runIds = await stage.trigger('chaos-chain', inputs);
      const admin = new pg.Client({ connectionString: stage.cluster.url() });
      await admin.connect();
      let cut = 0;
      try {
        const until = Date.now() + scaled(8_000);
        while (Date.now() < until && (await stage.unfinished(runIds)) > 0) {
          const active = await admin.query<{ pid: number }>(
            `select pid from pg_stat_activity
            where datname = 'weft_chaos' and application_name <> 'chaos-test' and state = 'active'
              and pid <> pg_backend_pid()`,
          );
          if (active.rows.length > 0 && random() < 0.5) {
            const victim = active.rows[Math.floor(random() * active.rows.length)]!;
            await admin.query('select pg_terminate_backend($1)', [victim.pid]);
            cut++;
          }
          // A worker session is active only while a statement runs (a commit is about 1 ms of each
          // 60 ms step): polled every ~30 ms, a whole run could see none and cut nothing (a
          // clean-clone CI run did, once commits got faster). Polled every ~7 ms it sees dozens.
          await sleep(random() * 15);
        }
      } finally {
        await admin.end();
      }
      await stage.waitForEnd(runIds, budget(90_000));
      const result = await stage.check(expectations(runIds, inputs));
      report('terminate', seed, { cut }, result);
      expect(result.violations, `seed ${seed}`).toEqual([]);
      expect(cut).toBeGreaterThan(0);
      // A cut connection is the database failing, not the step: no attempt may be charged for it.
      expect(charged(result.outcomes), 'attempts charged for cut connections').toEqual({});
    },
    budget(180_000),
  );

  it(
    '(d) a partition between a worker and the database longer than its lease (TCP proxy blackholes, then heals)',
    async () => {
      const { seed, random } = chaosSeed('partition');
      const proxy = await PartitionProxy.start(stage.cluster.port);
      try {
        await stage.reaperGraceOver();
        const cutOff = await stage.startWorker(
          { stepMs: 150, lease: '2s' },
          proxy.url('weft_chaos'),
        );
        const inputs = inputsOf(scaled(40));
        const runIds = await stage.trigger('chaos-chain', inputs);
        // Let the proxied worker take work first, then cut it off for 2.5 leases while a directly
        // connected worker runs and reaps what it held.
        await sleep(500 + random() * 1000);
        proxy.blackhole();
        const direct = stage.startWorker({ stepMs: 150, lease: '2s' });
        await sleep(scaled(5_000));
        await direct;
        proxy.heal();
        await stage.waitForEnd(runIds, budget(120_000));
        const result = await stage.check(expectations(runIds, inputs));
        const fenced = (cutOff.stdout().match(/commit (retry )?rejected/g) ?? []).length;
        report('partition', seed, { partitionMs: scaled(5_000), leaseMs: 2000, fenced }, result);
        expect(result.violations, `seed ${seed}`).toEqual([]);
        const reaped = result.outcomes['lost:lease_lost'] ?? 0;
        expect(
          reaped + fenced,
          'the partition outlasted leases the cut-off worker held',
        ).toBeGreaterThan(0);
        expect(cutOff.child.exitCode, 'the partitioned worker survived').toBeNull();
      } finally {
        await proxy.close();
      }
    },
    budget(180_000),
  );

  it(
    '(b) PostgreSQL restarted twice during load (fast, then immediate shutdown): nothing lost or duplicated, nothing charged',
    async () => {
      const { seed, random } = chaosSeed('restart');
      await stage.startWorker({ stepMs: 200, lease: '3s', heartbeat: '500ms' });
      const inputs = inputsOf(scaled(60));
      const runIds = await stage.trigger('chaos-chain', inputs);
      for (const mode of ['fast', 'immediate'] as const) {
        await sleep(500 + random() * 1500);
        await stage.cluster.stop(mode);
        await sleep(500 + random() * 1500);
        await stage.cluster.start();
      }
      await stage.waitForEnd(runIds, budget(150_000));
      const result = await stage.check(expectations(runIds, inputs));
      report('restart', seed, { restarts: ['fast', 'immediate'] }, result);
      expect(result.violations, `seed ${seed}`).toEqual([]);
      expect(charged(result.outcomes), 'attempts charged for the restarts').toEqual({});
    },
    budget(240_000),
  );
});
