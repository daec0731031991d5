-- Complete an approval token with a payload (already validated against its schema by the API):
-- the payload becomes a dataclip and the step becomes ready for the worker to finish it.
create or replace function {{schema}}.complete_waitpoint(p_id text, p_env text, p_payload text) returns jsonb
language plpgsql as $$
declare
  w record;
  v_payload_id text;
  v_body jsonb := p_payload::jsonb;
  v_key text;
begin
  select * into w from {{schema}}.waitpoints where id = p_id and environment_id = p_env for update;
  if not found then
    return {{schema}}.with_woken(jsonb_build_object('status', 'not_found'));
  end if;
  if w.status <> 'waiting' then
    return {{schema}}.with_woken(jsonb_build_object('status', 'not_waiting', 'waitpointStatus', w.status, 'completedAt', w.completed_at, 'runId', w.run_id));
  end if;
  if w.kind <> 'approval' then
    return {{schema}}.with_woken(jsonb_build_object('status', 'wrong_kind', 'kind', w.kind, 'runId', w.run_id));
  end if;
  v_payload_id := {{schema}}.mint_id('dc');
  insert into {{schema}}.dataclips (id, run_id, environment_id, kind, body, body_hash, size_bytes)
  values (v_payload_id, w.run_id, w.environment_id, 'waitpoint_payload', v_body, md5(v_body::text), octet_length(p_payload));
  update {{schema}}.waitpoints set status = 'completed', completed_at = now(), payload_dataclip_id = v_payload_id where id = p_id;
  update {{schema}}.step_runs set status = 'ready', available_at = now() where id = w.step_run_id and status = 'waiting'
  returning step_key into v_key;
  if found then
    perform {{schema}}.wake_run(w.run_id, v_key);
  end if;
  insert into {{schema}}.run_events (run_id, kind, data)
  values (w.run_id, 'waitpoint.completed', jsonb_build_object('waitpointId', p_id, 'payloadDataclipId', v_payload_id));
  perform {{schema}}.wake(w.environment_id);
  return {{schema}}.with_woken(jsonb_build_object('status', 'completed', 'runId', w.run_id, 'stepRunId', w.step_run_id, 'payloadDataclipId', v_payload_id));
end $$;
