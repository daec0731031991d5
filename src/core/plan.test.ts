import { describe, expect, it } from 'vitest';
import { compileWorkflow } from './graph.js';
import { compilePlan, concurrencyKey, followsFailure, keyed, linkEdges, planOf } from './plan.js';
import { defineWorkflow, type Workflow } from './workflow.js';

const wf = compileWorkflow(
  defineWorkflow<number>('plan')
    .step('s', (n) => n)
    .step('ok', { after: 's', concurrency: 2 }, () => 1)
    .step('big', { after: { step: 's', when: (n) => n > 10 } }, () => 1)
    .step('onFail', { after: { step: 's', on: 'failure' } }, () => 1)
    .step('finally', { after: { step: 's', on: 'always' } }, () => 1)
    .forEach('each', {
      after: ['ok', 'big'],
      items: () => [1, 2],
      body: (b) =>
        b
          .step('x', (i) => i)
          .step('y', { after: { step: 'x', on: 'failure' } }, () => 0)
          .step('z', { after: ['x'] }, () => 0),
    }) as unknown as Workflow<unknown, Record<string, unknown>>,
);

describe('execution plan', () => {
  it('failure and always edges are followed on failure; success and timeout edges are not', () => {
    expect(followsFailure('failure')).toBe(true);
    expect(followsFailure('always')).toBe(true);
    expect(followsFailure('success')).toBe(false);
    expect(followsFailure('timeout')).toBe(false);
  });

  it('gives each node the same edges as the compiled definition, level by level', () => {
    const plan = compilePlan(wf.graph);
    expect(plan.nodes.size).toBe(wf.steps.size);
    for (const step of wf.steps.values()) {
      const node = plan.nodes.get(step.id)!;
      expect(node.scope).toBe(step.scope);
      expect(node.parents).toEqual(step.parents);
      expect(node.successors).toEqual(step.successors);
      expect(node.failureSuccessors).toEqual(step.failureSuccessors);
      expect(node.maxAttempts).toBe(step.retry.maxAttempts);
      expect(node.concurrency).toBe(step.concurrency);
    }
    expect(plan.level(null).map((n) => n.id)).toEqual(wf.order.map((s) => s.id));
    expect(plan.level('each').map((n) => n.id)).toEqual(['x', 'y', 'z']);
    expect(plan.nodes.get('s')!.failureSuccessors).toEqual(['onFail', 'finally']);
    expect(plan.nodes.get('x')!.failureSuccessors).toEqual(['y']);
    expect(plan.level('s')).toEqual([]);
  });

  it('reads a stored graph (JSON round trip, as a version registered by an earlier release)', () => {
    const stored = JSON.parse(JSON.stringify(wf.graph)) as typeof wf.graph;
    const plan = planOf(stored);
    expect(planOf(stored)).toBe(plan);
    expect(plan.nodes.get('each')!.parents).toEqual(['ok', 'big']);
    expect(plan.nodes.get('z')!.parents).toEqual(['x']);
  });

  it('keeps only edges whose ends are both in the given ids', () => {
    const links = linkEdges(
      ['a', 'b'],
      [
        { from: 'a', to: 'b', on: 'always' },
        { from: 'a', to: 'c', on: 'success' },
      ],
    );
    expect(links.get('a')).toEqual({ parents: [], successors: ['b'], failureSuccessors: ['b'] });
    expect(links.get('b')!.parents).toEqual(['a']);
    expect(links.has('c')).toBe(false);
  });

  it('keys a body step run by its owner index path, and a concurrency limit by environment, workflow and step', () => {
    expect(keyed('s', ['ok', 'big'])).toEqual(['ok', 'big']);
    expect(keyed('x[2]', ['y', 'z'])).toEqual(['y[2]', 'z[2]']);
    expect(keyed('x[2][0]', ['y'])).toEqual(['y[2][0]']);
    expect(concurrencyKey('env_1', 'plan', 'ok')).toBe('env_1:plan:ok');
  });
});
