-- running → waiting (location 0005's rule): a run becomes `waiting` when one of its waitpoints
-- waits and no step run of it is ready or running. Called at the end of each transition that
-- moves a step run out of ready/running (complete_step unless it claimed the successor,
-- fail_step, park_step, create_rerun_iterations), as the last thing of its transaction, where
-- location 0005 had a deferred constraint trigger on step_runs (location 0014 says why it went).
-- p_step_key: the step run whose transition this is (the `run.waiting` event names it).
-- Cost for a run that waits on nothing: one probe of the small partial index
-- waitpoints_waiting_run. Otherwise the run row is locked before the step runs are looked at, so
-- that concurrent transitions of one run serialize here and the last one sees every other
-- (location 0005, "Concurrency").
create or replace function {{schema}}.settle_run(p_run_id text, p_step_key text) returns void
language plpgsql as $$
begin
  if not exists (select 1 from {{schema}}.waitpoints where run_id = p_run_id and status = 'waiting') then
    return;
  end if;
  perform 1 from {{schema}}.runs where id = p_run_id and status = 'running' for update;
  if not found then
    return;
  end if;
  -- a new statement: after waiting for the lock, it sees the commit that held it
  if exists (select 1 from {{schema}}.step_runs where run_id = p_run_id and status in ('ready', 'running')) then
    return;
  end if;
  update {{schema}}.runs set status = 'waiting', updated_at = now() where id = p_run_id;
  insert into {{schema}}.run_events (run_id, kind, step_key, data)
  values (p_run_id, 'run.waiting', p_step_key, '{}'::jsonb);
  return;
end $$;
