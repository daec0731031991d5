-- Issue 8, "half the server work per step": DDL only (the functions that use it are in
-- src/store/sql/location). Measured with `npm run bench -- --diagnose` (bench/RESULTS.md, "Issue 8:
-- writes per step").
--
-- 1. No foreign keys inside a location. Every insert that named a parent row took a KEY SHARE lock
--    on that row (a WAL record and a dirtied page per step: the attempt insert locked its step
--    run, a step run insert its run) and ran a lookup; cascades were never used (runs are never
--    deleted, retention wipes bodies). References are guaranteed by the code that writes them:
--    each child row is inserted from its parent row, read in the same statement (claim_by_ids
--    inserts the attempt from the step run it just updated; park_step the waitpoint from the step
--    run it fenced; run creation and reruns the step runs of the run they insert), as references
--    across locations already were.
alter table {{schema}}.step_runs drop constraint if exists step_runs_run_id_fkey;
alter table {{schema}}.attempts drop constraint if exists attempts_step_run_id_fkey;
alter table {{schema}}.waitpoints drop constraint if exists waitpoints_run_id_fkey;
alter table {{schema}}.waitpoints drop constraint if exists waitpoints_step_run_id_fkey;

-- 2. Room on each page for HOT updates (a new row version on the same page, no index entries):
--    a run's state patch and an attempt's end. (A step run's status change cannot be HOT: status
--    is in the predicates of the partial indexes the claim and the reaper read.) Applies to pages
--    written from now on.
alter table {{schema}}.runs set (fillfactor = 85);
alter table {{schema}}.step_runs set (fillfactor = 85);
alter table {{schema}}.attempts set (fillfactor = 90);

-- 3. `step.started` is derived from the attempt row, not logged a second time in run_events: the
--    claim wrote both, with the same facts (run, step, attempt number, worker, time). The attempt
--    takes its event id from the run_events id sequence, so the run's event log (run_events
--    merged with the attempts' started events, by id: src/store/runs/events.ts) keeps one order,
--    cause before effect (a commit logs `step.succeeded` before it claims the successor). Rows of
--    earlier releases keep event_id null: their `step.started` is still a run_events row. The
--    column gets its default only after it is added, so existing rows are not numbered (they
--    would be listed twice).
alter table {{schema}}.attempts add column step_key text collate "C";
alter table {{schema}}.attempts add column event_id bigint;
-- (run_events_id_seq: the identity sequence of run_events.id, named so by 0001 and by the 0.1.0 dump)
alter table {{schema}}.attempts alter column event_id set default nextval('{{schema}}.run_events_id_seq');
-- The event log's read: (run_id, event_id) beside run_events_run (run_id, id), so a page after a
-- cursor is a merge of two ordered index scans. Also serves the attempts of a run (run view).
create index attempts_run_event on {{schema}}.attempts (run_id, event_id);
-- Live events: an attempt row is an event, so it NOTIFYs watchers like a run_events insert.
create trigger attempts_notify
  after insert on {{schema}}.attempts
  referencing new table as new_events
  for each statement execute function {{schema}}.notify_run_events();

-- 4. An attempt's success is not a second write: the attempt row is inserted at the claim (before
--    any user code runs; the durable attempt count is step_runs.attempt_count, bumped in the same
--    update) and a commit no longer updates it. An attempt that ends otherwise (failed, lost,
--    canceled, parked) still records its end on its row. The table becomes `attempt_rows`, written
--    only by the SQL functions; `attempts` is a view over it that reads a success from the step
--    run (still `running` on its row, and its step run succeeded with this attempt's number), so
--    every reader, the API's and the tests', sees the same rows as before. Rows a release before
--    this one marked `succeeded` stay so. The view joins the step run by primary key.
alter table {{schema}}.attempts rename to attempt_rows;
create view {{schema}}.attempts as
select a.step_run_id, a.number, a.run_id, a.worker_id,
       case when a.status = 'running' and s.status = 'succeeded' and s.attempt_count = a.number
            then 'succeeded' else a.status end as status,
       a.error, a.started_at,
       case when a.status = 'running' and s.status = 'succeeded' and s.attempt_count = a.number
            then s.finished_at else a.finished_at end as finished_at,
       a.step_key, a.event_id
  from {{schema}}.attempt_rows a
  left join {{schema}}.step_runs s on s.id = a.step_run_id;

-- 5. A `step.succeeded` without a state patch (most steps) is derived from the step run, not
--    logged in run_events: the commit's fence update takes the event's id from the run_events id
--    sequence into step_runs.event_id (same row version, no extra write), and the event log reads
--    it with the run's other events (src/store/runs/events.ts). A step that patched the run state
--    still logs its `step.succeeded` row, whose `statePatch` reruns replay (create_rerun,
--    replay_rerun_state) and the run view shows; its event_id stays null. Partial index: only
--    succeeded rows carry an entry (one per step, added by the commit's update, which is not HOT
--    anyway), so the claim's update of a row adds none.
alter table {{schema}}.step_runs add column event_id bigint;
create index step_runs_events on {{schema}}.step_runs (run_id, event_id) where event_id is not null;

-- 6. A reused step run of a rerun whose successor ran in an earlier run of the lineage (that
--    successor not materialized in the rerun) says so here, instead of listing itself among its
--    successors so that finish_run would not take it for a leaf (src/engine/rerun.ts). Rows
--    written before keep their self-reference, which finish_run still reads the same way.
alter table {{schema}}.step_runs add column successor_ran boolean not null default false;
