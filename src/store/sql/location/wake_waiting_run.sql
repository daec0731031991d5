create or replace function {{schema}}.wake_waiting_run() returns trigger
language plpgsql as $$
begin
  update {{schema}}.runs set status = 'running', updated_at = now()
   where id = new.run_id and status = 'waiting';
  if found then
    insert into {{schema}}.run_events (run_id, kind, step_key, data)
    values (new.run_id, 'run.running', new.step_key, '{}'::jsonb);
  end if;
  return null;
end $$;
