-- Live run events: NOTIFY so that any server process can stream any run's events (SSE).
--
-- One statement-level trigger: a statement that inserts many events (a claim of 50 steps, a
-- prune cascade) sends one notification per distinct run, not one per row, and a row-level
-- trigger's per-row function call stays off the chain hot path. The payload is only the run id:
-- NOTIFY is a wake-up, and the listener re-reads `run_events` after the last id it delivered,
-- so a lost or coalesced notification loses nothing (PostgreSQL also folds identical payloads
-- within one transaction). Notifications are sent at commit; a rolled-back insert sends none.
create function {{schema}}.notify_run_events() returns trigger
language plpgsql as $$
begin
  perform pg_notify('weft_events', d.run_id) from (select distinct run_id from new_events) d;
  return null;
end $$;

create trigger run_events_notify
  after insert on {{schema}}.run_events
  referencing new table as new_events
  for each statement execute function {{schema}}.notify_run_events();
