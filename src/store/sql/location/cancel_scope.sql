-- Cancel every unfinished step run inside a body (nested bodies included: their keys carry the
-- owner's key as a prefix path), their running attempts (which fences them), and the waitpoints
-- they wait on. Lock order as in cancel_open: step runs (in id order, level by level, each level a
-- new statement that sees the body rows a nested park committed while this waited for its owner),
-- each running attempt read from its step run under that lock (so the attempt of a claim that
-- committed meanwhile is seen) and its row written then.
create or replace function {{schema}}.cancel_scope(p_run_id text, p_scope_key text) returns void
language plpgsql as $$
declare
  v_keys text[] := array[p_scope_key];
  v_level text[];
  v_running text[];
begin
  while cardinality(v_keys) > 0 loop
    select array_agg(x.id), array_agg(x.id) filter (where x.status = 'running') into v_level, v_running from (
      select id::text, status from {{schema}}.step_runs
       where run_id = p_run_id and scope_key = any(v_keys) and status in ('pending', 'ready', 'running', 'waiting')
       order by id for update
    ) x;
    exit when v_level is null;
    -- their running attempts' rows, written now from the locked step runs (location 0016)
    if v_running is not null then
      perform {{schema}}.end_attempts(v_running, 'canceled', null);
    end if;
    with canceled as (
      update {{schema}}.step_runs set status = 'canceled', finished_at = now(), lease_owner = null, lease_expires_at = null
       where id = any(v_level) and status in ('pending', 'ready', 'running', 'waiting')
      returning id, step_key, kind
    ), waits as (
      update {{schema}}.waitpoints set status = 'canceled', completed_at = now()
       where step_run_id in (select id from canceled) and status = 'waiting'
    )
    select coalesce(array_agg(step_key::text) filter (where kind in ('forEach', 'times', 'while', 'parallel')), '{}')
      into v_keys from canceled;
  end loop;
end $$;
