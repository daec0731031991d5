-- The run status `waiting` (location 0005) is kept by the transition functions themselves, not by
-- two row triggers on step_runs: each function that moves a step run out of ready/running calls
-- `settle_run` at its end, and each that makes a waiting step run ready calls `wake_run` right
-- after (the rule, the locks and the events are location 0005's, unchanged; the functions are
-- src/store/sql/location/settle_run.sql and wake_run.sql).
-- Why: any row trigger on step_runs costs every statement that updates a step run's status, two
-- per step, whether it fires or not: PostgreSQL rebuilds the triggers' WHEN clauses from text for
-- each statement, keeps the old row for them, and queues the deferred one. Measured inside the
-- server on a 2,000-step chain (bench/chain-in-server.ts, the same rows rolled back per variant):
-- 188 µs per step with the two triggers, 174–179 with either one dropped, 152–158 with both
-- (the deferred trigger's work at commit not counted: a rolled-back transaction never runs it).
-- On the chain's fast path (the commit claimed the successor, so the run has a running step) the
-- functions now skip the settle entirely.
drop trigger if exists step_runs_settle_waiting on {{schema}}.step_runs;
drop trigger if exists step_runs_wake_run on {{schema}}.step_runs;
drop function if exists {{schema}}.settle_run_waiting();
drop function if exists {{schema}}.wake_waiting_run();
