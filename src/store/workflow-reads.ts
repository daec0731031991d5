/**
 * Reads of workflow versions for the API beyond control-store.ts: per-version step hashes, so a
 * client can tell which steps changed between two versions without fetching every graph.
 */
import type { Queryable } from './executor.js';

/**
 * `{ versionId: { stepId: hash } }` for every version of a workflow, in one statement over
 * `unique (environment_id, workflow_id, version)`; the hashes are read out of each stored graph.
 */
export async function listVersionStepHashes(
  db: Queryable,
  schema: string,
  environmentId: string,
  workflowId: string,
): Promise<Map<string, Record<string, string>>> {
  const rows = await db.query<{ id: string; step_hashes: Record<string, string> | null }>(
    `select v.id,
            (select jsonb_object_agg(n ->> 'id', n ->> 'hash') from jsonb_array_elements(v.graph -> 'nodes') n) as step_hashes
       from ${schema}.workflow_versions v
      where v.environment_id = $1 and v.workflow_id = $2`,
    [environmentId, workflowId],
  );
  return new Map(rows.rows.map((r) => [r.id, r.step_hashes ?? {}]));
}
