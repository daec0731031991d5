-- An attempt is written once, and only when it does not succeed (issue 8, "the attempt's durable
-- count without an extra row write on success").
--
-- Until now the claim inserted an attempt row (location 0010: it was also the `step.started`
-- event) for every attempt: a heap tuple and two index entries (attempt_rows' primary key and
-- attempts_run_event) per step, one of the five rows a chained step wrote. The step run's claim
-- update is written anyway, and not HOT (its status is in partial index predicates), so the
-- attempt in progress now lives on that row: its number (attempt_count, as before), its worker,
-- when it started, and its `step.started` event id (from the run_events id sequence, as the
-- attempt row's was). The attempt row is written when the attempt ends otherwise — failed, lost,
-- canceled, or parked (a control node's transition, which counts as succeeded) — by the SQL
-- function that ends it (src/store/sql/location/end_attempts.sql), from those columns. A success
-- writes nothing more: the step run's own update says it (status succeeded, attempt_count).
--
-- Rows of earlier releases: an attempt claimed before this migration has its row (attempt_event_id
-- is null on its step run); its end still updates that row, and the view reads it as before.
alter table {{schema}}.step_runs add column attempt_worker text;
alter table {{schema}}.step_runs add column attempt_started_at timestamptz;
alter table {{schema}}.step_runs add column attempt_event_id bigint;

-- `attempts` reads both: the stored rows (a success of an earlier release's row still read from
-- its step run, as location 0010 did), and the attempt in progress or succeeded on the step run
-- (a step run `running` or `succeeded` whose current attempt has no row; any other status means its
-- last attempt's end wrote one). Both branches are read by run (step_runs (run_id, step_key), the
-- primary key of attempt_rows for a step run) and need no new index.
drop view {{schema}}.attempts;
create view {{schema}}.attempts as
select a.step_run_id, a.number, a.run_id, a.worker_id,
       case when a.status = 'running' and s.status = 'succeeded' and s.attempt_count = a.number
            then 'succeeded' else a.status end as status,
       a.error, a.started_at,
       case when a.status = 'running' and s.status = 'succeeded' and s.attempt_count = a.number
            then s.finished_at else a.finished_at end as finished_at,
       a.step_key, a.event_id
  from {{schema}}.attempt_rows a
  left join {{schema}}.step_runs s on s.id = a.step_run_id
union all
select s.id, s.attempt_count, s.run_id, s.attempt_worker, s.status, null::jsonb,
       s.attempt_started_at, case when s.status = 'succeeded' then s.finished_at end,
       s.step_key, s.attempt_event_id
  from {{schema}}.step_runs s
 where s.attempt_event_id is not null and s.status in ('running', 'succeeded');

-- The event log (src/store/runs/events.ts) reads a step run's `step.started` (attempt_event_id)
-- and `step.succeeded` (event_id) events by one index: the larger of the two is event_id when set
-- (a success follows its attempt's start), else attempt_event_id, so "a step run with an event
-- after the cursor" is one range of this expression. It replaces step_runs_events (run_id,
-- event_id): one entry per claim and one per success, where the attempt row had two (its primary
-- key and attempts_run_event) beside its heap tuple.
drop index {{schema}}.step_runs_events;
create index step_runs_event_log on {{schema}}.step_runs (run_id, (coalesce(event_id, attempt_event_id)))
 where coalesce(event_id, attempt_event_id) is not null;
