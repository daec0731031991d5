-- Rerun from one loop iteration or parallel branch (`fromStep: 's[3]'`, RERUN.md).
--
-- create_rerun_iterations(p) is create_rerun (0003) plus the body of the one loop or parallel the
-- rerun targets, in the same transaction:
--   * the source's step runs of the kept iterations (p.body.reuse) are copied into the new run as
--     `succeeded` rows pointing at the source's outputs (zero copy, reused_from = the source row).
--     A control node reads its body's results from its own run's rows (RunStore.controlState), so
--     a loop owner that becomes ready sees `started` = the number of kept iterations and parks the
--     next one: it continues from iteration k with the engine's ordinary loop code.
--     Rejected: copying only each kept iteration's leaves (fewer rows). A leaf is "a succeeded row
--     none of whose successors ran", so every row of the iteration must be present for that test
--     to give the source's answer; the iterations kept are bounded by the loop's own size anyway.
--   * a parallel cannot continue that way (its first transition fans out every branch at once),
--     so here the owner is parked (`waiting`) as its first transition would have left it, with the
--     branches that rerun materialized like park_step does, each root's input being the source
--     branch's input dataclip (the same item: the owner's input is unchanged, the planner checks).
--     When those branches end, scope_check readies the owner, which completes over all branches.
--   * the run state is replayed again: patches of the source's reused top-level steps (as in
--     create_rerun) and of the copied body rows, those found on the row each copy reused in the
--     end (reused_from followed to a row that ran), in event order.
--
-- p: create_rerun's payload, plus
--    body: { owner, sourceRunId, sourceOwnerKey, reuse: [iteration],
--            park: null | { onScopeFailure, nodes: [park_step's node shape],
--                           iterations: [{ iteration, gated }] } }
create function {{schema}}.create_rerun_iterations(p jsonb) returns setof {{schema}}.runs
language plpgsql as $$
declare
  v_run text := p ->> 'runId';
  b jsonb := p -> 'body';
  v_owner text := p -> 'body' ->> 'owner';
  v_src_run text := p -> 'body' ->> 'sourceRunId';
  v_src_key text := p -> 'body' ->> 'sourceOwnerKey';
  v_reuse integer[] := array(select jsonb_array_elements_text(p -> 'body' -> 'reuse')::integer);
  v_state jsonb := '{}';
  v_patch jsonb;
  o record;
  it jsonb;
  v_root record;
  v_gated boolean;
begin
  perform {{schema}}.create_rerun(p);

  insert into {{schema}}.step_runs (id, run_id, environment_id, workflow_id, step_id, step_key, kind, scope_key, iteration,
                                    status, pending_parents, live_from, parents, successors, failure_successors,
                                    max_attempts, on_exhausted, concurrency_key, concurrency_limit,
                                    input_dataclip_id, input_hash, output_dataclip_id, reused_from, started_at, finished_at)
  select {{schema}}.mint_id('sr'), v_run, src.environment_id, src.workflow_id, src.step_id, src.step_key, src.kind,
         v_owner, src.iteration, 'succeeded', 0, src.live_from, src.parents, src.successors, src.failure_successors,
         src.max_attempts, src.on_exhausted, src.concurrency_key, src.concurrency_limit,
         src.input_dataclip_id, src.input_hash, src.output_dataclip_id, src.id, src.started_at, src.finished_at
    from {{schema}}.step_runs src
   where src.run_id = v_src_run and src.scope_key = v_src_key and src.iteration = any(v_reuse)
     and src.status = 'succeeded';

  for v_patch in
    with recursive chain as (
      select c.id as copy_id, c.reused_from as next_id, 0 as depth, null::text collate "C" as run_id, null::text collate "C" as step_key
        from {{schema}}.step_runs c
       where c.run_id = v_run and c.scope_key = v_owner and c.reused_from is not null
      union all
      select ch.copy_id, s.reused_from, ch.depth + 1, s.run_id, s.step_key
        from chain ch join {{schema}}.step_runs s on s.id = ch.next_id
       where ch.depth < 100
    ), origins as (
      select distinct on (copy_id) run_id, step_key from chain where run_id is not null order by copy_id, depth desc
    )
    select e.data -> 'statePatch' from {{schema}}.run_events e
     where e.kind = 'step.succeeded' and jsonb_typeof(e.data -> 'statePatch') = 'object'
       and ((e.run_id = p ->> 'rerunOf'
             and split_part(e.step_key, '[', 1) in (select jsonb_array_elements_text(p -> 'reusedStepIds')))
         or (e.run_id, e.step_key) in (select run_id, step_key from origins))
     order by e.id
  loop
    v_state := (v_state - case when jsonb_typeof(v_patch -> 'delete') = 'array'
                               then array(select jsonb_array_elements_text(v_patch -> 'delete')) else '{}'::text[] end)
               || case when jsonb_typeof(v_patch -> 'set') = 'object' then v_patch -> 'set' else '{}'::jsonb end;
  end loop;
  update {{schema}}.runs set state = v_state where id = v_run;

  if jsonb_typeof(b -> 'park') = 'object' then
    update {{schema}}.step_runs
       set status = 'waiting', on_scope_failure = b -> 'park' ->> 'onScopeFailure'
     where run_id = v_run and step_key = v_owner and status = 'ready'
    returning id, environment_id, workflow_id into o;
    if not found then
      raise exception 'create_rerun_iterations: step % of rerun % is not ready to park (planner invariant)', v_owner, v_run;
    end if;
    for it in select value from jsonb_array_elements(b -> 'park' -> 'iterations') loop
      v_gated := (it ->> 'gated')::boolean;
      select s.input_dataclip_id, s.input_hash into v_root from {{schema}}.step_runs s
       where s.run_id = v_src_run and s.scope_key = v_src_key and s.iteration = (it ->> 'iteration')::integer
         and cardinality(s.parents) = 0 and s.input_dataclip_id is not null
       limit 1;
      insert into {{schema}}.step_runs (id, run_id, environment_id, workflow_id, step_id, step_key, kind, scope_key, iteration,
                                        status, pending_parents, parents, successors, failure_successors, max_attempts,
                                        on_exhausted, concurrency_key, concurrency_limit, input_dataclip_id, input_hash)
      select {{schema}}.mint_id('sr'), v_run, o.environment_id, o.workflow_id, n.step_id,
             n.step_id || '[' || (it ->> 'iteration') || ']', n.kind, v_owner, (it ->> 'iteration')::integer,
             case when cardinality(n.parents) = 0 and not v_gated then 'ready' else 'pending' end,
             case when cardinality(n.parents) = 0 then (case when v_gated then 1 else 0 end) else cardinality(n.parents) end,
             array(select x || '[' || (it ->> 'iteration') || ']' from unnest(n.parents) x),
             array(select x || '[' || (it ->> 'iteration') || ']' from unnest(n.successors) x),
             array(select x || '[' || (it ->> 'iteration') || ']' from unnest(n.failure_successors) x),
             n.max_attempts, n.on_exhausted, n.concurrency_key, n.concurrency_limit,
             case when cardinality(n.parents) = 0 then v_root.input_dataclip_id end,
             case when cardinality(n.parents) = 0 then v_root.input_hash end
        from jsonb_to_recordset(b -> 'park' -> 'nodes') as n(step_id text, kind text, parents text[], successors text[],
             failure_successors text[], max_attempts integer, on_exhausted text, concurrency_key text, concurrency_limit integer);
    end loop;
    insert into {{schema}}.run_events (run_id, kind, step_key, data)
    values (v_run, 'step.waiting', v_owner, jsonb_build_object(
      'iterations', jsonb_array_length(b -> 'park' -> 'iterations'), 'reused', to_jsonb(v_reuse)));
  end if;
  return query select * from {{schema}}.runs where id = v_run;
end $$;
