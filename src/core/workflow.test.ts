import { describe, expect, expectTypeOf, it } from 'vitest';
import { WeftError, type StepErrorInfo } from './errors.js';
import { defineWorkflow, type FailureInput } from './workflow.js';

describe('defineWorkflow', () => {
  it("types each step's input from its parents (checked by tsc)", () => {
    const wf = defineWorkflow<{ userId: string }>('typed')
      .step('fetch', ({ userId }) => {
        expectTypeOf(userId).toEqualTypeOf<string>();
        return { id: userId, email: 'a@b.c', vip: true };
      })
      .step('score', { after: 'fetch' }, async (user) => {
        expectTypeOf(user).toEqualTypeOf<{ id: string; email: string; vip: boolean }>();
        return 42;
      })
      .step('vipOnly', { after: { step: 'fetch', when: (u) => u.vip } }, (user) => {
        expectTypeOf(user.email).toEqualTypeOf<string>();
        return 'vip';
      })
      .step('onError', { after: { step: 'score', on: 'failure' } }, (failure) => {
        expectTypeOf(failure).toEqualTypeOf<FailureInput>();
        expectTypeOf(failure.error).toEqualTypeOf<StepErrorInfo>();
        return null;
      })
      .step('join', { after: ['fetch', 'score'] }, (parents) => {
        expectTypeOf(parents.score).toEqualTypeOf<number>();
        expectTypeOf(parents.fetch.id).toEqualTypeOf<string>();
        return parents.score;
      });
    expect(wf.steps.map((s) => [s.id, s.after.map((e) => `${e.from}:${e.on}`)])).toEqual([
      ['fetch', []],
      ['score', ['fetch:success']],
      ['vipOnly', ['fetch:success']],
      ['onError', ['score:failure']],
      ['join', ['fetch:success', 'score:success']],
    ]);
  });

  it("gives a root step declared with options (retry, no after) the run's input (checked by tsc)", () => {
    const wf = defineWorkflow<{ n: number }>('root-options')
      .step('first', { retry: { maxAttempts: 2 } }, ({ n }) => {
        expectTypeOf(n).toEqualTypeOf<number>();
        return n + 1;
      })
      .step('second', { after: 'first', timeout: '1s' }, (value) => {
        expectTypeOf(value).toEqualTypeOf<number>();
        return value;
      });
    expect(wf.steps.map((s) => s.after.length)).toEqual([0, 1]);
  });

  it('is immutable: adding a step returns a new definition', () => {
    const base = defineWorkflow('w').step('a', () => 1);
    const extended = base.step('b', { after: 'a' }, (n) => n + 1);
    expect(base.steps).toHaveLength(1);
    expect(extended.steps).toHaveLength(2);
  });

  it('only lets a step run after steps defined before it (checked by tsc)', () => {
    defineWorkflow('w')
      .step('a', () => 1)
      // @ts-expect-error `later` is not a step yet
      .step('b', { after: 'later' }, () => 1);
  });
});

describe('subWorkflow with a bad `workflow` option', () => {
  it.each([
    ['undefined', undefined, 'found undefined'],
    ['a number', 42, 'found number 42'],
    ['an object without an id', {}, 'found an object without a string `id`'],
    ['null', null, 'found object null'],
  ])(
    'refuses %s naming the step, what was expected, what was found, and the fix',
    (_, value, found) => {
      let caught: unknown;
      try {
        defineWorkflow('parent').subWorkflow('child', { workflow: value as unknown as string });
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(WeftError);
      expect(caught).not.toBeInstanceOf(TypeError);
      const e = caught as WeftError;
      expect(e.code).toBe('invalid_workflow');
      expect(e.message).toContain('Workflow `parent`');
      expect(e.message).toContain('sub-workflow `child`');
      expect(e.message).toContain('a workflow id string');
      expect(e.message).toContain(found);
      expect(e.message).toContain("Fix: pass the child's id");
      expect(e.details).toMatchObject({ workflowId: 'parent', stepId: 'child' });
    },
  );

  it('still accepts an id string or a definition', () => {
    const child = defineWorkflow('kid').step('a', () => 1);
    const byId = defineWorkflow('p1').subWorkflow('c', { workflow: 'kid' });
    const byDef = defineWorkflow('p2').subWorkflow('c', { workflow: child });
    expect(byId.steps[0]?.control).toMatchObject({ kind: 'subWorkflow', workflow: 'kid' });
    expect(byDef.steps[0]?.control).toMatchObject({ kind: 'subWorkflow', workflow: 'kid' });
  });
});
