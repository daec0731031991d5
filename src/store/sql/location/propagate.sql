-- A step run resolved (succeeded or failed); its edges to p_live arrive live, to p_dead dead.
-- Successors whose parents are all resolved become ready (some edge arrived live) or pruned (none
-- did); pruning cascades along every edge of a pruned step. Returns the keys made ready and the
-- number pruned. Index: step_runs (run_id, step_key) unique.
-- Fast case: a successor whose only parent is p_from and whose edge is live becomes ready at
-- once, its input pointing at p_from's output (p_output_id), or with p_claim_worker is claimed.
create or replace function {{schema}}.propagate(
  p_run_id text, p_from text, p_live text[], p_dead text[], p_output_id text, p_output_hash text,
  p_claim_worker text default null, p_lease_ms integer default null,
  out ready text[], out pruned integer, out claimed jsonb
)
language plpgsql as $$
declare
  v_check text[] := '{}';
  v_next text[];
  r record;
  c record;
  v_key text;
  v_direct boolean;
begin
  ready := '{}';
  pruned := 0;
  -- `direct`: the only parent is p_from and its edge is live, so the successor is ready now with
  -- p_from's output as input. `take`: with p_claim_worker (the chain fast path), the first direct
  -- successor without a concurrency limit goes straight to running for that worker through the
  -- claim rule (claim_by_ids, which resolves it in the same row update); a limited one is left
  -- ready for the claim, which checks its limit.
  --
  -- Each successor row is found by (run_id, step_key) alone, through the unique index, and then
  -- changed by primary key. Rejected: one statement over `step_key = any(...) and status =
  -- 'pending'`: that condition implies the predicate of the partial index step_runs_open, and with
  -- the statistics a run's own rows have when its steps run (a chain is written in one insert,
  -- before autovacuum analyzes it) the generic plan read step_runs_open by run_id, i.e. every open
  -- step run of the run, for each step: a chain was quadratic. EXPLAIN (ANALYZE, BUFFERS) of the
  -- successor update at step 5,000 of a 10,000-step chain (bench/store-plans.ts, RESULTS.md
  -- 2026-11-29): before, step_runs_open, 4,999 rows removed by filter, 182 buffers, 1.46 ms;
  -- after, the unique index then the primary key, 0 removed, 5 + 20 buffers, 0.14 ms, the same
  -- at any length.
  for v_key in select distinct k from unnest(p_live || p_dead) as k loop
    select sr.id, sr.status, sr.pending_parents, cardinality(sr.parents) as n_parents, sr.concurrency_key
      into c from {{schema}}.step_runs sr
     where sr.run_id = p_run_id and sr.step_key = v_key;
    if c.id is null or c.status <> 'pending' then
      continue;
    end if;
    v_direct := v_key = any(p_live) and c.pending_parents = 1 and c.n_parents = 1 and p_output_id is not null;
    if v_direct and p_claim_worker is not null and c.concurrency_key is null and claimed is null then
      select to_jsonb(t) into claimed
        from {{schema}}.claim_by_ids(array[c.id::text], p_claim_worker, p_lease_ms, p_from, p_output_id, p_output_hash) t;
      if claimed is not null then
        ready := array_append(ready, v_key);
        continue;
      end if;
    end if;
    update {{schema}}.step_runs u
       set pending_parents = u.pending_parents - 1,
           live_from = case when v_key = any(p_live) then array_append(u.live_from, p_from::text) else u.live_from end,
           status = case when v_direct then 'ready' else u.status end,
           input_dataclip_id = case when v_direct then p_output_id else u.input_dataclip_id end,
           input_hash = case when v_direct then p_output_hash else u.input_hash end,
           available_at = case when v_direct then now() else u.available_at end
     where u.id = c.id and (u.status || '') = 'pending' -- by id: README.md
    returning u.status, u.pending_parents into r;
    if not found then
      continue;
    elsif r.status = 'ready' then
      ready := array_append(ready, v_key);
    elsif r.pending_parents <= 0 then
      v_check := array_append(v_check, v_key);
    end if;
  end loop;
  while cardinality(v_check) > 0 loop
    v_next := '{}';
    for r in
      select id, step_key, live_from, successors from {{schema}}.step_runs
       where run_id = p_run_id and step_key = any(v_check) and status = 'pending' and pending_parents <= 0
    loop
      if cardinality(r.live_from) > 0 then
        perform {{schema}}.make_ready(r.id);
        ready := array_append(ready, r.step_key::text);
      else
        update {{schema}}.step_runs set status = 'pruned', finished_at = now() where id = r.id;
        insert into {{schema}}.run_events (run_id, kind, step_key) values (p_run_id, 'step.pruned', r.step_key);
        pruned := pruned + 1;
        if cardinality(r.successors) > 0 then
          update {{schema}}.step_runs set pending_parents = pending_parents - 1
           where run_id = p_run_id and step_key = any(r.successors) and status = 'pending';
          v_next := v_next || r.successors;
        end if;
      end if;
    end loop;
    v_check := v_next;
  end loop;
end $$;
