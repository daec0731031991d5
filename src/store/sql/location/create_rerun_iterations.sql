-- Rerun from one step inside one iteration (`fromStep: 'save[3]'` where `fetch` runs before
-- `save` in the body): iteration 3 keeps `fetch[3]` from the source and reruns `save[3]` and what
-- runs after it in the body, instead of the whole iteration (0004 reran it in full).
--
-- create_rerun_iterations is replaced whole (one function, so one reading of it): as in 0004, plus
-- p.body.partial = { iteration, rerun: [stepId], reuse: [stepId] }. With it the owner is always
-- parked (a loop too: its ordinary transition would otherwise start the next iteration at once),
-- the kept steps of that iteration are copied before the state replay (their patches count), and
-- its rerun steps are materialized with join counters over the steps that rerun only.
create or replace function {{schema}}.create_rerun_iterations(p jsonb) returns setof {{schema}}.runs
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
  w jsonb := p -> 'body' -> 'partial';
  v_k integer;
  v_rerun_ids text[];
  v_resolve text[];
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

  -- The targeted iteration itself, when only part of it reruns: the steps before the target keep
  -- their source rows (copied like the kept iterations above).
  if jsonb_typeof(w) = 'object' then
    v_k := (w ->> 'iteration')::integer;
    v_rerun_ids := array(select jsonb_array_elements_text(w -> 'rerun'));
    insert into {{schema}}.step_runs (id, run_id, environment_id, workflow_id, step_id, step_key, kind, scope_key, iteration,
                                      status, pending_parents, live_from, parents, successors, failure_successors,
                                      max_attempts, on_exhausted, concurrency_key, concurrency_limit,
                                      input_dataclip_id, input_hash, output_dataclip_id, reused_from, started_at, finished_at)
    select {{schema}}.mint_id('sr'), v_run, src.environment_id, src.workflow_id, src.step_id, src.step_key, src.kind,
           v_owner, src.iteration, 'succeeded', 0, src.live_from, src.parents, src.successors, src.failure_successors,
           src.max_attempts, src.on_exhausted, src.concurrency_key, src.concurrency_limit,
           src.input_dataclip_id, src.input_hash, src.output_dataclip_id, src.id, src.started_at, src.finished_at
      from {{schema}}.step_runs src
     where src.run_id = v_src_run and src.scope_key = v_src_key and src.iteration = v_k
       and src.status = 'succeeded' and src.step_id <> all(v_rerun_ids);
  end if;

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
    -- The targeted iteration's steps that rerun: the target and what runs after it in the body.
    -- Join counters count only parents that rerun; a step whose parents were all kept waits on one
    -- virtual parent and is resolved below through propagate, like create_rerun's top level (live:
    -- the kept parents whose edge was live in the source; none live prunes it).
    if jsonb_typeof(w) = 'object' then
      select s.input_dataclip_id, s.input_hash into v_root from {{schema}}.step_runs s
       where s.run_id = v_src_run and s.scope_key = v_src_key and s.iteration = v_k
         and cardinality(s.parents) = 0 and s.input_dataclip_id is not null
       limit 1;
      insert into {{schema}}.step_runs (id, run_id, environment_id, workflow_id, step_id, step_key, kind, scope_key, iteration,
                                        status, pending_parents, live_from, parents, successors, failure_successors, max_attempts,
                                        on_exhausted, concurrency_key, concurrency_limit, input_dataclip_id, input_hash)
      select {{schema}}.mint_id('sr'), v_run, o.environment_id, o.workflow_id, n.step_id,
             n.step_id || '[' || v_k || ']', n.kind, v_owner, v_k,
             case when cardinality(n.parents) = 0 then 'ready' else 'pending' end,
             case when cardinality(n.parents) = 0 then 0
                  else greatest(1, (select count(*) from unnest(n.parents) x where x = any(v_rerun_ids))::integer) end,
             coalesce(array(select l from unnest(src.live_from) l where split_part(l, '[', 1) <> all(v_rerun_ids)), '{}'),
             array(select x || '[' || v_k || ']' from unnest(n.parents) x),
             array(select x || '[' || v_k || ']' from unnest(n.successors) x),
             array(select x || '[' || v_k || ']' from unnest(n.failure_successors) x),
             n.max_attempts, n.on_exhausted, n.concurrency_key, n.concurrency_limit,
             case when cardinality(n.parents) = 0 then v_root.input_dataclip_id end,
             case when cardinality(n.parents) = 0 then v_root.input_hash end
        from jsonb_to_recordset(b -> 'park' -> 'nodes') as n(step_id text, kind text, parents text[], successors text[],
             failure_successors text[], max_attempts integer, on_exhausted text, concurrency_key text, concurrency_limit integer)
        left join {{schema}}.step_runs src on src.run_id = v_src_run and src.step_key = n.step_id || '[' || v_k || ']'
       where n.step_id = any(v_rerun_ids);
      select coalesce(array_agg(n.step_id || '[' || v_k || ']'), '{}') into v_resolve
        from jsonb_to_recordset(b -> 'park' -> 'nodes') as n(step_id text, parents text[])
       where n.step_id = any(v_rerun_ids) and cardinality(n.parents) > 0
         and not exists (select 1 from unnest(n.parents) x where x = any(v_rerun_ids));
      if cardinality(v_resolve) > 0 then
        perform {{schema}}.propagate(v_run, '(rerun)', '{}', v_resolve, null, null);
      end if;
      -- everything of the iteration may have been pruned by kept decisions: move the owner on
      perform {{schema}}.scope_check(v_run, v_owner, v_k);
    end if;
    insert into {{schema}}.run_events (run_id, kind, step_key, data)
    values (v_run, 'step.waiting', v_owner, jsonb_build_object(
      'iterations', jsonb_array_length(b -> 'park' -> 'iterations') + case when jsonb_typeof(w) = 'object' then 1 else 0 end,
      'reused', to_jsonb(v_reuse), 'within', w));
    -- the owner left `ready` for `waiting` (location 0014: the functions keep the run status)
    perform {{schema}}.settle_run(v_run, v_owner);
  end if;
  return query select * from {{schema}}.runs where id = v_run;
end $$;
