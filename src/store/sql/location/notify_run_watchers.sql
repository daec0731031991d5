-- The same wake-up for an event that is a row of another table, not a run_events insert: a
-- `step.succeeded` derived from its step run (complete_step, location 0010). One probe of an
-- empty table when nobody streams.
create or replace function {{schema}}.notify_run_watchers(p_run_id text) returns void
language plpgsql as $$
begin
  if exists (select 1 from {{schema}}.run_event_watchers w
              where w.run_id = p_run_id and w.expires_at > now()) then
    perform pg_notify('weft_events', p_run_id);
  end if;
end $$;
