/**
 * The one listener hub (src/engine/run-observer.ts): "run ended" is one channel, and one
 * notification on it wakes both kinds of listener. On both databases, with the waiters' poll set
 * far beyond the test's timeouts so only the notification can wake them:
 * - a stream subscribed to a run is woken by the run-ended channel alone (no event committed, so
 *   the `weft_events` trigger sent nothing);
 * - a waiter on a run is woken when the run is canceled (the store signals run ended after commit);
 * - a wake-up for another run wakes neither.
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

  async function startRun() {
    const { versionId } = await db.stores.control.registerWorkflow(environmentId, compiled);
    const { run } = await db.stores.runs.createRun({
      environmentId,
      workflowId: 'observed',
      versionId,
      graph: compiled.graph,
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
});
