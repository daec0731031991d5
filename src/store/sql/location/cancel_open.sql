-- Cancel everything of a run that has not finished: open step runs, their running attempts (which
-- fences them), and waitpoints. Returns the child runs those waitpoints were waiting on.
--
-- Lock order (the one every transition of a run follows: claim, commit, park, fail, cancel): step
-- runs, then their attempt rows, then the run row (the caller's finish_run). Claim, complete_step,
-- park_step and the settle trigger already lock their step run before the run row; a cancel that
-- locked the run row first would wait for a committing step while holding what it needs.
-- * Step runs are locked in id order (ids are time-ordered: a step run is minted after the steps it
--   follows, a body step run after its owner), the order a commit locks them in (its own, then
--   its successors), so two transitions of one run do not wait on each other in a cycle.
-- * Each pass is a new statement, so a new snapshot: after waiting for a step run that a claim or
--   a park held, the next pass sees what that transaction committed — the body step runs a
--   forEach/times/while/parallel park inserted (a single update only re-checks the rows it had
--   already found: they stayed `ready` in a failed run and were claimed). It ends when a pass
--   finds nothing open; a park starting after a pass is fenced (its step run is canceled).
-- * Attempts after step runs: the attempt a claim inserted is visible once the claim committed
--   (locking attempts first missed it, leaving it `running` forever under a canceled step run,
--   and deadlocked with fail_step and park_step, which lock the step run then its attempt).
-- Index: step_runs_open (partial, run_id) per pass; attempts by primary key prefix.
create or replace function {{schema}}.cancel_open(p_run_id text) returns text[]
language plpgsql as $$
declare
  v_children text[];
  v_pass text[];
  v_all text[] := '{}';
begin
  loop
    select array_agg(x.id) into v_pass from (
      select id::text from {{schema}}.step_runs
       where run_id = p_run_id and status in ('pending', 'ready', 'running', 'waiting')
       order by id for update
    ) x;
    exit when v_pass is null;
    update {{schema}}.step_runs set status = 'canceled', finished_at = now(), lease_owner = null, lease_expires_at = null
     where id = any(v_pass) and status in ('pending', 'ready', 'running', 'waiting');
    v_all := v_all || v_pass;
  end loop;
  -- a step run holds at most one running attempt, its latest
  update {{schema}}.attempt_rows set status = 'canceled', finished_at = now()
   where step_run_id = any(v_all) and status = 'running';
  with w as (
    update {{schema}}.waitpoints set status = 'canceled', completed_at = now()
     where run_id = p_run_id and status = 'waiting' returning child_run_id
  )
  select coalesce(array_agg(child_run_id::text) filter (where child_run_id is not null), '{}') into v_children from w;
  return v_children;
end $$;
