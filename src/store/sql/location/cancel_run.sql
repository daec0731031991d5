-- Cancel a run: no new attempts (open step runs canceled, which fences running attempts), waits
-- canceled, the run ends 'canceled'; the store then signals weft_cancel (after the commit) so that
-- workers abort ctx.signal at once.
-- Returns the child runs it was waiting on, which the caller cancels in turn (they may live in
-- other locations).
create or replace function {{schema}}.cancel_run(p_run_id text, p_env text, p_reason text) returns jsonb
language plpgsql as $$
declare
  v_status text;
  v_children text[];
begin
  select status into v_status from {{schema}}.runs where id = p_run_id and environment_id = p_env for update;
  if not found then
    return {{schema}}.with_woken(jsonb_build_object('status', 'not_found'));
  end if;
  if {{schema}}.run_ended(v_status) then
    return {{schema}}.with_woken(jsonb_build_object('status', 'not_active', 'runStatus', v_status));
  end if;
  v_children := {{schema}}.cancel_open(p_run_id);
  perform {{schema}}.finish_run(p_run_id, 'canceled', jsonb_build_object('reason', p_reason));
  return {{schema}}.with_woken(jsonb_build_object('status', 'canceled', 'children', to_jsonb(v_children)));
end $$;
