-- The sweep for the race above: runs left `running` although every open step run waits. Driven
-- by the waiting waitpoints (partial index), bounded per call; a waitpoint younger than a second
-- is left to the trigger of the transaction that is still committing it.
create or replace function {{schema}}.settle_waiting_runs(p_limit integer) returns integer
language plpgsql as $$
declare
  v_run text;
  n integer := 0;
begin
  for v_run in
    select r.id from {{schema}}.runs r
     where r.status = 'running'
       and r.id in (select w.run_id from {{schema}}.waitpoints w
                     where w.status = 'waiting' and w.created_at < now() - interval '1 second')
       and not exists (select 1 from {{schema}}.step_runs s
                        where s.run_id = r.id and s.status in ('ready', 'running'))
     limit p_limit
     for update of r skip locked
  loop
    update {{schema}}.runs set status = 'waiting', updated_at = now() where id = v_run;
    insert into {{schema}}.run_events (run_id, kind, data) values (v_run, 'run.waiting', '{}'::jsonb);
    n := n + 1;
  end loop;
  return n;
end $$;
