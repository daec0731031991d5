-- End a run. Final state: the succeeded step runs none of whose successors ran (successor_ran: a
-- reused row of a rerun whose successor ran in an earlier run of the lineage). One such leaf:
-- point at its output dataclip (no copy, no write). Several: one new dataclip { [key]: output }.
-- With save_dataclips off, every body of the run is dropped now (they were kept only while the run
-- was live, so that any worker could pick up any step and a crash loses nothing).
-- The leaf test looks each successor up by (run_id, step_key), the unique index, one probe per
-- successor (the LATERAL … limit 1 keeps the planner from turning it into a join that reads the
-- run's rows once per step): a run's cost to finish grows with its steps, not with their square.
-- Rejected: `c.step_key = any(s.successors)` and a plain `exists`, both planned (with the
-- statistics of a table that held few rows per run) as a walk of all the run's step runs for each
-- succeeded step: a 3,000-step chain filtered 4.5 million rows and read 222,000 buffers, 1.1 s
-- inside the last step's commit, holding its row locks (10,000 steps: about 13 s); now 9,100
-- buffers and 10 ms (EXPLAIN ANALYZE, generic plan).
create or replace function {{schema}}.finish_run(p_run_id text, p_status text, p_error jsonb) returns void
language plpgsql as $$
declare
  v_run record;
  v_count integer;
  v_single text;
  v_final text;
  v_body jsonb;
begin
  select id, environment_id, save_dataclips, parent_step_run_id into v_run from {{schema}}.runs where id = p_run_id;
  -- A child run: take the parent step run's row lock first. park_step holds it while it inserts
  -- the waitpoint this function completes below, so the two serialize: either that park has
  -- committed (the update below sees its waitpoint) or it waits for this commit (and then sees
  -- this run ended, and readies the step itself). Without the lock each could look before the
  -- other committed, and the parent waited for good (CI, test/engine.input-schema.test.ts; the
  -- interleaving is replayed in test/engine.child-park-race.test.ts). A parent in another
  -- location is not found here (wakeParentInOtherLocation covers it).
  if v_run.parent_step_run_id is not null then
    perform 1 from {{schema}}.step_runs where id = v_run.parent_step_run_id for update;
  end if;
  select count(*), min(s.output_dataclip_id) into v_count, v_single
    from {{schema}}.step_runs s
   where s.run_id = p_run_id and s.status = 'succeeded' and s.scope_key is null and not s.successor_ran
     and not exists (
       select 1 from unnest(s.successors) k
         cross join lateral (select 1 from {{schema}}.step_runs c
                              where c.run_id = s.run_id and c.step_key = k and c.status in ('succeeded', 'failed')
                              limit 1) probe);
  if v_count = 1 then
    v_final := v_single;
  elsif v_count > 1 then
    select jsonb_object_agg(s.step_key, d.body) into v_body
      from {{schema}}.step_runs s join {{schema}}.dataclips d on d.id = s.output_dataclip_id
     where s.run_id = p_run_id and s.status = 'succeeded' and s.scope_key is null and not s.successor_ran
       and not exists (
         select 1 from unnest(s.successors) k
           cross join lateral (select 1 from {{schema}}.step_runs c
                                where c.run_id = s.run_id and c.step_key = k and c.status in ('succeeded', 'failed')
                                limit 1) probe);
    v_final := {{schema}}.mint_id('dc');
    insert into {{schema}}.dataclips (id, run_id, environment_id, kind, body, body_hash, size_bytes)
    values (v_final, p_run_id, v_run.environment_id, 'final', v_body, md5(v_body::text), octet_length(v_body::text));
  end if;
  update {{schema}}.runs
     set status = p_status, final_dataclip_id = v_final, error = p_error,
         finished_at = now(), updated_at = now()
   where id = p_run_id;
  if not v_run.save_dataclips then
    update {{schema}}.dataclips set body = null, wiped_at = now() where run_id = p_run_id and body is not null;
  end if;
  insert into {{schema}}.run_events (run_id, kind, data)
  values (p_run_id, 'run.' || p_status, jsonb_build_object('finalDataclipId', v_final, 'error', p_error));
  -- a child run ending wakes the parent step waiting on it (same location; only a run started by
  -- a parent's subWorkflow has one, so a run without a parent skips the call)
  if v_run.parent_step_run_id is not null then
    perform {{schema}}.wake_child_waiter(p_run_id, null);
  end if;
  -- No NOTIFY weft_run_finished here: the store signals it after the commit (see signals.ts).
end $$;
