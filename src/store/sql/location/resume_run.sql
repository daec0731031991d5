-- Resume a paused run: the steps that paused it become ready with a fresh attempt budget
-- (p_budgets: { stepId: maxAttempts }), optionally on another workflow version.
create or replace function {{schema}}.resume_run(p_run_id text, p_env text, p_version_id text, p_budgets jsonb) returns jsonb
language plpgsql as $$
declare
  v_status text;
  v_steps text[];
begin
  select status into v_status from {{schema}}.runs where id = p_run_id and environment_id = p_env for update;
  if not found then
    return {{schema}}.with_woken(jsonb_build_object('status', 'not_found'));
  end if;
  if v_status <> 'paused' then
    return {{schema}}.with_woken(jsonb_build_object('status', 'not_paused', 'runStatus', v_status));
  end if;
  update {{schema}}.runs set status = 'running', version_id = coalesce(p_version_id, version_id), updated_at = now() where id = p_run_id;
  with resumed as (
    update {{schema}}.step_runs
       set status = 'ready', available_at = now(),
           max_attempts = attempt_count + coalesce((p_budgets ->> step_id)::integer, max_attempts)
     where run_id = p_run_id and status = 'waiting' and kind in ('step', 'router') and error is not null
    returning step_key
  )
  select coalesce(array_agg(step_key::text), '{}') into v_steps from resumed;
  insert into {{schema}}.run_events (run_id, kind, data)
  values (p_run_id, 'run.resumed', jsonb_build_object('steps', to_jsonb(v_steps), 'versionId', p_version_id));
  perform {{schema}}.wake(p_env);
  return {{schema}}.with_woken(jsonb_build_object('status', 'resumed', 'steps', to_jsonb(v_steps)));
end $$;
