-- THE claim rule, the one copy (the worker's claim_steps, the chain's take in propagate and the
-- join claim in complete_step all call it): a claimed step run becomes `running` with a fresh
-- attempt number and a lease for the worker, its attempt row is written (before any user code
-- runs; that row is the `step.started` event too, see location 0010), and a `queued` or
-- `waiting` run becomes `running`.
-- Returns what the worker needs to execute each step, input body and run state included, so
-- executing needs no further read.
--
-- Which rows: the given ids that are `ready`; with p_take_from (the chain fast path), also a
-- `pending` row whose only parent is p_take_from and which waits on it alone: it is resolved here
-- (input = that parent's output p_take_input_id, no copy) and claimed in the same row update, so
-- the successor of a chained step is written once, and never enters the step_runs_ready index.
-- Rejected: propagate making it `ready` and this claiming it in a second update (one more row
-- version and one more step_runs_ready entry per chained step, which the claim scans).
-- Writes per claimed step: the step run update (not HOT: status is in partial index predicates),
-- one attempt insert (pk + attempts_run_event), the run row only when it starts. No FK checks
-- (location 0010). Indexes read: step_runs pk; runs pk; dataclips pk, and no other: the status
-- test cannot be served by a partial index (README.md, "By id").
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
  with claimed as (
    update {{schema}}.step_runs s
       set status = 'running',
           attempt_count = s.attempt_count + 1,
           lease_owner = p_worker,
           lease_expires_at = now() + p_lease_ms * interval '1 millisecond',
           started_at = coalesce(s.started_at, now()),
           pending_parents = case when s.status = 'pending' then 0 else s.pending_parents end,
           live_from = case when s.status = 'pending' then array[p_take_from] else s.live_from end,
           input_dataclip_id = case when s.status = 'pending' then p_take_input_id else s.input_dataclip_id end,
           input_hash = case when s.status = 'pending' then p_take_input_hash else s.input_hash end,
           available_at = case when s.status = 'pending' then now() else s.available_at end
     where s.id = any(p_ids)
       -- `status || ''`: by primary key only, never through a partial index (README.md, "By id")
       and ((s.status || '') = 'ready'
            or (p_take_from is not null and (s.status || '') = 'pending' and s.pending_parents = 1
                and s.parents = array[p_take_from]::text[]))
    returning s.id, s.run_id, s.step_id, s.step_key, s.workflow_id, s.environment_id, s.attempt_count,
              s.max_attempts, s.input_dataclip_id
  ), new_attempts as (
    -- the attempt row is also the `step.started` event (its event_id comes from the run_events
    -- id sequence; location 0010): one row, not an attempt row and an event row
    insert into {{schema}}.attempt_rows (step_run_id, number, run_id, worker_id, status, step_key)
    select c.id, c.attempt_count, c.run_id, p_worker, 'running', c.step_key from claimed c
  ), started as (
    update {{schema}}.runs r set status = 'running', started_at = coalesce(r.started_at, now()), updated_at = now()
     -- by id (README.md): the plain `r.status in (…)` let the plan read every queued run of the
     -- location through runs_env_status_created on each claim (a fan-out of 100,000 runs
     -- triggered at once has 100,000 of them)
     where r.id in (select c.run_id from claimed c) and (r.status || '') in ('queued', 'waiting')
  )
  select c.id::text, c.run_id::text, c.step_id::text, c.step_key::text, c.workflow_id::text, r.version_id::text,
         c.environment_id::text, c.attempt_count, c.max_attempts, d.body, r.state, r.save_dataclips
    from claimed c
    join {{schema}}.runs r on r.id = c.run_id
    left join {{schema}}.dataclips d on d.id = c.input_dataclip_id;
end $$;
