/**
 * The benches' no-op chain, `s0 → s1 → … → s(n-1)`, built in a loop. `define` is the
 * `defineWorkflow` to build it with: chain-ab.ts passes each checkout's own.
 */
import type { Workflow } from '../../src/core/workflow.js';
import type { AnyWorkflow } from '../../src/engine/registry.js';
import { defineWorkflow } from '../../src/index.js';

export function chainWorkflow(
  id: string,
  n: number,
  define: typeof defineWorkflow = defineWorkflow,
): AnyWorkflow {
  let wf: Workflow<unknown, Record<string, unknown>> = define(id).step('s0', () => null);
  for (let i = 1; i < n; i++) wf = wf.step(`s${i}`, { after: `s${i - 1}` }, () => null);
  return wf;
}
