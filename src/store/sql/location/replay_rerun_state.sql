-- The run state a rerun starts with, across a lineage of reruns.
--
-- create_rerun (0003) replays the state patches the *source* run committed for the reused steps.
-- When the source is itself a rerun, a step it reused ran in an older run of the lineage: the
-- source holds no event for it (or no row at all), so its patches were lost — a rerun of a rerun
-- of `a → b → c` from `c` started with `{}` instead of `a`'s and `b`'s patches.
--
-- replay_rerun_state(run, replay) recomputes the new run's state, in the transaction that created
-- it (nothing of it has run yet): for each reused top-level step, the row standing for its result
-- in the lineage (RunStore.loadLineageSteps) is followed along reused_from to the row that ran,
-- and that run's `step.succeeded` patches of the step (and of its loop body, p.stepIds) count;
-- so do the patches of body rows copied into the run by an iteration rerun (0004/0006), found the
-- same way. Patches apply in event id order (one identity per location: the order they were
-- committed in, across the runs of the lineage).
-- replay: [{ stepRunId, stepIds: [top-level step id, its body step ids…] }]
create or replace function {{schema}}.replay_rerun_state(p_run text, p_replay jsonb) returns jsonb
language plpgsql as $$
declare
  v_state jsonb := '{}';
  v_patch jsonb;
begin
  for v_patch in
    with recursive lineage as (
      select r.step_ids, s.id as start_id, s.run_id, s.reused_from, 0 as depth
        from jsonb_to_recordset(p_replay) as r(step_run_id text, step_ids text[])
        join {{schema}}.step_runs s on s.id = r.step_run_id
      union all
      select l.step_ids, l.start_id, s.run_id, s.reused_from, l.depth + 1
        from lineage l join {{schema}}.step_runs s on s.id = l.reused_from
       where l.depth < 100
    ), ran as (
      -- the run each reused step ran in: the end of its reused_from chain
      select distinct on (start_id) run_id, step_ids from lineage order by start_id, depth desc
    ), copies as (
      select c.id as copy_id, c.reused_from as next_id, 0 as depth, null::text collate "C" as run_id, null::text collate "C" as step_key
        from {{schema}}.step_runs c
       where c.run_id = p_run and c.scope_key is not null and c.reused_from is not null
      union all
      select ch.copy_id, s.reused_from, ch.depth + 1, s.run_id, s.step_key
        from copies ch join {{schema}}.step_runs s on s.id = ch.next_id
       where ch.depth < 100
    ), copy_origins as (
      select distinct on (copy_id) run_id, step_key from copies where run_id is not null order by copy_id, depth desc
    )
    select e.data -> 'statePatch' from {{schema}}.run_events e
     where e.kind = 'step.succeeded' and jsonb_typeof(e.data -> 'statePatch') = 'object'
       and (exists (select 1 from ran where ran.run_id = e.run_id and split_part(e.step_key, '[', 1) = any(ran.step_ids))
         or (e.run_id, e.step_key) in (select run_id, step_key from copy_origins))
     order by e.id
  loop
    v_state := (v_state - case when jsonb_typeof(v_patch -> 'delete') = 'array'
                               then array(select jsonb_array_elements_text(v_patch -> 'delete')) else '{}'::text[] end)
               || case when jsonb_typeof(v_patch -> 'set') = 'object' then v_patch -> 'set' else '{}'::jsonb end;
  end loop;
  update {{schema}}.runs set state = v_state where id = p_run;
  return v_state;
end $$;
