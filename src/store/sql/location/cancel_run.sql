-- Cancel a run: no new attempts (open step runs canceled, which fences running attempts), waits
-- canceled, the run ends 'canceled'; the store then signals weft_cancel (after the commit) so that
-- workers abort ctx.signal at once.
-- Returns the child runs it was waiting on, which the caller cancels in turn (they may live in
-- other locations).
-- Lock order (cancel_open): the step runs and their attempts first, the run row last, as every
-- claim and commit locks them. Locking the run row first made a cancel wait for a committing step
-- while holding the row that step's commit needed next (finish_if_done, the settle trigger, a claim
-- starting a queued run): a deadlock, one side killed. The status is therefore read first without
-- a lock and read again under it: if the run ended meanwhile (its last step committed, or it failed
-- and canceled its step runs itself), cancel_open found nothing open and the run is left as it is.
create or replace function {{schema}}.cancel_run(p_run_id text, p_env text, p_reason text) returns jsonb
language plpgsql as $$
declare
  v_status text;
  v_children text[];
begin
  select status into v_status from {{schema}}.runs where id = p_run_id and environment_id = p_env;
  if not found then
    return {{schema}}.with_woken(jsonb_build_object('status', 'not_found'));
  end if;
  if {{schema}}.run_ended(v_status) then
    return {{schema}}.with_woken(jsonb_build_object('status', 'not_active', 'runStatus', v_status));
  end if;
  v_children := {{schema}}.cancel_open(p_run_id);
  select status into v_status from {{schema}}.runs where id = p_run_id for update;
  if {{schema}}.run_ended(v_status) then
    return {{schema}}.with_woken(jsonb_build_object('status', 'not_active', 'runStatus', v_status));
  end if;
  perform {{schema}}.finish_run(p_run_id, 'canceled', jsonb_build_object('reason', p_reason));
  return {{schema}}.with_woken(jsonb_build_object('status', 'canceled', 'children', to_jsonb(v_children)));
end $$;
