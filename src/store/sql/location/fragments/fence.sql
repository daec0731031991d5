-- THE commit fence of a succeeded attempt, the one copy: the step run becomes `succeeded` with
-- its output only while it is `running` in this attempt (attempt number), held by this worker,
-- under a lease that has not run out. A worker whose lease expired, or whose step was reaped,
-- canceled or re-claimed, changes nothing (no row returned). By id only: `status || ''` keeps the
-- partial indexes out (README.md, "By id").
-- event_id: this step's `step.succeeded` event when it patches no state (location 0010: derived
-- from this row, no run_events row); taken before anything else of the commit, so it precedes
-- the successor's `step.started`.
-- Placed in `complete_step.sql` (followed by `into s`) and in the chained commit the store sends
-- itself (src/store/runs/chain-commit.ts, as a CTE). Reads the PL/pgSQL variables
-- p_step_run_id, p_attempt, p_worker, p_output_id, p_state_set and p_state_del.
update {{schema}}.step_runs
   set status = 'succeeded', finished_at = now(), lease_owner = null, lease_expires_at = null,
       output_dataclip_id = p_output_id, error = null,
       event_id = case when p_state_set is null and p_state_del is null
                       then nextval('{{schema}}.run_events_id_seq') end
 where id = p_step_run_id and (status || '') = 'running' and attempt_count = p_attempt
   and lease_owner = p_worker and lease_expires_at >= now()
returning run_id, step_key, environment_id, scope_key, iteration
