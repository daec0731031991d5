/**
 * A run created through the store alone, for tests that claim and commit its steps themselves
 * (no engine): the workflow's current version registered, the input `null`, dataclips kept.
 */
import type { CompiledWorkflow } from '../../src/core/graph.js';
import type { RunRecord } from '../../src/store/rows.js';
import type { Stores } from '../../src/store/stores.js';

export async function createStoreRun(
  stores: Stores,
  environmentId: string,
  compiled: CompiledWorkflow,
): Promise<RunRecord> {
  const { versionId } = await stores.control.registerWorkflow(environmentId, compiled);
  const { run } = await stores.runs.createRun({
    environmentId,
    workflowId: compiled.id,
    versionId,
    graph: compiled.graph,
    inputText: 'null',
    inputBytes: 4,
    saveDataclips: true,
    trigger: { kind: 'api' },
  });
  return run;
}
