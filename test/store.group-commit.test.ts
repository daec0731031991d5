import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileWorkflow } from '../src/core/graph.js';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';

describe.each(BACKENDS)('group commit on %s', (backend) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
  });
  afterAll(async () => {
    await db?.close();
  });

  it('commits many attempts in one statement, fencing each on its own and handing back next steps', async () => {
    const compiled = compileWorkflow(
      defineWorkflow('pair')
        .step('a', () => 1)
        .step('b', { after: 'a' }, () => 2),
    );
    const { environmentId } = await db.stores.control.createTenant({
      organization: 'o',
      project: 'p',
      environment: 'gc',
    });
    const { versionId } = await db.stores.control.registerWorkflow(environmentId, compiled);
    const runs = db.stores.runs;
    for (let i = 0; i < 5; i++) {
      await runs.createRun({
        environmentId,
        workflowId: 'pair',
        versionId,
        graph: compiled.graph,
        inputText: String(i),
        inputBytes: 1,
        saveDataclips: true,
        trigger: { kind: 'api' },
      });
    }
    const claims = await runs.claimSteps('w1', [environmentId], ['pair'], 10, 60_000);
    expect(claims).toHaveLength(5);
    // the last claim is stolen: its attempt belongs to another worker now
    const stolen = claims[4]!;
    const commit = (n: number) => ({
      outputText: String(n * 10),
      stateSet: JSON.stringify({ n }),
      stateDelete: null,
      live: ['b'],
      dead: [],
      claimNext: true,
      leaseMs: 60_000,
    });
    const results = await runs.completeSteps(
      claims.map((claim, i) => ({
        claim,
        workerId: i === 4 ? 'someone-else' : 'w1',
        commit: commit(i),
      })),
    );
    expect(results.map((r) => r.status)).toEqual([
      'committed',
      'committed',
      'committed',
      'committed',
      'fenced',
    ]);
    for (const [i, r] of results.slice(0, 4).entries()) {
      if (r.status !== 'committed') throw new Error('expected committed');
      expect(r.next).toMatchObject({
        runId: claims[i]!.runId,
        stepKey: 'b',
        attempt: 1,
        input: i * 10,
        state: { n: i },
      });
    }
    // items without a state patch leave the run state an object (JSON null is "no patch")
    const plain = results
      .filter((r) => r.status === 'committed')
      .map((r) => (r as { next: (typeof claims)[number] }).next);
    await runs.completeSteps(
      plain.map((claim) => ({
        claim,
        workerId: 'w1',
        commit: { ...commit(0), stateSet: null, live: [], dead: [] },
      })),
    );
    for (const claim of plain) {
      const state = await db.executor.query<{ state: unknown }>(
        `select state from weft_loc_a0.runs where id = $1`,
        [claim.runId],
      );
      expect(state.rows[0]!.state).toEqual({ n: claims.findIndex((c) => c.runId === claim.runId) });
    }
    const untouched = await runs.listStepRuns(environmentId, stolen.runId);
    expect(untouched!.find((s) => s.stepKey === 'a')!.status).toBe('running');
    expect(untouched!.find((s) => s.stepKey === 'b')!.status).toBe('pending');
  });
});
