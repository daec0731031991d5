-- A child run has ended: complete the `child_run` waitpoints waiting on it (only the one of
-- parent step run p_step_run_id when that is given), make their parent step runs ready, set
-- their runs `running` again (wake_run) and record the wake-up. Returns how many step runs it
-- readied. The one copy of that statement, used by finish_run (the child's end, same
-- location), park_step (a child that ended before its parent parked) and the store's
-- RunWaitpoints.wakeParentIfChildEnded (a child in another location).
-- Indexes: waitpoints_child (partial, child_run_id); step_runs by primary key.
create or replace function {{schema}}.wake_child_waiter(p_child_run_id text, p_step_run_id text) returns integer
language plpgsql as $$
declare
  r record;
  n integer := 0;
begin
  for r in
    with done as (
      update {{schema}}.waitpoints set status = 'completed', completed_at = now()
       where child_run_id = p_child_run_id and status = 'waiting'
         and (p_step_run_id is null or step_run_id = p_step_run_id)
      returning step_run_id
    )
    update {{schema}}.step_runs s set status = 'ready', available_at = now()
      from done where s.id = done.step_run_id and (s.status || '') = 'waiting' -- by id: README.md
    returning s.run_id, s.step_key, s.environment_id
  loop
    perform {{schema}}.wake_run(r.run_id, r.step_key);
    perform {{schema}}.wake(r.environment_id);
    n := n + 1;
  end loop;
  return n;
end $$;
