-- Cancel everything of a run that has not finished: open step runs, their running attempts (which
-- fences them), and waitpoints. Returns the child runs those waitpoints were waiting on.
-- Order matters. The step runs go first: that update waits for any claim or park holding one of
-- them and then sees its committed row, so the attempts update after it (a new snapshot) sees
-- the attempt a concurrent claim inserted. Attempts first missed that attempt (it was not
-- committed yet) and left it `running` forever under a canceled step run; it also locked
-- attempts before step runs, the reverse of claim, commit and park, and deadlocked with them.
create or replace function {{schema}}.cancel_open(p_run_id text) returns text[]
language plpgsql as $$
declare
  v_children text[];
  v_running text[];
begin
  with c as (
    update {{schema}}.step_runs set status = 'canceled', finished_at = now(), lease_owner = null, lease_expires_at = null
     where run_id = p_run_id and status in ('pending', 'ready', 'running', 'waiting')
    returning id
  )
  select coalesce(array_agg(id::text), '{}') into v_running from c;
  -- Any attempt of a step run canceled here that is still open: its latest (running) one, and
  -- none other, since a step run holds at most one running attempt.
  update {{schema}}.attempts set status = 'canceled', finished_at = now()
   where step_run_id = any(v_running) and status = 'running';
  with w as (
    update {{schema}}.waitpoints set status = 'canceled', completed_at = now()
     where run_id = p_run_id and status = 'waiting' returning child_run_id
  )
  select coalesce(array_agg(child_run_id::text) filter (where child_run_id is not null), '{}') into v_children from w;
  return v_children;
end $$;
