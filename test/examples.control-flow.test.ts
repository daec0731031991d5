import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workflows } from '../examples/index.js';
import {
  BACKENDS,
  finalStateOf,
  openTestDatabase,
  type TestDatabase,
} from './support/databases.js';
import { startTestEngine } from './support/engine.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(BACKENDS)('the control-flow examples on %s', (backend) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
  });
  afterAll(async () => {
    await db?.close();
  });
  const final = (envId: string, runId: string) => finalStateOf(db, envId, runId);

  it('document-review: short documents publish at once; long ones wait for every reviewer', async () => {
    const engine = await startTestEngine(db.stores, workflows);
    try {
      const short = await engine.waitForRun(
        (await engine.trigger('document-review', { title: 'memo', words: 200, reviewers: ['ada'] }))
          .run.id,
      );
      expect(await final(engine.environmentId, short.id)).toEqual({ published: 'memo' });

      const { run } = await engine.trigger('document-review', {
        title: 'Q3',
        words: 4200,
        reviewers: ['ada', 'grace'],
      });
      let tokens: string[] = [];
      for (let i = 0; i < 200 && tokens.length < 2; i++) {
        await sleep(25);
        tokens = (await db.stores.runs.listWaitpoints(engine.environmentId, run.id))
          .filter((w) => w.status === 'waiting')
          .map((w) => w.id);
      }
      expect(tokens).toHaveLength(2);
      await engine.completeWaitpoint(tokens[1]!, { approved: true });
      await engine.completeWaitpoint(tokens[0]!, { approved: true, note: 'ship it' });
      const done = await engine.waitForRun(run.id);
      expect(await final(engine.environmentId, done.id)).toEqual({
        approved: true,
        answers: [true, true],
      });
    } finally {
      await engine.stop();
    }
  });

  it('newsletter: a loop with a router inside, a rate-limited send, times, while, and a child run', async () => {
    const engine = await startTestEngine(db.stores, workflows);
    try {
      const done = await engine.waitForRun(
        (
          await engine.trigger('newsletter', {
            issue: '#42',
            subscribers: [
              { email: 'ada@example.com' },
              { email: 'bob@example.com', unsubscribed: true },
              { email: 'cy@example.com' },
            ],
          })
        ).run.id,
      );
      expect(done.status).toBe('succeeded');
      const steps = (await db.stores.runs.listStepRuns(engine.environmentId, done.id))!;
      const status = Object.fromEntries(steps.map((s) => [s.stepKey, s.status]));
      expect(status).toMatchObject({
        'send[0]': 'succeeded',
        'send[1]': 'pruned',
        'skipped[1]': 'succeeded',
        'send[2]': 'succeeded',
        summary: 'succeeded',
      });
      const { data: children } = await db.stores.runs.listRuns({
        environmentId: engine.environmentId,
        workflowId: 'welcome-email',
        limit: 5,
      });
      expect(children.map((c) => c.parentRunId)).toEqual([done.id]);
    } finally {
      await engine.stop();
    }
  });

  it('nightly-import: sleeps, parses in parallel collecting bad rows, loads the good ones', async () => {
    const engine = await startTestEngine(db.stores, workflows);
    try {
      const done = await engine.waitForRun(
        (await engine.trigger('nightly-import', { rows: ['ada,36', 'grace,85', 'oops'] })).run.id,
      );
      expect(done.status).toBe('succeeded');
      expect(await final(engine.environmentId, done.id)).toEqual({ loaded: 2, rejected: 1 });
      expect(Date.parse(done.finishedAt!) - Date.parse(done.createdAt)).toBeGreaterThanOrEqual(
        2900,
      );
    } finally {
      await engine.stop();
    }
  });
});
