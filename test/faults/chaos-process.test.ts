/**
 * Chaos on the process side, with real `weft worker` processes on a throwaway cluster:
 * (f) SIGSTOP of a worker mid-step for longer than its lease, then SIGCONT: its attempts are reaped
 *     by the other workers and rerun there; its late commits must be rejected (fenced);
 * (g) 10,000 runs queued before any worker starts (a one-step workflow), then three workers drain
 *     them: every run ends once, no step runs twice.
 * Each ends with the side-effect ledger checker (ledger.ts).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../support/crash-process.js';
import { budget, ChaosStage, chaosSeed, report, SCALE, scaled, SCHEMA } from './harness.js';
import { CHAOS_CHAIN, CHAOS_ONE } from './spec.js';

describe('chaos: worker processes paused, and a deep queue (throwaway cluster)', () => {
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

  it(
    '(f) SIGSTOP of a worker past its lease, then SIGCONT: its late commits are fenced, nothing lost or duplicated',
    async () => {
      const { seed, random } = chaosSeed('sigstop');
      // The reaper holds off for 15 s after the server started (docs/semantics.md); a pause before
      // then would only be reaped late.
      await stage.reaperGraceOver();
      const timings = { stepMs: 300, lease: '1500ms', heartbeat: '300ms', reaperInterval: '300ms' };
      const workers = await Promise.all([1, 2, 3].map(() => stage.startWorker(timings)));
      const inputs = Array.from({ length: scaled(40) }, (_, i) => 1000 + i);
      const runIds = await stage.trigger('chaos-chain', inputs);
      let pauses = 0;
      for (let k = 0; k < 2; k++) {
        await sleep(500 + random() * 1000);
        const victim = workers[Math.floor(random() * workers.length)]!;
        victim.child.kill('SIGSTOP');
        pauses++;
        await sleep(4_000 + random() * 1_000); // well past the 1.5 s lease
        victim.child.kill('SIGCONT');
      }
      await stage.waitForEnd(runIds, budget(120_000));
      const result = await stage.check(
        runIds.map((runId, i) => ({ runId, spec: CHAOS_CHAIN, input: inputs[i] })),
      );
      const fenced = workers
        .map((w) => (w.stdout().match(/commit (retry )?rejected/g) ?? []).length)
        .reduce((a, b) => a + b, 0);
      report('sigstop', seed, { pauses, fenced, workers: 3 }, result);
      expect(result.violations, `seed ${seed}`).toEqual([]);
      expect(
        result.outcomes['lost:lease_lost'] ?? 0,
        'paused attempts were reaped',
      ).toBeGreaterThan(0);
      for (const w of workers) expect(w.child.exitCode, 'the paused worker lives on').toBeNull();
    },
    budget(180_000),
  );

  it(
    '(g) 10,000 runs queued before any worker starts: all end, each step once',
    async () => {
      const { seed } = chaosSeed('queued');
      // A worker registers the workflow (its version must be the one workers run), then stops:
      // the runs are queued while no worker runs.
      await stage.startWorker();
      await stage.stopWorkers();
      const count = Math.round(10_000 * SCALE);
      const inputs = Array.from({ length: count }, (_, i) => i);
      const queuedAt = Date.now();
      const runIds = await stage.trigger('chaos-one', inputs, 16);
      const queueMs = Date.now() - queuedAt;
      const queued = await stage.stores.controlDb.query<{ n: number }>(
        `select count(*)::int as n from ${SCHEMA}.runs where id = any($1::text[]) and status = 'queued'`,
        [runIds],
      );
      expect(queued.rows[0]!.n).toBe(count);
      const started = Date.now();
      // No faults here: a lease long enough that two busy cores never starve a renewal.
      await Promise.all(
        [1, 2, 3].map(() => stage.startWorker({ concurrency: 32, lease: '10s', heartbeat: '1s' })),
      );
      await stage.waitForEnd(runIds, budget(240_000));
      const drainMs = Date.now() - started;
      const result = await stage.check(
        runIds.map((runId, i) => ({ runId, spec: CHAOS_ONE, input: inputs[i] })),
      );
      report(
        'queued',
        seed,
        { queueMs, drainMs, runsPerSecond: Math.round(count / (drainMs / 1000)) },
        result,
      );
      expect(result.violations, `seed ${seed}`).toEqual([]);
      expect(result.outcomes.succeeded).toBe(count);
    },
    budget(360_000),
  );
});
