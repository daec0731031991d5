import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow, TerminalError } from '../src/index.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';
import { startTestEngine } from './support/engine.js';

describe.each(BACKENDS)('retries and run state on %s', (backend) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
  });
  afterAll(async () => {
    await db?.close();
  });

  it('retries with exponential backoff, keeping the idempotency key and counting attempts', async () => {
    const seen: Array<{ attempt: number; key: string; at: number }> = [];
    const wf = defineWorkflow('flaky').step(
      'call',
      { retry: { maxAttempts: 4, minDelay: 60, factor: 2, maxDelay: 1000, jitter: 0 } },
      (_input, ctx) => {
        seen.push({ attempt: ctx.attempt, key: ctx.idempotencyKey, at: Date.now() });
        if (ctx.attempt < 3) throw new Error(`transient failure ${ctx.attempt}`);
        return { ok: ctx.attempt };
      },
    );
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const { run } = await engine.trigger('flaky', null);
      const done = await engine.waitForRun(run.id);
      expect(done.status).toBe('succeeded');
      expect(seen.map((s) => s.attempt)).toEqual([1, 2, 3]);
      expect(new Set(seen.map((s) => s.key)).size).toBe(1);
      // backoff: 60 ms before attempt 2, 120 ms before attempt 3 (no jitter)
      expect(seen[1]!.at - seen[0]!.at).toBeGreaterThanOrEqual(55);
      expect(seen[2]!.at - seen[1]!.at).toBeGreaterThanOrEqual(115);
      const [step] = (await db.stores.runs.listStepRuns(engine.environmentId, run.id))!;
      expect(step!.attempts.map((a) => [a.number, a.status])).toEqual([
        [1, 'failed'],
        [2, 'failed'],
        [3, 'succeeded'],
      ]);
      expect(step!.attempts[0]!.error?.message).toBe('transient failure 1');
    } finally {
      await engine.stop();
    }
  });

  it('fails the run after the last attempt, and a TerminalError is never retried', async () => {
    let exhaustedCalls = 0;
    let terminalCalls = 0;
    const exhausted = defineWorkflow('exhausted').step(
      'always-fails',
      { retry: { maxAttempts: 3, minDelay: 5, maxDelay: 10 } },
      () => {
        exhaustedCalls++;
        throw new Error('still broken');
      },
    );
    const terminal = defineWorkflow('terminal').step(
      'bad-data',
      { retry: { maxAttempts: 5, minDelay: 5 } },
      () => {
        terminalCalls++;
        throw new TerminalError('user 42 has no email address', { code: 'missing_email' });
      },
    );
    const engine = await startTestEngine(db.stores, [exhausted, terminal]);
    try {
      const a = await engine.waitForRun((await engine.trigger('exhausted', {})).run.id);
      const b = await engine.waitForRun((await engine.trigger('terminal', {})).run.id);
      expect(a.status).toBe('failed');
      expect(exhaustedCalls).toBe(3);
      expect(a.error?.stepKey).toBe('always-fails');
      expect(b.status).toBe('failed');
      expect(terminalCalls).toBe(1);
      expect(b.error?.error).toMatchObject({
        name: 'TerminalError',
        code: 'missing_email',
        terminal: true,
        message: 'user 42 has no email address',
      });
      const [step] = (await db.stores.runs.listStepRuns(engine.environmentId, b.id))!;
      expect(step!.status).toBe('failed');
      expect(step!.attempts).toHaveLength(1);
    } finally {
      await engine.stop();
    }
  });

  it('times out an attempt, aborts ctx.signal and retries', async () => {
    const aborted: boolean[] = [];
    const wf = defineWorkflow('slow').step(
      'wait',
      { timeout: 80, retry: { maxAttempts: 2, minDelay: 5 } },
      async (_i, ctx) => {
        if (ctx.attempt === 1) {
          await new Promise<void>((resolve) => {
            ctx.signal.addEventListener('abort', () => {
              aborted.push(true);
              resolve();
            });
          });
          return 'too late';
        }
        return 'fast enough';
      },
    );
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const done = await engine.waitForRun((await engine.trigger('slow', null)).run.id);
      expect(done.status).toBe('succeeded');
      expect(aborted).toEqual([true]);
      expect(
        (await db.stores.runs.getDataclip(engine.environmentId, done.finalDataclipId!))?.body,
      ).toBe('fast enough');
      const [step] = (await db.stores.runs.listStepRuns(engine.environmentId, done.id))!;
      expect(step!.attempts[0]).toMatchObject({
        status: 'failed',
        error: { code: 'step_timeout' },
      });
    } finally {
      await engine.stop();
    }
  });

  it("commits ctx.state only on success: a failed attempt's changes are invisible to its retry and to other steps", async () => {
    const observed: Record<string, unknown[]> = { retry: [], sibling: [], last: [] };
    let releaseSibling: () => void = () => {};
    const siblingGate = new Promise<void>((r) => (releaseSibling = r));
    const wf = defineWorkflow('stateful')
      .step('init', (_i, ctx) => {
        ctx.state.count = 1;
        ctx.state.tags = ['a'];
        ctx.state.temp = 'remove me';
        return 'init';
      })
      .step(
        'mutate',
        { after: 'init', retry: { maxAttempts: 2, minDelay: 30 } },
        async (_i, ctx) => {
          if (ctx.attempt === 1) {
            ctx.state.count = 999;
            (ctx.state.tags as string[]).push('poison');
            ctx.state.poisoned = true;
            delete ctx.state.temp;
            releaseSibling();
            throw new Error('fail after mutating the draft');
          }
          observed.retry!.push(structuredClone(ctx.state));
          ctx.state.count = (ctx.state.count as number) + 1;
          delete ctx.state.temp;
          return 'mutated';
        },
      )
      .step('sibling', { after: 'init' }, async (_i, ctx) => {
        await siblingGate;
        observed.sibling!.push(structuredClone(ctx.state));
        return 'sibling';
      })
      .step('last', { after: ['mutate', 'sibling'] }, (_i, ctx) => {
        observed.last!.push(structuredClone(ctx.state));
        return 'done';
      });
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const done = await engine.waitForRun((await engine.trigger('stateful', null)).run.id);
      expect(done.status).toBe('succeeded');
      const initial = { count: 1, tags: ['a'], temp: 'remove me' };
      expect(observed.retry).toEqual([initial]);
      expect(observed.sibling).toEqual([initial]);
      expect(observed.last).toEqual([{ count: 2, tags: ['a'] }]);
      const rows = await db.executor.query<{ state: unknown }>(
        `select state from weft_loc_a0.runs where id = $1`,
        [done.id],
      );
      expect(rows.rows[0]!.state).toEqual({ count: 2, tags: ['a'] });
    } finally {
      await engine.stop();
    }
  });

  it('a step that never touches ctx.state keeps it; one that assigns ctx.state replaces it whole', async () => {
    const observed: unknown[] = [];
    const wf = defineWorkflow('state-whole')
      .step('init', (_i, ctx) => {
        ctx.state.a = 1;
        ctx.state.b = 2;
        return null;
      })
      .step('untouched', { after: 'init' }, () => 'no state read')
      .step('reader', { after: 'untouched' }, (_i, ctx) => {
        observed.push(structuredClone(ctx.state));
        return null;
      })
      .step('replace', { after: 'reader' }, (_i, ctx) => {
        ctx.state = { c: 3 };
        return null;
      })
      .step('last', { after: 'replace' }, (_i, ctx) => {
        observed.push(structuredClone(ctx.state));
        return null;
      });
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const done = await engine.waitForRun((await engine.trigger('state-whole', null)).run.id);
      expect(done.status).toBe('succeeded');
      expect(observed).toEqual([{ a: 1, b: 2 }, { c: 3 }]);
      const rows = await db.executor.query<{ state: unknown }>(
        `select state from weft_loc_a0.runs where id = $1`,
        [done.id],
      );
      expect(rows.rows[0]!.state).toEqual({ c: 3 });
      // the untouched step patched nothing: its success carries no state patch
      const events = await db.executor.query<{ step_key: string }>(
        `select step_key from weft_loc_a0.run_events where run_id = $1 and kind = 'step.succeeded' order by id`,
        [done.id],
      );
      expect(events.rows.map((e) => e.step_key)).toEqual(['init', 'replace']);
    } finally {
      await engine.stop();
    }
  });

  it('parallel branches writing the same key: the later commit wins and the event log shows both', async () => {
    const wf = defineWorkflow('race-state')
      .step('start', () => null)
      .step('first', { after: 'start' }, (_i, ctx) => {
        ctx.state.owner = 'first';
        return 1;
      })
      .step('second', { after: 'start' }, async (_i, ctx) => {
        await new Promise((r) => setTimeout(r, 50));
        ctx.state.owner = 'second';
        return 2;
      });
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const done = await engine.waitForRun((await engine.trigger('race-state', null)).run.id);
      const rows = await db.executor.query<{ state: { owner: string } }>(
        `select state from weft_loc_a0.runs where id = $1`,
        [done.id],
      );
      expect(rows.rows[0]!.state.owner).toBe('second');
      const events = await db.stores.runs.listRunEvents(engine.environmentId, done.id);
      const patches = events!
        .filter(
          (e) => e.kind === 'step.succeeded' && (e.data as { statePatch: unknown }).statePatch,
        )
        .map((e) => [
          e.stepKey,
          (e.data as { statePatch: { set: { owner: string } } }).statePatch.set.owner,
        ]);
      expect(patches).toEqual([
        ['first', 'first'],
        ['second', 'second'],
      ]);
    } finally {
      await engine.stop();
    }
  });
});
