-- waiting → running when a waiting step run becomes ready (location 0005: its waitpoint completed
-- or timed out, or its child run ended).
-- The run row is locked first, then read by a new statement. A commit that is marking the run
-- `waiting` (settle_run, which holds this lock from its check to its commit) has not
-- seen this step ready; without the wait, this update would read the run as `running`, skip
-- it, and the run would be left `waiting` with this step about to run: the claim of the step
-- reads `running` too, and its commit then found the run `waiting` and did not end it (a fuzz
-- run in CI; test/engine.run-waiting.test.ts, "a race on postgres").
-- Called right after a transition makes a waiting step run ready (complete_waitpoint,
-- fire_due_waitpoints, wake_child_waiter (a child run ended), scope_check, fail_step's scope
-- owner), where location 0005 had a row trigger on step_runs (location 0014 says why it went); p_step_key names the step run in the `run.running` event.
create or replace function {{schema}}.wake_run(p_run_id text, p_step_key text) returns void
language plpgsql as $$
begin
  perform 1 from {{schema}}.runs where id = p_run_id for update;
  update {{schema}}.runs set status = 'running', updated_at = now()
   where id = p_run_id and status = 'waiting';
  if found then
    insert into {{schema}}.run_events (run_id, kind, step_key, data)
    values (p_run_id, 'run.running', p_step_key, '{}'::jsonb);
  end if;
  return;
end $$;
