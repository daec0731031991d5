-- The claim by ids: the worker's claims (claim_steps), a join made ready (complete_step) and the
-- chain's take in propagate call it. The claim rule itself is fragments/claim.sql, placed here and,
-- for the chain's successor, in complete_step (no call on the hot path).
-- Returns what the worker needs to execute each step, input body and run state included, so
-- executing needs no further read.
drop function if exists {{schema}}.claim_by_ids(text[], text, integer);
create or replace function {{schema}}.claim_by_ids(
  p_ids text[], p_worker text, p_lease_ms integer,
  p_take_from text default null, p_take_input_id text default null, p_take_input_hash text default null)
returns table (
  step_run_id text, run_id text, step_id text, step_key text, workflow_id text, version_id text,
  environment_id text, attempt integer, max_attempts integer, input jsonb, state jsonb, save_dataclips boolean
)
language plpgsql
set enable_seqscan = off -- by key only: README.md, "By id"
-- One generic plan, planned once per connection: left to choose, the plan cache kept planning
-- this statement anew on most calls (909 of 1,200 in a chain, 0.26 ms each: more than the
-- statement's own 0.13 ms), because `= any(p_ids)` costs a generic plan above a custom one.
-- By key, the generic plan is the plan (README.md, "Planned once").
set plan_cache_mode = force_generic_plan
as $$
begin
  return query
  {{fragment:claim}}
  -- a `queued` or `waiting` run becomes `running` with its claimed step (after the fragment: see
  -- there why the chain's successor does without); it runs after the select, as every
  -- data-modifying CTE that nothing reads does, and changes nothing the select returns
  , started as (
    update {{schema}}.runs claim_r set status = 'running', started_at = coalesce(claim_r.started_at, now()), updated_at = now()
     -- by id (README.md): the plain `status in (…)` let the plan read every queued run of the
     -- location through runs_env_status_created on each claim (a fan-out of 100,000 runs
     -- triggered at once has 100,000 of them)
     where claim_r.id in (select claim_c.run_id from claimed claim_c) and (claim_r.status || '') in ('queued', 'waiting')
  )
  select * from claim_rows;
end $$;
