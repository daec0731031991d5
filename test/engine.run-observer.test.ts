/**
 * The one listener hub (src/engine/run-observer.ts): "run ended" is one channel, and one
 * notification on it wakes both kinds of listener. On both databases, with the waiters' poll set
 * far beyond the test's timeouts so only the notification can wake them:
 * - a stream subscribed to a run is woken by the run-ended channel alone (no event committed, so
 *   the `weft_events` trigger sent nothing);
 * - a waiter on a run is woken when the run is canceled (the store signals run ended after commit);
 * - a wake-up for another run wakes neither;
 * - a stream is woken by the `weft_events` notification of each event of its run that has no
 *   run_events row (a claim's `step.started`, a commit's `step.succeeded`), whichever path the
 *   claim takes (the worker's claim, or the commit's take of the successor), and not for a run
 *   nobody watches.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileWorkflow } from '../src/core/graph.js';
import { RunObserver } from '../src/engine/run-observer.js';
import { defineWorkflow } from '../src/index.js';
import { CHANNELS } from '../src/store/channels.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';

describe.each(BACKENDS)('run observer on %s', (backend) => {
  let db: TestDatabase;
  let environmentId: string;
  let observer: RunObserver;
  const compiled = compileWorkflow(defineWorkflow('observed').step('a', () => 1));
  const chain = compileWorkflow(
    defineWorkflow('observed-chain')
      .step('a', () => 1)
      .step('b', { after: 'a' }, () => 2)
      .step('c', { after: 'b' }, () => 3),
  );

  beforeAll(async () => {
    db = await openTestDatabase(backend);
    ({ environmentId } = await db.stores.control.createTenant({
      organization: 'o',
      project: 'p',
      environment: 'observe',
    }));
    observer = new RunObserver(db.stores.runs, 600_000);
  });
  afterAll(async () => {
    await observer?.close();
    await db?.close();
  });

  async function startRun(workflow = compiled) {
    const { versionId } = await db.stores.control.registerWorkflow(environmentId, workflow);
    const { run } = await db.stores.runs.createRun({
      environmentId,
      workflowId: workflow.id,
      versionId,
      graph: workflow.graph,
      inputText: 'null',
      inputBytes: 4,
      saveDataclips: true,
      trigger: { kind: 'api' },
    });
    return run.id;
  }

  it('wakes a stream on the run-ended channel alone, and not for another run', async () => {
    const runId = await startRun();
    const other = await startRun();
    const subscription = await observer.subscribe(runId);
    try {
      db.stores.runs.signals.send(db.stores.runOpsDb, CHANNELS.runEnded, other);
      expect(await subscription.wait(300)).toBe(false);
      const started = Date.now();
      db.stores.runs.signals.send(db.stores.runOpsDb, CHANNELS.runEnded, runId);
      expect(await subscription.wait(10_000)).toBe(true);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      subscription.close();
    }
    expect(observer.size).toBe(0);
  });

  it('wakes a run waiter on the same channel when the run is canceled', async () => {
    const runId = await startRun();
    const waiting = observer.waitForRun(environmentId, runId, { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    await db.stores.runs.cancelRun(environmentId, runId, 'test');
    const run = await waiting;
    expect(run.status).toBe('canceled');
    // The waiters' poll is 10 minutes away: only the notification can have woken it.
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('wakes a stream for each step started and succeeded of its run, on every claim path', async () => {
    const runId = await startRun(chain);
    const unwatched = await startRun(chain);
    const subscription = await observer.subscribe(runId);
    const commit = (live: string[], claimNext: boolean) => ({
      outputText: '1',
      stateSet: null,
      stateDelete: null,
      live,
      dead: [],
      claimNext,
      leaseMs: 30_000,
    });
    try {
      // the worker's claim (claim_steps → claim_by_ids): `a` started, in both runs
      const claims = await db.stores.runs.claimSteps('w', [environmentId], [chain.id], 2, 30_000);
      expect(claims.map((c) => c.runId).sort()).toEqual([runId, unwatched].sort());
      expect(await subscription.wait(10_000), 'step.started of a (worker claim)').toBe(true);
      const mine = claims.find((c) => c.runId === runId)!;
      const theirs = claims.find((c) => c.runId === unwatched)!;
      // the other run's commit wakes nothing here
      await db.stores.runs.completeStep(theirs, 'w', commit(['b'], false));
      expect(await subscription.wait(300), 'an unwatched run').toBe(false);
      // the chain's commit: `a` succeeded and `b` taken in the same transaction (fast path)
      const first = await db.stores.runs.completeStep(mine, 'w', commit(['b'], true));
      expect(first.status === 'committed' && first.next?.stepKey).toBe('b');
      expect(await subscription.wait(10_000), 'a succeeded, b started (commit take)').toBe(true);
      // a commit that claims nothing: `b` succeeded, `c` left ready
      if (first.status !== 'committed' || !first.next) throw new Error('no successor');
      await db.stores.runs.completeStep(first.next, 'w', commit(['c'], false));
      expect(await subscription.wait(10_000), 'b succeeded (no claim)').toBe(true);
    } finally {
      subscription.close();
    }
  });
});
