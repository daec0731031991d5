-- Cancel every unfinished step run inside a body (nested bodies included: their keys carry the
-- owner's key as a prefix path) and the waitpoints they wait on.
create or replace function {{schema}}.cancel_scope(p_run_id text, p_scope_key text) returns void
language plpgsql as $$
declare
  v_keys text[] := array[p_scope_key];
  v_next text[];
begin
  while cardinality(v_keys) > 0 loop
    with canceled as (
      update {{schema}}.step_runs set status = 'canceled', finished_at = now(), lease_owner = null, lease_expires_at = null
       where run_id = p_run_id and scope_key = any(v_keys) and status in ('pending', 'ready', 'running', 'waiting')
      returning id, step_key, kind
    ), waits as (
      update {{schema}}.waitpoints set status = 'canceled', completed_at = now()
       where step_run_id in (select id from canceled) and status = 'waiting'
    )
    select coalesce(array_agg(step_key::text) filter (where kind in ('forEach', 'times', 'while', 'parallel')), '{}')
      into v_next from canceled;
    v_keys := v_next;
  end loop;
end $$;
