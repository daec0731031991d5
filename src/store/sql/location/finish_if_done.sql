-- Called when a commit readied nothing: if no step run of the run is open any more, end it.
-- The run row is locked first, so two transactions that each finish the last open branch
-- serialize here, and the second (re-reading after the first commits) sees the first's step run
-- resolved; without the lock each could see the other still running and neither would end the run.
-- A `waiting` run with nothing open ends too: `waiting` only means its open steps all wait, and
-- when none is open any more there is nothing left to wake it (a run left `waiting` by a lost race
-- must not hang; wake_run closes the race this guards against).
-- Index: step_runs_open (partial, run_id).
create or replace function {{schema}}.finish_if_done(p_run_id text) returns text
language plpgsql as $$
declare
  v_status text;
begin
  select status into v_status from {{schema}}.runs where id = p_run_id for update;
  if v_status not in ('running', 'waiting') then
    return v_status;
  end if;
  if exists (select 1 from {{schema}}.step_runs where run_id = p_run_id and status in ('pending', 'ready', 'running', 'waiting')) then
    return v_status;
  end if;
  perform {{schema}}.finish_run(p_run_id, 'succeeded', null);
  return 'succeeded';
end $$;
