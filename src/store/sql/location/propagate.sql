-- A step run resolved (succeeded or failed); its edges to p_live arrive live, to p_dead dead.
-- Successors whose parents are all resolved become ready (some edge arrived live) or pruned (none
-- did); pruning cascades along every edge of a pruned step. Returns the keys made ready and the
-- number pruned. Index: step_runs (run_id, step_key) unique.
-- Fast case, in the decrementing statement itself: a successor whose only parent is p_from and
-- whose edge is live becomes ready at once, its input pointing at p_from's output (p_output_id).
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
  v_take text;
begin
  ready := '{}';
  pruned := 0;
  -- `direct`: the only parent is p_from and its edge is live, so the successor is ready now with
  -- p_from's output as input. `take`: with p_claim_worker (the chain fast path), the first direct
  -- successor without a concurrency limit goes straight to running for that worker through the
  -- claim rule (claim_by_ids, which resolves it in the same row update); a limited one is left
  -- ready for the claim, which checks its limit.
  --
  -- Successor rows are found by (run_id, step_key) through the unique index, one probe per key
  -- (the lateral subquery): written as `step_key = any(...) and status = 'pending'`, the planner
  -- read the partial index step_runs_open by run_id instead, i.e. every open step run of the run,
  -- which made a chain quadratic. EXPLAIN (ANALYZE, BUFFERS) at step 5,000 of a 10,000-step chain
  -- (bench/store-plans.ts, bench/RESULTS.md): before, Rows Removed by Filter 4,999 and 43 shared
  -- buffers; after, 0 rows removed and 4 buffers, the same at any length.
  if p_claim_worker is not null and p_output_id is not null then
    select c.id into v_take
      from unnest(p_live) as k(key)
      cross join lateral (
        select sr.id from {{schema}}.step_runs sr
         where sr.run_id = p_run_id and sr.step_key = k.key and sr.status = 'pending'
           and sr.pending_parents = 1 and cardinality(sr.parents) = 1 and sr.concurrency_key is null
      ) c
     order by c.id limit 1;
    if v_take is not null then
      select to_jsonb(t) into claimed
        from {{schema}}.claim_by_ids(array[v_take], p_claim_worker, p_lease_ms, p_from, p_output_id, p_output_hash) t;
      if claimed is not null then
        ready := array_append(ready, claimed ->> 'step_key');
      end if;
    end if;
  end if;
  for r in
    update {{schema}}.step_runs u
       set pending_parents = u.pending_parents - 1,
           live_from = case when u.step_key = any(p_live) then array_append(u.live_from, p_from::text) else u.live_from end,
           status = case when f.direct then 'ready' else u.status end,
           input_dataclip_id = case when f.direct then p_output_id else u.input_dataclip_id end,
           input_hash = case when f.direct then p_output_hash else u.input_hash end,
           available_at = case when f.direct then now() else u.available_at end
      from (select sr.id,
                   (sr.step_key = any(p_live) and sr.pending_parents = 1 and cardinality(sr.parents) = 1
                    and p_output_id is not null) as direct
              from unnest(p_live || p_dead) as k(key)
              cross join lateral (
                select x.id, x.step_key, x.pending_parents, x.parents from {{schema}}.step_runs x
                 where x.run_id = p_run_id and x.step_key = k.key and x.status = 'pending'
              ) sr
             where sr.id is distinct from v_take) f
     where u.id = f.id
    returning u.id, u.step_key, u.status, u.pending_parents
  loop
    if r.status = 'ready' then
      ready := array_append(ready, r.step_key::text);
    elsif r.pending_parents <= 0 then
      v_check := array_append(v_check, r.step_key::text);
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
