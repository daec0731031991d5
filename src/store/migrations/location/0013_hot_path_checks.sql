-- No CHECK constraints on the tables a step writes (issue 8). PostgreSQL rebuilds a table's CHECK
-- expressions from their stored text (stringToNode, then ExecPrepareExpr) in every statement
-- that writes a row of it: twice per chained step on step_runs (four checks, among them an
-- eight-value status list), once on attempt_rows and dataclips. Measured with the chain's commits
-- run in a loop inside the server (no client, no commit; bench/RESULTS.md, "Issue 8, session
-- 7"): 146–152 µs per step with them, 121–134 without.
-- The values stay closed: the store's SQL is the only writer of these columns, the lists live in
-- src/store/rows.ts (STEP_RUN_STATUSES, ATTEMPT_STATUSES, DATACLIP_KINDS), and every test database
-- of the suite, on both backends, is checked against them when it closes
-- (test/support/databases.ts). runs and waitpoints keep theirs: they are written per run and per
-- wait, not per step.
alter table {{schema}}.step_runs
  drop constraint if exists step_runs_status_check,
  drop constraint if exists step_runs_on_exhausted_check,
  drop constraint if exists step_runs_on_scope_failure_check,
  drop constraint if exists step_runs_max_attempts_check;
alter table {{schema}}.attempt_rows
  drop constraint if exists attempts_status_check,
  drop constraint if exists attempts_number_check;
alter table {{schema}}.dataclips drop constraint if exists dataclips_kind_check;
