create or replace function {{schema}}.settle_run_waiting() returns trigger
language plpgsql as $$
begin
  if not exists (select 1 from {{schema}}.waitpoints where run_id = new.run_id and status = 'waiting') then
    return null;
  end if;
  perform 1 from {{schema}}.runs where id = new.run_id and status = 'running' for update;
  if not found then
    return null;
  end if;
  -- a new statement: after waiting for the lock, it sees the commit that held it
  if exists (select 1 from {{schema}}.step_runs where run_id = new.run_id and status in ('ready', 'running')) then
    return null;
  end if;
  update {{schema}}.runs set status = 'waiting', updated_at = now() where id = new.run_id;
  insert into {{schema}}.run_events (run_id, kind, step_key, data)
  values (new.run_id, 'run.waiting', new.step_key, '{}'::jsonb);
  return null;
end $$;
