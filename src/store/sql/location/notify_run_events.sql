-- One statement-level trigger: a statement that inserts many events (a claim of 50 steps, a
-- prune cascade) sends one notification per distinct watched run, not one per row. The payload
-- is only the run id: NOTIFY is a wake-up, and the listener re-reads `run_events` after the
-- last id it delivered, so a lost or coalesced notification loses nothing. Notifications are
-- sent at commit; a rolled-back insert sends none.
create or replace function {{schema}}.notify_run_events() returns trigger
language plpgsql as $$
begin
  -- Nobody streams anything (the usual case): skip reading the transition table.
  if not exists (select 1 from {{schema}}.run_event_watchers) then
    return null;
  end if;
  perform pg_notify('weft_events', d.run_id)
     from (select distinct run_id from new_events) d
    where exists (select 1 from {{schema}}.run_event_watchers w
                   where w.run_id = d.run_id and w.expires_at > now());
  return null;
end $$;
