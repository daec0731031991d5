-- Live event streams: a run that an open stream watches carries `watched_until` (set and
-- renewed with its run_event_watchers registration, RunEvents.watchRunEvents), so the claim rule
-- tells a watched run from the row it already reads (src/store/sql/location/fragments/claim.sql,
-- `claim_rows`) and sends NOTIFY `weft_events` only for one. It replaces the statement trigger on
-- attempt_rows (location 0010), which every claim paid for — a trigger call and its transition
-- table, ~10 µs of a chained step's ~160 µs of server time (bench/chain-in-server.ts) — watched
-- or not. The chain's commit then needs no watcher probe of its own either: the successor it
-- claims is in the same run. `watched_until` only says "maybe watched": it is never cleared, a
-- stale one costs a NOTIFY nobody listens to until it passes.
alter table {{schema}}.runs add column watched_until timestamptz;
update {{schema}}.runs r set watched_until = w.until
  from (select run_id, max(expires_at) as until from {{schema}}.run_event_watchers group by run_id) w
 where r.id = w.run_id;
drop trigger if exists attempts_notify on {{schema}}.attempt_rows;
