-- Issue 8 (plans that hold in a burst): no column statistics for the status of step runs and
-- waitpoints.
--
-- The hot path finds step runs by id (claim, commit, fail, park, lease renewal: `where id = $1
-- and status = 'running'`), and every such statement also satisfies the predicate of a partial
-- index (step_runs_ready, step_runs_open, step_runs_leases, waitpoints_due). With statistics,
-- PostgreSQL estimates those predicates from the status histogram of its last ANALYZE. Between
-- bursts almost every step run has succeeded, so "ready" or "running" looks like one row in a
-- million, the partial index looks one page long, and a full scan of it costs less than one
-- primary-key probe. When a burst comes (a fan-out of 1,000 runs triggered at once, or the first
-- minute of a fresh database), the plan stays: each claim and each commit walked the whole
-- partial index, 140–790 buffers where a probe reads 4, and a fan-out on a fresh database spent
-- most of its server CPU there (bench/RESULTS.md, 2026-11-29, session 4).
--
-- Without statistics for the column, an equality on it is estimated at PostgreSQL's default
-- (0.5% of the rows, scaled with the table's real size), so a probe by primary key is always the
-- cheaper plan, and the scans that want a partial index (the claim's ordered walk of
-- step_runs_ready, a run's open steps through step_runs_open, the reaper's step_runs_leases) still
-- get it: they have no other index that serves them. Nothing else reads these estimates.
alter table {{schema}}.step_runs alter column status set statistics 0;
alter table {{schema}}.waitpoints alter column status set statistics 0;
-- Drop what an earlier ANALYZE stored (an upgraded database): altering a column's type, even to
-- the type it has, removes its statistics; the table is not rewritten (same type, same
-- collation). The next ANALYZE stores nothing for the columns. The two triggers whose WHEN reads
-- step_runs.status (location 0005) and the `attempts` view (location 0010) block a type change:
-- they are dropped and created again, the same, in this migration's transaction.
drop view {{schema}}.attempts;
drop trigger step_runs_settle_waiting on {{schema}}.step_runs;
drop trigger step_runs_wake_run on {{schema}}.step_runs;
alter table {{schema}}.step_runs alter column status type text;
alter table {{schema}}.waitpoints alter column status type text;
create constraint trigger step_runs_settle_waiting
  after update of status on {{schema}}.step_runs
  deferrable initially deferred
  for each row
  when (old.status in ('ready', 'running') and new.status not in ('ready', 'running'))
  execute function {{schema}}.settle_run_waiting();
create trigger step_runs_wake_run
  after update of status on {{schema}}.step_runs
  for each row
  when (old.status = 'waiting' and new.status = 'ready')
  execute function {{schema}}.wake_waiting_run();
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
