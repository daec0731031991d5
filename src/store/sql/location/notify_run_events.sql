-- One statement-level trigger on run_events: a statement that inserts many events (a prune
-- cascade, a group of runs created) sends one notification per distinct watched run, not one per
-- row. (A claim's `step.started` is on its step run row, location 0016, and the claim rule
-- notifies for it from the run row's `watched_until`, location 0015; a derived `step.succeeded`, notify_run_watchers.) The payload
-- is only the run id: NOTIFY is a wake-up, and the listener re-reads `run_events` after the
-- last id it delivered, so a lost or coalesced notification loses nothing. Notifications are
-- sent at commit; a rolled-back insert sends none.
-- These are the NOTIFYs left inside a transaction (every other wake-up is sent by the store after
-- the commit, src/store/signals.ts). It stays because it costs only the transactions of runs an
-- open event stream watches (none in the usual case: the early return below), while sending it
-- after the commit would need the store to know, for every statement that inserts events, which
-- runs are watched (one more read per commit on the hot path). Channel name: src/store/channels.ts.
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
