-- Make a pending step run ready: resolve its input. One parent that succeeded: point at that
-- parent's output dataclip (no copy). A failed parent (through a failure edge): `{ error }`.
-- Several parents (a join): a new dataclip `{ [parentKey]: output | { error } }` over the live ones.
create or replace function {{schema}}.make_ready(p_step_run_id text) returns void
language plpgsql as $$
declare
  s record;
  p record;
  v_body jsonb;
  v_input_id text;
  v_hash text;
begin
  select * into s from {{schema}}.step_runs where id = p_step_run_id;
  if cardinality(s.parents) = 1 then
    select sr.status, sr.error, sr.output_dataclip_id, d.body_hash into p
      from {{schema}}.step_runs sr left join {{schema}}.dataclips d on d.id = sr.output_dataclip_id
     where sr.run_id = s.run_id and sr.step_key = s.parents[1];
    if p.status = 'succeeded' then
      v_input_id := p.output_dataclip_id;
      v_hash := p.body_hash;
    else
      v_body := jsonb_build_object('error', p.error);
    end if;
  else
    select jsonb_object_agg(sr.step_id, case when sr.status = 'succeeded' then d.body else jsonb_build_object('error', sr.error) end)
      into v_body
      from {{schema}}.step_runs sr left join {{schema}}.dataclips d on d.id = sr.output_dataclip_id
     where sr.run_id = s.run_id and sr.step_key = any(s.live_from);
  end if;
  if v_input_id is null then
    v_input_id := {{schema}}.mint_id('dc');
    v_hash := md5(v_body::text);
    insert into {{schema}}.dataclips (id, run_id, environment_id, kind, body, body_hash, size_bytes)
    values (v_input_id, s.run_id, s.environment_id, 'step_input', v_body, v_hash, octet_length(v_body::text));
  end if;
  update {{schema}}.step_runs
     set status = 'ready', available_at = now(), input_dataclip_id = v_input_id, input_hash = v_hash
   where id = p_step_run_id;
end $$;
