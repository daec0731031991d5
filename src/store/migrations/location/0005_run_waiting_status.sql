-- Run status `waiting`: a run is `waiting` while every open step run of it waits on a waitpoint
-- (approval, sleep, child run), and `running` as soon as one is ready or executing
-- (SEMANTICS: queued → running → (waiting ↔ running) → …). `GET /api/v1/runs?status=waiting`
-- finds them; each transition is a run event (`run.waiting`, `run.running`) for the event stream.
--
-- Kept by two triggers on step_runs instead of a line in each transition function (park_step,
-- complete_step, complete_steps, fail_step, cancel_scope, complete_waitpoint,
-- fire_due_waitpoints, finish_run, the reaper, reruns): a transition function added later keeps
-- the status right without knowing about it.
--
-- * running → waiting: when a step run leaves ready/running (it parked, succeeded, failed, was
--   pruned or canceled), at the end of its transaction (a deferred constraint trigger: the
--   successors that commit made ready are visible by then), the run becomes `waiting` if one of its
--   waitpoints waits and no step run of it is ready or running. Cost on the hot path (a step that
--   completes): one probe of the small partial index waitpoints_waiting_run, nothing else for a
--   run that waits on nothing.
-- * waiting → running: when a waiting step run becomes ready (its waitpoint completed, timed out,
--   or its child run ended), immediately, before the event of that completion.
--
-- Concurrency: several commits of one run at once (parallel branches parking together) each see
-- the others' step runs as they were before, so each could conclude "not all wait" and leave the
-- run `running`. The trigger therefore locks the run row before it looks (only for a run with a
-- waiting waitpoint, so never on a plain chain or fan-out): the commits serialize there, and the
-- last one sees every other. (Rejected: locking the other step rows instead; two parkers then
-- deadlock.) One race remains: a step that completes beside a park that has not committed yet
-- does not see that park's waitpoint and skips the lock, while the park still sees the step
-- running. The timer's sweep (settle_waiting_runs, called from fire_due_waitpoints every tick)
-- settles such a run a second later. The opposite slip (a run marked `waiting` while a concurrent
-- commit readied a step) is undone by the claim of that step, which sets the run `running` like it
-- starts a queued one. So a run is never stuck: `finish_if_done` and the pause in fail_step only
-- act on a run whose step was claimed, hence `running`.

create index waitpoints_waiting_run on {{schema}}.waitpoints (run_id) where status = 'waiting';

create function {{schema}}.settle_run_waiting() returns trigger
language plpgsql as $$
begin
  if not exists (select 1 from {{schema}}.waitpoints where run_id = new.run_id and status = 'waiting') then
    return null;
  end if;
  perform 1 from {{schema}}.runs where id = new.run_id and status = 'running' for update;
  if not found then
    return null;
  end if;
  -- a new statement: after waiting for the lock, it sees the commit that held it
  if exists (select 1 from {{schema}}.step_runs where run_id = new.run_id and status in ('ready', 'running')) then
    return null;
  end if;
  update {{schema}}.runs set status = 'waiting', updated_at = now() where id = new.run_id;
  insert into {{schema}}.run_events (run_id, kind, step_key, data)
  values (new.run_id, 'run.waiting', new.step_key, '{}'::jsonb);
  return null;
end $$;

create constraint trigger step_runs_settle_waiting
  after update of status on {{schema}}.step_runs
  deferrable initially deferred
  for each row
  when (old.status in ('ready', 'running') and new.status not in ('ready', 'running'))
  execute function {{schema}}.settle_run_waiting();

create function {{schema}}.wake_waiting_run() returns trigger
language plpgsql as $$
begin
  update {{schema}}.runs set status = 'running', updated_at = now()
   where id = new.run_id and status = 'waiting';
  if found then
    insert into {{schema}}.run_events (run_id, kind, step_key, data)
    values (new.run_id, 'run.running', new.step_key, '{}'::jsonb);
  end if;
  return null;
end $$;

create trigger step_runs_wake_run
  after update of status on {{schema}}.step_runs
  for each row
  when (old.status = 'waiting' and new.status = 'ready')
  execute function {{schema}}.wake_waiting_run();

-- The sweep for the race above: runs left `running` although every open step run waits. Driven
-- by the waiting waitpoints (partial index), bounded per call; a waitpoint younger than a second
-- is left to the trigger of the transaction that is still committing it.
create function {{schema}}.settle_waiting_runs(p_limit integer) returns integer
language plpgsql as $$
declare
  v_run text;
  n integer := 0;
begin
  for v_run in
    select r.id from {{schema}}.runs r
     where r.status = 'running'
       and r.id in (select w.run_id from {{schema}}.waitpoints w
                     where w.status = 'waiting' and w.created_at < now() - interval '1 second')
       and not exists (select 1 from {{schema}}.step_runs s
                        where s.run_id = r.id and s.status in ('ready', 'running'))
     limit p_limit
     for update of r skip locked
  loop
    update {{schema}}.runs set status = 'waiting', updated_at = now() where id = v_run;
    insert into {{schema}}.run_events (run_id, kind, data) values (v_run, 'run.waiting', '{}'::jsonb);
    n := n + 1;
  end loop;
  return n;
end $$;

-- 0001's fire_due_waitpoints, plus the sweep.
create or replace function {{schema}}.fire_due_waitpoints(p_limit integer) returns integer
language plpgsql as $$
declare
  w record;
  n integer := 0;
begin
  for w in
    select id, run_id, step_run_id, environment_id, kind from {{schema}}.waitpoints
     where status = 'waiting' and resume_at <= now()
     order by resume_at limit p_limit for update skip locked
  loop
    update {{schema}}.waitpoints set status = case when w.kind = 'sleep' then 'completed' else 'timed_out' end, completed_at = now()
     where id = w.id;
    update {{schema}}.step_runs set status = 'ready', available_at = now() where id = w.step_run_id and status = 'waiting';
    insert into {{schema}}.run_events (run_id, kind, data)
    values (w.run_id, case when w.kind = 'sleep' then 'waitpoint.completed' else 'waitpoint.timed_out' end, jsonb_build_object('waitpointId', w.id));
    perform pg_notify('weft_ready', w.environment_id);
    n := n + 1;
  end loop;
  perform {{schema}}.settle_waiting_runs(p_limit);
  return n;
end $$;

-- 0001's claim_by_ids; a claim also starts a run that is `waiting` (the race above), not only a
-- queued one.
create or replace function {{schema}}.claim_by_ids(p_ids text[], p_worker text, p_lease_ms integer)
returns table (
  step_run_id text, run_id text, step_id text, step_key text, workflow_id text, version_id text,
  environment_id text, attempt integer, max_attempts integer, input jsonb, state jsonb, save_dataclips boolean
)
language plpgsql as $$
begin
  return query
  with claimed as (
    update {{schema}}.step_runs s
       set status = 'running',
           attempt_count = s.attempt_count + 1,
           lease_owner = p_worker,
           lease_expires_at = now() + p_lease_ms * interval '1 millisecond',
           started_at = coalesce(s.started_at, now())
     where s.id = any(p_ids) and s.status = 'ready'
    returning s.id, s.run_id, s.step_id, s.step_key, s.workflow_id, s.environment_id, s.attempt_count,
              s.max_attempts, s.input_dataclip_id
  ), new_attempts as (
    insert into {{schema}}.attempts (step_run_id, number, run_id, worker_id, status)
    select c.id, c.attempt_count, c.run_id, p_worker, 'running' from claimed c
  ), started as (
    update {{schema}}.runs r set status = 'running', started_at = coalesce(r.started_at, now()), updated_at = now()
     where r.id in (select c.run_id from claimed c) and r.status in ('queued', 'waiting')
  ), logged as (
    insert into {{schema}}.run_events (run_id, kind, step_key, attempt, data)
    select c.run_id, 'step.started', c.step_key, c.attempt_count, jsonb_build_object('worker', p_worker) from claimed c
  )
  select c.id::text, c.run_id::text, c.step_id::text, c.step_key::text, c.workflow_id::text, r.version_id::text,
         c.environment_id::text, c.attempt_count, c.max_attempts, d.body, r.state, r.save_dataclips
    from claimed c
    join {{schema}}.runs r on r.id = c.run_id
    left join {{schema}}.dataclips d on d.id = c.input_dataclip_id;
end $$;
