import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow, WeftError } from '../src/index.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';
import { startTestEngine } from './support/engine.js';

describe.each(BACKENDS)('bad input on %s', (backend) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
  });
  afterAll(async () => {
    await db?.close();
  });

  it('refuses a definition with a cycle, naming the steps on it, and registers nothing', async () => {
    const cyclic = defineWorkflow('cyclic')
      .step('start', () => 1)
      .step('a', { after: ['start', 'c' as never] }, () => 1)
      .step('b', { after: 'a' }, () => 1)
      .step('c', { after: 'b' }, () => 1);
    const engine = await startTestEngine(db.stores, []);
    try {
      const error = await engine.register(cyclic).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WeftError);
      expect((error as WeftError).code).toBe('invalid_workflow');
      expect((error as WeftError).message).toContain('has a cycle: `a` → `b` → `c` → `a`');
      expect(await db.stores.control.listWorkflows(engine.environmentId)).toEqual([]);
    } finally {
      await engine.stop();
    }
  });

  it('fails a step whose output is not JSON at once (no retries), naming the path, and ends the run', async () => {
    let calls = 0;
    const cases: Array<[string, () => unknown, string]> = [
      ['fn', () => ({ user: { cb: () => 1 } }), 'a function at `output.user.cb`'],
      ['big', () => ({ n: 10n }), 'a bigint (10n) at `output.n`'],
      ['nan', () => [1, Number.NaN], 'the number NaN at `output[1]`'],
      ['map', () => ({ m: new Map() }), 'a Map at `output.m`'],
      ['nul', () => 'a\u0000b', '\\u0000'],
      ['surrogate', () => ({ s: 'x\ud800' }), 'lone UTF-16 surrogate'],
      [
        'cycle',
        () => {
          const o: Record<string, unknown> = {};
          o.self = o;
          return o;
        },
        'a circular reference at `output.self`',
      ],
    ];
    const workflows = cases.map(([name, make]) =>
      defineWorkflow(`bad-${name}`).step(
        'produce',
        { retry: { maxAttempts: 3, minDelay: 5 } },
        () => {
          calls++;
          return make();
        },
      ),
    );
    const engine = await startTestEngine(db.stores, workflows);
    try {
      for (const [name, , expected] of cases) {
        const done = await engine.waitForRun((await engine.trigger(`bad-${name}`, null)).run.id);
        expect(done.status, name).toBe('failed');
        expect(done.error?.error?.code, name).toBe('invalid_output');
        expect(done.error?.error?.message, name).toContain(expected);
        expect(done.error?.error?.message, name).toContain(
          `Step \`produce\` of workflow \`bad-${name}\``,
        );
      }
      expect(calls).toBe(cases.length);
    } finally {
      await engine.stop();
    }
  });

  it('fails an oversized output with payload_too_large, not a retry loop', async () => {
    const wf = defineWorkflow('huge', { maxPayloadBytes: 1024 }).step(
      'make',
      { retry: { maxAttempts: 3, minDelay: 5 } },
      () => 'x'.repeat(2000),
    );
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const done = await engine.waitForRun((await engine.trigger('huge', null)).run.id);
      expect(done.status).toBe('failed');
      expect(done.error?.error).toMatchObject({ code: 'payload_too_large' });
      const [step] = (await db.stores.runs.listStepRuns(engine.environmentId, done.id))!;
      expect(step!.attempts).toHaveLength(1);
    } finally {
      await engine.stop();
    }
  });

  it('a predicate that throws fails the step clearly instead of retrying it', async () => {
    const wf = defineWorkflow('bad-predicate')
      .step('a', { retry: { maxAttempts: 3, minDelay: 5 } }, () => ({}))
      .step(
        'b',
        {
          after: {
            step: 'a',
            when: (o) => (o as unknown as { x: { y: number } }).x.y > 1,
          },
        },
        () => 1,
      );
    const engine = await startTestEngine(db.stores, [wf]);
    try {
      const done = await engine.waitForRun((await engine.trigger('bad-predicate', null)).run.id);
      expect(done.status).toBe('failed');
      expect(done.error?.error).toMatchObject({ code: 'edge_condition_failed' });
      expect(done.error?.error?.message).toContain('edge `a -> b`');
    } finally {
      await engine.stop();
    }
  });

  it('rejects an oversized or non-JSON input before anything is written', async () => {
    const wf = defineWorkflow('small-input', { maxPayloadBytes: 100 }).step('s', (x) => x);
    const engine = await startTestEngine(db.stores, [wf], { worker: false });
    try {
      const tooBig = await engine
        .trigger('small-input', { blob: 'y'.repeat(200) })
        .catch((e: unknown) => e);
      expect(tooBig).toMatchObject({ code: 'payload_too_large' });
      expect((tooBig as Error).message).toContain('over the limit of 100 bytes');
      const nul = await engine.trigger('small-input', { s: '\u0000' }).catch((e: unknown) => e);
      expect(nul).toMatchObject({ code: 'invalid_input' });
      const deep = await engine
        .trigger('small-input', JSON.parse('['.repeat(10_000) + ']'.repeat(10_000)))
        .catch((e: unknown) => e);
      expect(deep).toMatchObject({ code: 'invalid_input' });
      const { data } = await db.stores.runs.listRuns({
        environmentId: engine.environmentId,
        limit: 10,
      });
      expect(data).toEqual([]);
    } finally {
      await engine.stop();
    }
  });

  it('an unknown workflow is a named error listing the registered ones', async () => {
    const wf = defineWorkflow('known').step('s', () => 1);
    const engine = await startTestEngine(db.stores, [wf], { worker: false });
    try {
      const error = await engine.trigger('unknwon', {}).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'unknown_workflow' });
      expect((error as Error).message).toContain('Workflow `unknwon` is not registered');
      expect((error as Error).message).toContain('Registered: `known`');
    } finally {
      await engine.stop();
    }
  });
});
