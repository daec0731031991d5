-- Wake the event streams that watch a run (NOTIFY `weft_events`, payload the run id; sent at
-- commit) and answer true, so that it can stand last in a condition that must keep its row: the
-- claim rule's `claim_rows` calls it only for a run whose `watched_until` has not passed
-- (location 0015), the usual case being a null that is tested and nothing called.
create or replace function {{schema}}.notify_watched(p_run_id text) returns boolean
language plpgsql as $$
begin
  perform pg_notify('weft_events', p_run_id);
  return true;
end $$;
