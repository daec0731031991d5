-- The worker's claim: one round trip. Picks up to p_limit ready rows of the given environments
-- and workflows from the partial index step_runs_ready (claim_candidates), skipping rows other
-- workers hold.
-- Concurrency limits (per step across runs, per run) are checked under an advisory lock per
-- limited key, held to the end of this statement's transaction, so two claimers cannot both take
-- the last slot; unlimited steps (the common case) skip that path entirely.
create or replace function {{schema}}.claim_steps(p_worker text, p_envs text[], p_workflows text[], p_limit integer, p_lease_ms integer)
returns table (
  step_run_id text, run_id text, step_id text, step_key text, workflow_id text, version_id text,
  environment_id text, attempt integer, max_attempts integer, input jsonb, state jsonb, save_dataclips boolean
)
language plpgsql
set enable_seqscan = off -- by key only: README.md, "By id"
-- the limits statement below finds its candidates by key (`s.id = any(v_ids)`): planned once
-- per connection (README.md, "Planned once"; it was planned anew on every claim, ~140 µs each,
-- 94 ms of planning for 655 claims of a fan-out, pg_stat_statements with track_planning)
set plan_cache_mode = force_generic_plan
as $$
declare
  v_ids text[] := '{}';
  v_env text;
  v_limited record;
  v_keep text[] := '{}';
  v_taken jsonb := '{}';
  v_running integer;
begin
  foreach v_env in array p_envs loop
    exit when cardinality(v_ids) >= p_limit;
    v_ids := v_ids || {{schema}}.claim_candidates(v_env, p_workflows, p_limit - cardinality(v_ids));
  end loop;
  if cardinality(v_ids) = 0 then
    return;
  end if;
  -- Limits: drop candidates whose step key or run is at its limit.
  for v_limited in
    select s.id, s.concurrency_key, s.concurrency_limit, s.run_id, r.max_concurrency
      from {{schema}}.step_runs s join {{schema}}.runs r on r.id = s.run_id
     where s.id = any(v_ids) and (s.concurrency_key is not null or r.max_concurrency is not null)
     order by s.available_at, s.id
  loop
    if v_limited.concurrency_key is not null then
      perform pg_advisory_xact_lock(hashtext('weft-limit:' || v_limited.concurrency_key));
      select count(*) into v_running from {{schema}}.step_runs x
       where x.concurrency_key = v_limited.concurrency_key and x.status = 'running';
      if v_running + coalesce((v_taken ->> v_limited.concurrency_key)::integer, 0) >= v_limited.concurrency_limit then
        v_keep := array_append(v_keep, v_limited.id::text);
        continue;
      end if;
    end if;
    if v_limited.max_concurrency is not null then
      perform pg_advisory_xact_lock(hashtext('weft-run-limit:' || v_limited.run_id));
      select count(*) into v_running from {{schema}}.step_runs x
       where x.run_id = v_limited.run_id and x.status = 'running' and x.kind in ('step', 'router');
      if v_running + coalesce((v_taken ->> v_limited.run_id)::integer, 0) >= v_limited.max_concurrency then
        v_keep := array_append(v_keep, v_limited.id::text);
        continue;
      end if;
      v_taken := jsonb_set(v_taken, array[v_limited.run_id::text], to_jsonb(coalesce((v_taken ->> v_limited.run_id)::integer, 0) + 1));
    end if;
    if v_limited.concurrency_key is not null then
      v_taken := jsonb_set(v_taken, array[v_limited.concurrency_key::text], to_jsonb(coalesce((v_taken ->> v_limited.concurrency_key)::integer, 0) + 1));
    end if;
  end loop;
  if cardinality(v_keep) > 0 then
    v_ids := array(select unnest(v_ids) except select unnest(v_keep));
  end if;
  return query select * from {{schema}}.claim_by_ids(v_ids, p_worker, p_lease_ms);
end $$;
