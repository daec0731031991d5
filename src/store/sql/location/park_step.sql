-- A control node ends a transition by parking: it waits (status 'waiting', no worker held) on a
-- waitpoint and/or on the body step runs it materializes here. Fenced like a commit.
-- p_park: { waitpoint?: { id, kind, resumeAt?, childRunId?, schema? },
--           body?: { onScopeFailure, nodes: [{ stepId, kind, parents[], successors[], failureSuccessors[],
--                    maxAttempts, onExhausted, concurrencyKey?, concurrencyLimit? }],
--                    iterations: [{ iteration, input (JSON text), gated }] } }
-- Body step run keys: `<stepId><owner's index path>[<iteration>]`.
create or replace function {{schema}}.park_step(p_step_run_id text, p_attempt integer, p_worker text, p_park jsonb) returns jsonb
language plpgsql
set enable_seqscan = off -- by key only: README.md, "By id"
as $$
declare
  s record;
  v_path text;
  it jsonb;
  v_input_id text;
  v_input jsonb;
  v_ready integer := 0;
  w jsonb := p_park -> 'waitpoint';
  b jsonb := p_park -> 'body';
begin
  update {{schema}}.step_runs
     set status = 'waiting', lease_owner = null, lease_expires_at = null, error = null,
         on_scope_failure = coalesce(b ->> 'onScopeFailure', on_scope_failure)
   where id = p_step_run_id and (status || '') = 'running' and attempt_count = p_attempt -- by id: README.md
     and lease_owner = p_worker and lease_expires_at >= now()
  returning run_id, step_key, environment_id, workflow_id into s;
  if not found then
    return {{schema}}.with_woken(jsonb_build_object('status', 'fenced'));
  end if;
  -- the parked attempt's row (a control node's transition succeeded): written now, from the
  -- step run it was on (location 0016); the next claim is a new attempt
  perform {{schema}}.end_attempts(array[p_step_run_id], 'succeeded', null);
  if w is not null then
    insert into {{schema}}.waitpoints (id, run_id, step_run_id, environment_id, kind, resume_at, child_run_id, payload_schema)
    values (w ->> 'id', s.run_id, p_step_run_id, s.environment_id, w ->> 'kind', (w ->> 'resumeAt')::timestamptz,
            w ->> 'childRunId', w -> 'schema');
    -- The child run ended before this park (it ran while the parent's transition was still
    -- deciding to park): nothing would complete the waitpoint any more, so complete it now and
    -- make the step ready again. finish_run takes this step run's row lock (held since the update
    -- above) before it ends a child, so this read, a new statement, sees any child end that
    -- committed before the lock was ours, and a child that ends later finds the waitpoint.
    if w ->> 'kind' = 'child_run'
       and exists (select 1 from {{schema}}.runs where id = w ->> 'childRunId' and {{schema}}.run_ended(status)) then
      v_ready := v_ready + {{schema}}.wake_child_waiter(w ->> 'childRunId', p_step_run_id);
    end if;
  end if;
  if b is not null then
    v_path := coalesce(substring(s.step_key from '(\[.*)$'), '');
    for it in select value from jsonb_array_elements(b -> 'iterations') loop
      v_input := (it ->> 'input')::jsonb;
      v_input_id := {{schema}}.mint_id('dc');
      insert into {{schema}}.dataclips (id, run_id, environment_id, kind, body, body_hash, size_bytes)
      values (v_input_id, s.run_id, s.environment_id, 'step_input', v_input, md5(v_input::text), octet_length(it ->> 'input'));
      insert into {{schema}}.step_runs (id, run_id, environment_id, workflow_id, step_id, step_key, kind, scope_key, iteration,
                                        status, pending_parents, parents, successors, failure_successors, max_attempts,
                                        on_exhausted, concurrency_key, concurrency_limit, input_dataclip_id, input_hash)
      select {{schema}}.mint_id('sr'), s.run_id, s.environment_id, s.workflow_id, n.step_id,
             n.step_id || v_path || '[' || (it ->> 'iteration') || ']', n.kind, s.step_key, (it ->> 'iteration')::integer,
             case when cardinality(n.parents) = 0 and not (it ->> 'gated')::boolean then 'ready' else 'pending' end,
             case when cardinality(n.parents) = 0 then (case when (it ->> 'gated')::boolean then 1 else 0 end) else cardinality(n.parents) end,
             array(select p || v_path || '[' || (it ->> 'iteration') || ']' from unnest(n.parents) p),
             array(select p || v_path || '[' || (it ->> 'iteration') || ']' from unnest(n.successors) p),
             array(select p || v_path || '[' || (it ->> 'iteration') || ']' from unnest(n.failure_successors) p),
             n.max_attempts, n.on_exhausted, n.concurrency_key, n.concurrency_limit,
             case when cardinality(n.parents) = 0 then v_input_id end,
             case when cardinality(n.parents) = 0 then md5(v_input::text) end
        from jsonb_to_recordset(b -> 'nodes') as n(step_id text, kind text, parents text[], successors text[],
             failure_successors text[], max_attempts integer, on_exhausted text, concurrency_key text, concurrency_limit integer);
      if not (it ->> 'gated')::boolean then
        v_ready := v_ready + 1;
      end if;
    end loop;
  end if;
  insert into {{schema}}.run_events (run_id, kind, step_key, attempt, data)
  values (s.run_id, 'step.waiting', s.step_key, p_attempt, jsonb_build_object(
    'waitpoint', w, 'iterations', case when b is null then null else jsonb_array_length(b -> 'iterations') end));
  if v_ready > 0 then
    perform {{schema}}.wake(s.environment_id);
  end if;
  -- the step left `running`: the run may now wait on waitpoints alone (location 0014)
  perform {{schema}}.settle_run(s.run_id, s.step_key);
  return {{schema}}.with_woken(jsonb_build_object('status', 'parked'));
end $$;
