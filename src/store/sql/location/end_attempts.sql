-- The end of attempts that did not succeed (p_status: failed, lost, canceled) or that parked
-- (succeeded: a control node's transition): their attempt row, written now. The caller holds the
-- step runs' row locks and passes only step runs whose current attempt was running and ends in
-- its transaction (the attempt columns describe that attempt until the next claim, whatever the
-- step run's status becomes meanwhile).
-- An attempt claimed since location 0016 has no row yet: it is on its step run (attempt_worker,
-- attempt_started_at, attempt_event_id — the `step.started` event's id, kept), and is inserted
-- from there. One claimed by an earlier release has its row from the claim, which is updated.
-- A success writes no attempt row at all: the step run's commit says it (location 0016).
-- Index: step_runs primary key; attempt_rows primary key (its insert, or the legacy probe).
create or replace function {{schema}}.end_attempts(p_ids text[], p_status text, p_error jsonb) returns void
language sql
set enable_seqscan = off -- by key only: README.md, "By id"
as $$
  insert into {{schema}}.attempt_rows (step_run_id, number, run_id, worker_id, status, error,
                                       started_at, finished_at, step_key, event_id)
  select s.id, s.attempt_count, s.run_id, s.attempt_worker, p_status, p_error,
         s.attempt_started_at, now(), s.step_key, s.attempt_event_id
    from {{schema}}.step_runs s
   where s.id = any(p_ids) and s.attempt_event_id is not null;
  update {{schema}}.attempt_rows a set status = p_status, error = p_error, finished_at = now()
    from {{schema}}.step_runs s
   where s.id = any(p_ids) and s.attempt_event_id is null
     and a.step_run_id = s.id and a.number = s.attempt_count and a.status = 'running';
$$;
