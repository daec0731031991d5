-- Rerun from a step: creating a run that reuses a source run's results by reference.
--
-- create_rerun writes, in one transaction (the statement's own), a run on the target version that
-- materializes only what the rerun needs (docs/rerun.md: work proportional to the restart scope):
--   * the steps that rerun (the restart scope), pending/ready exactly like a fresh run;
--   * the reused steps that feed them (their direct parents) and the reused steps that end the run
--     (source leaves: their outputs make up the final state), created `succeeded` and pointing at
--     the source's output dataclips (zero copy, reused_from = the source step run).
-- Every other reused step stays in the source run only: a rerun of this run finds it by following
-- rerun_of (RunStore.loadRerunSource).
-- Rejected: one reused row per node of the graph. It is simpler (finish_run and the step listing
-- need nothing else) but writes O(n) rows to rerun the last step of an n-step chain.
--
-- Join counters: a reused parent counts as resolved, and live when its edge was live in the source
-- (live_from). A rerun step whose parents are all reused is created with one pending "virtual"
-- parent, then resolved through propagate like any step whose last parent just resolved: a single
-- live parent gives its output dataclip as input (no copy), a join gets a merged step_input
-- dataclip (make_ready), no live parent prunes it and the pruning cascades.
--
-- The run state starts as the source run's state replayed over the reused steps only: the state
-- patches the source committed for reused steps (and their loop bodies), in commit order. Steps
-- that rerun then patch it again, so a rerun ends with the state a full run would have had; the
-- source's final state would instead hand a rerun step the effects of its own previous run.
--
-- p: { runId, environmentId, workflowId, versionId, saveDataclips, maxConcurrency, rerunOf,
--      fromStep, input: { dataclipId } | { dataclipId, text, bytes } (a new input dataclip),
--      reusedStepIds: [...] (every reused step id, body steps included: whose state patches count),
--      steps: [{ id, stepId, kind, reusedFrom?, pending, parents[], successors[],
--                failureSuccessors[], liveFrom[], maxAttempts, onExhausted, concurrencyKey?,
--                concurrencyLimit? }],
--      resolve: [stepKey] (rerun steps whose parents are all reused),
--      skipped: [stepId] (steps after untilStep; recorded in the run.created event so that a rerun
--               of this run does not take an older run's result for them) }
create or replace function {{schema}}.create_rerun(p jsonb) returns setof {{schema}}.runs
language plpgsql as $$
declare
  v_run text := p ->> 'runId';
  v_env text := p ->> 'environmentId';
  v_input_id text := p -> 'input' ->> 'dataclipId';
  v_input_hash text;
  v_state jsonb := '{}';
  v_patch jsonb;
  v_prop record;
begin
  if p -> 'input' ? 'text' then
    insert into {{schema}}.dataclips (id, run_id, environment_id, kind, body, body_hash, size_bytes)
    values (v_input_id, v_run, v_env, 'input', (p -> 'input' ->> 'text')::jsonb,
            md5((p -> 'input' ->> 'text')::jsonb::text), (p -> 'input' ->> 'bytes')::integer)
    returning body_hash into v_input_hash;
  else
    select body_hash into v_input_hash from {{schema}}.dataclips where id = v_input_id;
  end if;

  for v_patch in
    select e.data -> 'statePatch' from {{schema}}.run_events e
     where e.run_id = p ->> 'rerunOf' and e.kind = 'step.succeeded'
       and jsonb_typeof(e.data -> 'statePatch') = 'object'
       and split_part(e.step_key, '[', 1) in (select jsonb_array_elements_text(p -> 'reusedStepIds'))
     order by e.id
  loop
    v_state := (v_state - case when jsonb_typeof(v_patch -> 'delete') = 'array'
                               then array(select jsonb_array_elements_text(v_patch -> 'delete')) else '{}'::text[] end)
               || case when jsonb_typeof(v_patch -> 'set') = 'object' then v_patch -> 'set' else '{}'::jsonb end;
  end loop;

  insert into {{schema}}.runs (id, environment_id, workflow_id, version_id, status, trigger_kind, trigger_ref,
                               input_dataclip_id, state, save_dataclips, max_concurrency, rerun_of, rerun_from_step)
  values (v_run, v_env, p ->> 'workflowId', p ->> 'versionId', 'queued', 'rerun', p ->> 'rerunOf',
          v_input_id, v_state, (p ->> 'saveDataclips')::boolean, (p ->> 'maxConcurrency')::integer,
          p ->> 'rerunOf', p ->> 'fromStep');

  insert into {{schema}}.step_runs (id, run_id, environment_id, workflow_id, step_id, step_key, kind, status,
                                    pending_parents, live_from, parents, successors, failure_successors,
                                    successor_ran, max_attempts, on_exhausted, concurrency_key, concurrency_limit,
                                    input_dataclip_id, input_hash, output_dataclip_id, reused_from,
                                    started_at, finished_at)
  select u.id, v_run, v_env, p ->> 'workflowId', u.step_id, u.step_id, u.kind,
         case when u.reused_from is not null then 'succeeded'
              when cardinality(u.parents) = 0 then 'ready' else 'pending' end,
         case when u.reused_from is not null then 0 else u.pending end,
         u.live_from, u.parents, u.successors, u.failure_successors,
         coalesce(u.successor_ran, false), u.max_attempts, u.on_exhausted, u.concurrency_key, u.concurrency_limit,
         case when u.reused_from is not null then src.input_dataclip_id
              when cardinality(u.parents) = 0 then v_input_id end,
         case when u.reused_from is not null then src.input_hash
              when cardinality(u.parents) = 0 then v_input_hash end,
         src.output_dataclip_id, u.reused_from, src.started_at, src.finished_at
    from jsonb_to_recordset(p -> 'steps') as u(id text, step_id text, kind text, reused_from text, pending integer,
         parents text[], successors text[], failure_successors text[], successor_ran boolean, live_from text[],
         max_attempts integer, on_exhausted text, concurrency_key text, concurrency_limit integer)
    left join {{schema}}.step_runs src on src.id = u.reused_from;

  insert into {{schema}}.run_events (run_id, kind, data)
  values (v_run, 'run.created', jsonb_build_object('trigger', 'rerun', 'rerunOf', p ->> 'rerunOf',
          'fromStep', p ->> 'fromStep', 'materialized', jsonb_array_length(p -> 'steps'),
          'skipped', coalesce(p -> 'skipped', '[]'::jsonb)));

  if jsonb_array_length(p -> 'resolve') > 0 then
    v_prop := {{schema}}.propagate(v_run, '(rerun)', '{}',
                                   array(select jsonb_array_elements_text(p -> 'resolve')), null, null);
  end if;

  if not exists (select 1 from {{schema}}.step_runs where run_id = v_run and status in ('pending', 'ready', 'running', 'waiting')) then
    -- everything in scope was pruned by kept decisions: the run is over as soon as it starts
    update {{schema}}.runs set status = 'running', started_at = now() where id = v_run;
    perform {{schema}}.finish_if_done(v_run);
  else
    perform {{schema}}.wake(v_env);
  end if;
  return query select * from {{schema}}.runs where id = v_run;
end $$;
