-- Cancel everything of a run that has not finished: open step runs, their running attempts (which
-- fences them), and waitpoints. Returns the child runs those waitpoints were waiting on.
--
-- Lock order (the one every transition of a run follows: claim, commit, park, fail, cancel): step
-- runs (and the rows of their running attempts), then the run row (the caller's finish_run).
-- Claim, complete_step and park_step already lock their step run before the run row; a cancel
-- that locked the run row first would wait for a committing step while holding what it needs.
-- * Step runs are locked in id order (ids are time-ordered: a step run is minted after the steps it
--   follows, a body step run after its owner), the order a commit locks them in (its own, then
--   its successors), so two transitions of one run do not wait on each other in a cycle.
-- * Each pass is a new statement, so a new snapshot: after waiting for a step run that a claim or
--   a park held, the next pass sees what that transaction committed — the body step runs a
--   forEach/times/while/parallel park inserted (a single update only re-checks the rows it had
--   already found: they stayed `ready` in a failed run and were claimed). It ends when a pass
--   finds nothing open; a park starting after a pass is fenced (its step run is canceled).
-- * Attempts after step runs: a running attempt is on its step run (location 0016), read under
--   that row's lock, and its row is written then (end_attempts). (Locking attempt rows first, as
--   an early release did, missed the attempt of a claim that committed meanwhile, leaving it
--   `running` forever under a canceled step run, and deadlocked with fail_step and park_step.)
-- Index: step_runs_open (partial, run_id) per pass; step_runs and attempt_rows by primary key.
create or replace function {{schema}}.cancel_open(p_run_id text) returns text[]
language plpgsql as $$
declare
  v_children text[];
  v_pass text[];
  v_running text[];
begin
  loop
    select array_agg(x.id), array_agg(x.id) filter (where x.status = 'running') into v_pass, v_running from (
      select id::text, status from {{schema}}.step_runs
       where run_id = p_run_id and status in ('pending', 'ready', 'running', 'waiting')
       order by id for update
    ) x;
    exit when v_pass is null;
    -- a step run holds at most one running attempt, its current one: its row, written now
    -- (read under the lock just taken: a claim that committed meanwhile is seen)
    if v_running is not null then
      perform {{schema}}.end_attempts(v_running, 'canceled', null);
    end if;
    update {{schema}}.step_runs set status = 'canceled', finished_at = now(), lease_owner = null, lease_expires_at = null
     where id = any(v_pass) and status in ('pending', 'ready', 'running', 'waiting');
  end loop;
  with w as (
    update {{schema}}.waitpoints set status = 'canceled', completed_at = now()
     where run_id = p_run_id and status = 'waiting' returning child_run_id
  )
  select coalesce(array_agg(child_run_id::text) filter (where child_run_id is not null), '{}') into v_children from w;
  return v_children;
end $$;
