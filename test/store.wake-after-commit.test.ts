/**
 * Wake-ups travel after the commit, from the store, not as NOTIFY inside the location functions'
 * transactions (signals.ts says why): a function reports the environments it made work ready in
 * (`wake`, src/store/sql/location/wake.sql) and RunStore hands them to Signals. On both databases:
 * a chain step whose successor the same worker takes wakes nobody; a fan-out step whose second
 * successor is left ready wakes its environment; a canceled run signals weft_cancel.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileWorkflow } from '../src/core/graph.js';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';
import { createStoreRun } from './support/store-runs.js';

describe.each(BACKENDS)('wake-ups after commit on %s', (backend) => {
  let db: TestDatabase;
  let environmentId: string;
  const sent: Array<[string, string]> = [];
  const compiled = compileWorkflow(
    defineWorkflow('fan')
      .step('a', () => 1)
      .step('b', { after: 'a' }, () => 2)
      .step('c', { after: 'a' }, () => 3)
      .step('d', { after: 'b' }, () => 4),
  );

  beforeAll(async () => {
    db = await openTestDatabase(backend);
    ({ environmentId } = await db.stores.control.createTenant({
      organization: 'o',
      project: 'p',
      environment: 'wake',
    }));
    // Observe what the store hands to Signals (the real Signals still sends it).
    const signals = db.stores.runs.signals;
    const send = signals.send.bind(signals);
    signals.send = (executor, channel, payload) => {
      sent.push([channel, payload]);
      send(executor, channel, payload);
    };
  });
  afterAll(async () => {
    await db?.close();
  });

  async function startRun() {
    return (await createStoreRun(db.stores, environmentId, compiled)).id;
  }

  const commit = (live: string[]) => ({
    outputText: '1',
    stateSet: null,
    stateDelete: null,
    live,
    dead: [],
    claimNext: true,
    leaseMs: 60_000,
  });

  it('a fan-out wakes the environment for the successor it leaves ready; a chain step wakes nobody', async () => {
    const runId = await startRun();
    const [a] = await db.stores.runs.claimSteps('w1', [environmentId], ['fan'], 1, 60_000);
    expect(a).toMatchObject({ runId, stepKey: 'a' });
    sent.length = 0;
    const afterA = await db.stores.runs.completeStep(a!, 'w1', commit(['b', 'c']));
    expect(afterA.status).toBe('committed');
    const next = afterA.status === 'committed' ? afterA.next : null;
    // one of b and c is taken by this worker (the one claim rule), the other is left ready
    expect(['b', 'c']).toContain(next?.stepKey);
    expect(sent).toEqual([['weft_ready', environmentId]]);

    sent.length = 0;
    if (next?.stepKey === 'b') {
      // b → d: the chain's take, nothing left ready, nobody to wake
      const afterB = await db.stores.runs.completeStep(next, 'w1', commit(['d']));
      expect(afterB.status === 'committed' && afterB.next?.stepKey).toBe('d');
      expect(sent).toEqual([]);
    }
    const cancel = await db.stores.runs.cancelRun(environmentId, runId, 'test');
    expect(cancel.status).toBe('canceled');
    expect(sent).toContainEqual(['weft_cancel', runId]);
    expect(sent).toContainEqual(['weft_run_finished', runId]);
  });
});
