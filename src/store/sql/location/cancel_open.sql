-- Cancel everything of a run that has not finished: running attempts (which fences them), open
-- step runs, and waitpoints. Returns the child runs those waitpoints were waiting on.
create or replace function {{schema}}.cancel_open(p_run_id text) returns text[]
language plpgsql as $$
declare
  v_children text[];
begin
  update {{schema}}.attempt_rows a set status = 'canceled', finished_at = now()
    from {{schema}}.step_runs sr
   where sr.run_id = p_run_id and sr.status = 'running' and a.step_run_id = sr.id and a.number = sr.attempt_count
     and a.status = 'running';
  update {{schema}}.step_runs set status = 'canceled', finished_at = now(), lease_owner = null, lease_expires_at = null
   where run_id = p_run_id and status in ('pending', 'ready', 'running', 'waiting');
  with w as (
    update {{schema}}.waitpoints set status = 'canceled', completed_at = now()
     where run_id = p_run_id and status = 'waiting' returning child_run_id
  )
  select coalesce(array_agg(child_run_id::text) filter (where child_run_id is not null), '{}') into v_children from w;
  return v_children;
end $$;
