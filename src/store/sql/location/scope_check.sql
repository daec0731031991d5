-- A step inside the body of control node p_scope_key (iteration p_iteration) resolved and readied
-- nothing. The owner row is locked first (the same serialization as finish_if_done). When the
-- iteration has nothing open: open the next gated branch of a parallel, if any; when the whole
-- body has nothing open, the owner becomes ready so a worker runs its next transition.
-- Index: step_runs_open (run_id, scope_key, iteration).
create or replace function {{schema}}.scope_check(p_run_id text, p_scope_key text, p_iteration integer) returns void
language plpgsql as $$
declare
  v_owner record;
  v_next integer;
begin
  select id, status, environment_id into v_owner from {{schema}}.step_runs
   where run_id = p_run_id and step_key = p_scope_key for update;
  if not found or v_owner.status <> 'waiting' then
    return;
  end if;
  if exists (select 1 from {{schema}}.step_runs where run_id = p_run_id and scope_key = p_scope_key and iteration = p_iteration
              and status in ('pending', 'ready', 'running', 'waiting')) then
    return;
  end if;
  -- open the next gated branch (its roots wait on a virtual parent)
  select min(iteration) into v_next from {{schema}}.step_runs
   where run_id = p_run_id and scope_key = p_scope_key and status = 'pending' and cardinality(parents) = 0 and pending_parents > 0;
  if v_next is not null then
    update {{schema}}.step_runs set status = 'ready', pending_parents = 0, available_at = now()
     where run_id = p_run_id and scope_key = p_scope_key and iteration = v_next and status = 'pending' and cardinality(parents) = 0;
    perform {{schema}}.wake(v_owner.environment_id);
    return;
  end if;
  if exists (select 1 from {{schema}}.step_runs where run_id = p_run_id and scope_key = p_scope_key
              and status in ('pending', 'ready', 'running', 'waiting')) then
    return;
  end if;
  update {{schema}}.step_runs set status = 'ready', available_at = now() where id = v_owner.id;
  perform {{schema}}.wake_run(p_run_id, p_scope_key);
  perform {{schema}}.wake(v_owner.environment_id);
end $$;
