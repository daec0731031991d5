/**
 * Chaos (a): `kill -9` of a random `weft worker` every second, 3 workers, 100 runs of `chaos-mix`
 * (fan-out, join, a parallel of three, a sleep, an approval completed by the test over the API at
 * random moments, a final join: 12 step runs, 8 of them code). Each killed worker is replaced by a
 * new process. At the end the side-effect ledger checker (ledger.ts) must find nothing lost,
 * nothing duplicated, and every run's final state equal to the reference interpreter's.
 */
import type { CliProcess } from '../support/cli-process.js';
import { sleep } from '../support/crash-process.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { budget, ChaosStage, chaosSeed, report, scaled } from './harness.js';
import { CHAOS_MIX } from './spec.js';

describe('chaos: kill -9 of a random worker every second (PostgreSQL, weft worker ×3, weft server)', () => {
  let stage: ChaosStage;
  beforeAll(async () => {
    stage = await ChaosStage.create();
  }, budget(120_000));
  afterAll(async () => {
    await stage?.destroy();
  });

  it(
    '100 runs × 12 step runs with joins, a parallel, a sleep and approvals: nothing lost or duplicated',
    async () => {
      const { seed, random } = chaosSeed('kill');
      const timings = { stepMs: 200, lease: '2s', heartbeat: '400ms', reaperInterval: '500ms' };
      const { url } = await stage.startServer();
      await stage.key();
      const live: CliProcess[] = await Promise.all([1, 2, 3].map(() => stage.startWorker(timings)));

      const count = scaled(100);
      const inputs = Array.from({ length: count }, (_, i) => i);
      const runIds = await stage.trigger('chaos-mix', inputs);
      const approvals = new Map(runIds.map((id, i) => [id, { ap: { v: (i * 7) % 11 } }]));

      // Approvals: each tick completes a random share of the waiting ones, over the API.
      let completed = 0;
      const approve = async () => {
        for (const { token, runId } of await stage.waitingApprovals(runIds)) {
          if (random() < 0.4) continue;
          const status = await stage.completeApproval(url, token, approvals.get(runId)!.ap);
          expect([200, 409]).toContain(status);
          if (status === 200) completed++;
        }
      };

      // Kill a random worker every second while the runs are in flight; replace it at once (the
      // replacement takes a few seconds to start, so 1–3 workers are up at any moment).
      const killUntil = Date.now() + scaled(25_000);
      let kills = 0;
      const starting: Promise<void>[] = [];
      while (Date.now() < killUntil && (await stage.unfinished(runIds)) > 0) {
        await sleep(1_000);
        await approve();
        if (live.length === 0) continue;
        const victim = live.splice(Math.floor(random() * live.length), 1)[0]!;
        await stage.kill(victim);
        kills++;
        starting.push(stage.startWorker(timings).then((w) => void live.push(w)));
      }
      await Promise.all(starting);
      await stage.waitForEnd(runIds, budget(120_000), approve);

      const result = await stage.check(
        runIds.map((runId, i) => ({
          runId,
          spec: CHAOS_MIX,
          input: inputs[i],
          approvals: approvals.get(runId),
        })),
      );
      report('kill', seed, { kills, approvals: completed, workers: 3 }, result);
      expect(result.violations, `seed ${seed}`).toEqual([]);
      // The kills stop when the runs end, so their number varies; a floor shows the fault happened.
      expect(kills).toBeGreaterThanOrEqual(5);
      const lost = Object.entries(result.outcomes).filter(([k]) => k.startsWith('lost'));
      expect(lost.length, 'the kills interrupted attempts').toBeGreaterThan(0);
    },
    budget(300_000),
  );
});
