-- Timers: sleeps that are due complete, approvals past their timeout time out; either way the step
-- becomes ready and a worker finishes it. Several processes may run this: skip locked. Then the
-- sweep of runs a commit race left `running` (settle_waiting_runs). Returns { fired, wake }.
-- Index: waitpoints_due (partial, resume_at).
drop function if exists {{schema}}.fire_due_waitpoints(integer);
create or replace function {{schema}}.fire_due_waitpoints(p_limit integer) returns jsonb
language plpgsql as $$
declare
  w record;
  n integer := 0;
  v_key text;
begin
  -- The due ones are taken in time order (skip locked: no waiting between timers), then fired in
  -- run order: firing locks the run row (wake_run), and two timers that fired their runs
  -- in time order could each hold a run the other wants next.
  for w in
    with due as (
      select id, run_id, step_run_id, environment_id, kind from {{schema}}.waitpoints
       where status = 'waiting' and resume_at <= now()
       order by resume_at limit p_limit for update skip locked)
    select * from due order by run_id, id
  loop
    update {{schema}}.waitpoints set status = case when w.kind = 'sleep' then 'completed' else 'timed_out' end, completed_at = now()
     where id = w.id;
    update {{schema}}.step_runs set status = 'ready', available_at = now() where id = w.step_run_id and status = 'waiting'
    returning step_key into v_key;
    if found then
      perform {{schema}}.wake_run(w.run_id, v_key);
    end if;
    insert into {{schema}}.run_events (run_id, kind, data)
    values (w.run_id, case when w.kind = 'sleep' then 'waitpoint.completed' else 'waitpoint.timed_out' end, jsonb_build_object('waitpointId', w.id));
    perform {{schema}}.wake(w.environment_id);
    n := n + 1;
  end loop;
  perform {{schema}}.settle_waiting_runs(p_limit);
  return {{schema}}.with_woken(jsonb_build_object('fired', n));
end $$;
