/**
 * Dataclip retention: the bodies of an environment's old dataclips are wiped (body null,
 * `wiped_at` set; id, hash and size stay, so lineage and reuse checks still work) once they are
 * older than the project's `retention_days`. Only dataclips of runs that have ended: a queued,
 * running, waiting or paused run still needs its input and outputs. Age counts from when the value
 * was written, so a recent rerun that reuses an old output by reference loses that body with the
 * old run (a later rerun that needs it gets 409 `dataclips_wiped`).
 */
import type { RunStore } from './run-store.js';

/**
 * Wipe up to `limit` bodies per run location; returns how many were wiped. Idempotent and safe to
 * run from several processes at once (a row already wiped is skipped; two sweeps racing on one
 * row both write the same thing). The scan goes through runs_env_created for the environment's
 * old runs, then dataclips_run for each run's values.
 */
export async function wipeExpiredDataclips(
  runs: RunStore,
  environmentId: string,
  olderThan: Date,
  limit = 1_000,
): Promise<number> {
  let wiped = 0;
  for (const loc of runs.locations.values()) {
    const rows = await loc.db.query<{ id: string }>(
      `with victims as (
         select d.id from ${loc.schema}.runs r
           join ${loc.schema}.dataclips d on d.run_id = r.id
          where r.environment_id = $1 and r.created_at < $2
            and ${loc.schema}.run_ended(r.status)
            and d.created_at < $2 and d.wiped_at is null
          limit $3
       )
       update ${loc.schema}.dataclips d set body = null, wiped_at = now()
         from victims v where d.id = v.id
       returning d.id`,
      [environmentId, olderThan.toISOString(), limit],
    );
    wiped += rows.rows.length;
  }
  return wiped;
}
