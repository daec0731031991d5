-- Record a failed attempt (p_attempt_status 'failed'), or a lost one found by the reaper ('lost').
-- p_retry_delay_ms not null: requeue after that delay. Null: the step is exhausted — it follows
-- its failure edges (failure_successors, or p_live/p_dead when the worker decided them, e.g. an
-- approval timeout). With no edge to follow: onExhausted 'pause' parks the step and pauses the run
-- (resume_run re-readies it); inside a loop or parallel body the owner fails (canceling the rest
-- of the body) or, for 'collect', the branch ends with this error; otherwise the run fails and
-- every unfinished step run of it is canceled (which fences their attempts). Any state draft of
-- the attempt is simply never written.
-- p_fence_worker: the worker must still hold an unexpired lease (worker path); the reaper passes
-- null and instead requires an expired lease, so a live worker's attempt is never reaped.
create or replace function {{schema}}.fail_step(
  p_step_run_id text, p_attempt integer, p_fence_worker text, p_attempt_status text,
  p_error jsonb, p_retry_delay_ms integer, p_live text[] default null, p_dead text[] default null
) returns jsonb
language plpgsql
set enable_seqscan = off -- by key only: README.md, "By id"
as $$
declare
  s record;
  v_prop record;
  v_live text[];
  v_dead text[];
  v_owner record;
  v_children text[];
  v_status text;
begin
  select id, run_id, step_key, environment_id, failure_successors, successors, on_exhausted, max_attempts,
         attempt_count, scope_key, iteration
    into s from {{schema}}.step_runs
   where id = p_step_run_id and (status || '') = 'running' and attempt_count = p_attempt -- by id: README.md
     and ((p_fence_worker is not null and lease_owner = p_fence_worker and lease_expires_at >= now())
       or (p_fence_worker is null and lease_expires_at < now()))
   for update;
  if not found then
    return {{schema}}.with_woken(jsonb_build_object('status', 'fenced'));
  end if;

  -- the attempt's row: written now, from the step run (location 0016)
  perform {{schema}}.end_attempts(array[p_step_run_id], p_attempt_status, p_error);

  if p_retry_delay_ms is not null and s.attempt_count < s.max_attempts then
    update {{schema}}.step_runs
       set status = 'ready', available_at = now() + p_retry_delay_ms * interval '1 millisecond',
           lease_owner = null, lease_expires_at = null, error = p_error
     where id = p_step_run_id;
    insert into {{schema}}.run_events (run_id, kind, step_key, attempt, data)
    values (s.run_id, case when p_attempt_status = 'lost' then 'step.lost' else 'step.retrying' end, s.step_key, p_attempt,
            jsonb_build_object('error', p_error, 'retryInMs', p_retry_delay_ms));
    perform {{schema}}.wake(s.environment_id);
    return {{schema}}.with_woken(jsonb_build_object('status', 'retrying', 'runId', s.run_id));
  end if;

  v_live := coalesce(p_live, s.failure_successors);
  v_dead := coalesce(p_dead, array(select unnest(s.successors) except select unnest(s.failure_successors)));

  if cardinality(v_live) = 0 and s.on_exhausted = 'pause' then
    update {{schema}}.step_runs set status = 'waiting', lease_owner = null, lease_expires_at = null, error = p_error
     where id = p_step_run_id;
    update {{schema}}.runs set status = 'paused', updated_at = now()
     where id = s.run_id and status in ('running', 'waiting');
    insert into {{schema}}.run_events (run_id, kind, step_key, attempt, data)
    values (s.run_id, 'run.paused', s.step_key, p_attempt, jsonb_build_object('error', p_error));
    return {{schema}}.with_woken(jsonb_build_object('status', 'failed', 'runStatus', 'paused', 'runId', s.run_id));
  end if;

  update {{schema}}.step_runs
     set status = 'failed', finished_at = now(), lease_owner = null, lease_expires_at = null, error = p_error
   where id = p_step_run_id;
  insert into {{schema}}.run_events (run_id, kind, step_key, attempt, data)
  values (s.run_id, 'step.failed', s.step_key, p_attempt, jsonb_build_object('error', p_error, 'lost', p_attempt_status = 'lost'));

  if cardinality(v_live) > 0 then
    v_prop := {{schema}}.propagate(s.run_id, s.step_key, v_live, v_dead, null, null);
    if cardinality(v_prop.ready) = 0 then
      v_status := {{schema}}.after_quiet(s.run_id, s.scope_key, s.iteration);
      perform {{schema}}.settle_run(s.run_id, s.step_key);
      return {{schema}}.with_woken(jsonb_build_object('status', 'failed', 'runStatus', v_status, 'runId', s.run_id));
    end if;
    perform {{schema}}.wake(s.environment_id);
    return {{schema}}.with_woken(jsonb_build_object('status', 'failed', 'runStatus', 'running', 'runId', s.run_id));
  end if;

  if s.scope_key is not null then
    select id, on_scope_failure into v_owner from {{schema}}.step_runs
     where run_id = s.run_id and step_key = s.scope_key for update;
    if v_owner.on_scope_failure = 'collect' then
      v_prop := {{schema}}.propagate(s.run_id, s.step_key, '{}', s.successors, null, null);
      perform {{schema}}.after_quiet(s.run_id, s.scope_key, s.iteration);
      perform {{schema}}.settle_run(s.run_id, s.step_key);
      return {{schema}}.with_woken(jsonb_build_object('status', 'failed', 'runStatus', 'running', 'runId', s.run_id));
    end if;
    -- fail fast: cancel the rest of the body (step runs, then their running attempts: the lock
    -- order of cancel_open), hand the owner the failure
    perform {{schema}}.cancel_scope(s.run_id, s.scope_key);
    update {{schema}}.step_runs
       set status = 'ready', available_at = now(),
           error = jsonb_build_object('scopeFailure', jsonb_build_object('stepKey', s.step_key, 'error', p_error))
     where id = v_owner.id and status = 'waiting';
    if found then
      perform {{schema}}.wake_run(s.run_id, s.scope_key);
    end if;
    perform {{schema}}.wake(s.environment_id);
    return {{schema}}.with_woken(jsonb_build_object('status', 'failed', 'runStatus', 'running', 'runId', s.run_id));
  end if;

  -- Fail the run: cancel what has not finished (a running attempt elsewhere is fenced by this).
  v_children := {{schema}}.cancel_open(s.run_id);
  perform {{schema}}.finish_run(s.run_id, 'failed',
    jsonb_build_object('stepKey', s.step_key, 'error', p_error));
  return {{schema}}.with_woken(jsonb_build_object('status', 'failed', 'runStatus', 'failed', 'runId', s.run_id, 'children', to_jsonb(v_children)));
end $$;
