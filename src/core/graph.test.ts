import { describe, expect, it } from 'vitest';
import { WeftError } from './errors.js';
import { resolveOutgoingEdges } from './edge-resolution.js';
import { compileWorkflow } from './graph.js';
import { defineWorkflow, type Workflow } from './workflow.js';

const compileError = (
  wf: Workflow<never, Record<string, unknown>> | Workflow<unknown, Record<string, unknown>>,
): WeftError => {
  try {
    compileWorkflow(wf as Workflow<unknown, Record<string, unknown>>);
  } catch (error) {
    if (error instanceof WeftError) return error;
    throw error;
  }
  throw new Error('expected compileWorkflow to throw');
};

describe('compileWorkflow validation', () => {
  it('names a dangling edge and lists the known steps', () => {
    const e = compileError(
      defineWorkflow('w')
        .step('a', () => 1)
        .step('b', { after: 'ghost' as never }, () => 1),
    );
    expect(e.code).toBe('invalid_workflow');
    expect(e.message).toBe(
      'Workflow `w`: step `b` runs after `ghost`, which is not a step of this workflow (a dangling edge). Known steps: `a`.',
    );
  });

  it('names duplicate step ids, self edges, duplicate edges and bad ids', () => {
    expect(
      compileError(
        defineWorkflow('w')
          .step('a', () => 1)
          .step('a', () => 2),
      ).message,
    ).toContain('step `a` is defined twice');
    expect(
      compileError(defineWorkflow('w').step('a', { after: 'a' as never }, () => 1)).message,
    ).toContain('runs after itself');
    expect(
      compileError(
        defineWorkflow('w')
          .step('a', () => 1)
          .step('b', { after: ['a', 'a'] }, () => 1),
      ).message,
    ).toContain('lists `a` in `after` twice');
    expect(compileError(defineWorkflow('w').step('a[1]', () => 1)).message).toContain(
      'step id "a[1]" is invalid',
    );
    expect(compileError(defineWorkflow('bad id!').step('a', () => 1)).message).toContain(
      'Workflow id "bad id!" is invalid',
    );
    expect(compileError(defineWorkflow('empty')).message).toContain('has no steps');
  });

  it('names bad retry config and timeouts', () => {
    expect(
      compileError(defineWorkflow('w').step('a', { retry: { maxAttempts: 0 } }, () => 1)).message,
    ).toBe(
      'Workflow `w` step `a` has retry.maxAttempts = 0: expected a whole number from 1 to 1000.',
    );
    expect(
      compileError(
        defineWorkflow('w').step('a', { retry: { minDelay: '5 minutes' as never } }, () => 1),
      ).message,
    ).toContain('retry.minDelay is "5 minutes"');
    expect(
      compileError(
        defineWorkflow('w').step('a', { retry: { minDelay: '2m', maxDelay: '1m' } }, () => 1),
      ).message,
    ).toContain('retry.maxDelay');
    expect(compileError(defineWorkflow('w').step('a', { timeout: 0 }, () => 1)).message).toContain(
      'timeout of 0',
    );
    expect(
      compileError(defineWorkflow('w').step('a', { onExhausted: 'explode' as never }, () => 1))
        .message,
    ).toContain('onExhausted');
  });

  it('finds a cycle even when every step has a parent', () => {
    const wf = defineWorkflow('loop')
      .step('a', { after: 'b' as never }, () => 1)
      .step('b', { after: 'a' }, () => 1);
    expect(compileError(wf).message).toContain('cycle: `a` → `b` → `a`');
  });

  it('rejects conditions that cannot apply', () => {
    const wf = defineWorkflow('w')
      .step('a', () => 1)
      .step('b', { after: { step: 'a', on: 'failure', when: () => true } as never }, () => 1);
    expect(compileError(wf).message).toContain('has both `when` and on = "failure"');
  });
});

describe('hashes', () => {
  const base = () =>
    defineWorkflow<number>('h')
      .step('a', (n) => n + 1)
      .step('b', { after: 'a' }, (n) => n * 2);

  it('are stable for the same definition and change only for the step that changed', () => {
    const one = compileWorkflow(base());
    const two = compileWorkflow(base());
    expect(two.versionHash).toBe(one.versionHash);
    const changed = compileWorkflow(
      defineWorkflow<number>('h')
        .step('a', (n) => n + 1)
        .step('b', { after: 'a' }, (n) => n * 3),
    );
    expect(changed.versionHash).not.toBe(one.versionHash);
    expect(changed.steps.get('a')!.hash).toBe(one.steps.get('a')!.hash);
    expect(changed.steps.get('b')!.hash).not.toBe(one.steps.get('b')!.hash);
  });

  it('change with config (retry), not only code', () => {
    const one = compileWorkflow(defineWorkflow('c').step('a', () => 1));
    const two = compileWorkflow(
      defineWorkflow('c').step('a', { retry: { maxAttempts: 5 } }, () => 1),
    );
    expect(two.steps.get('a')!.hash).not.toBe(one.steps.get('a')!.hash);
  });
});

describe('resolveOutgoingEdges', () => {
  const wf = compileWorkflow(
    defineWorkflow<number>('edges')
      .step('s', (n) => n)
      .step('ok', { after: 's' }, () => 1)
      .step('big', { after: { step: 's', when: (n) => n > 10 } }, () => 1)
      .step('onFail', { after: { step: 's', on: 'failure' } }, () => 1)
      .step('finally', { after: { step: 's', on: 'always' } }, () => 1),
  );
  const s = wf.steps.get('s')!;

  it('on success: success and always edges, predicates evaluated', () => {
    expect(resolveOutgoingEdges('edges', s, { ok: true, output: 5 })).toEqual({
      live: ['ok', 'finally'],
      dead: ['big', 'onFail'],
    });
    expect(resolveOutgoingEdges('edges', s, { ok: true, output: 50 }).live).toEqual([
      'ok',
      'big',
      'finally',
    ]);
  });

  it('on failure: failure and always edges only', () => {
    expect(resolveOutgoingEdges('edges', s, { ok: false })).toEqual({
      live: ['onFail', 'finally'],
      dead: ['ok', 'big'],
    });
  });
});
