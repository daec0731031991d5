-- Commit a successful attempt: ONE round trip, ONE transaction (the statement's own).
-- Fenced by (step run, attempt number, worker, unexpired lease): a worker whose lease expired, or
-- whose step was reaped, canceled or re-claimed, changes nothing and gets status 'fenced'.
-- In that transaction: output dataclip, step run succeeded (the attempt's success with it), state patch, successors
-- (joins, pruning), run completion and final state, events; and with p_claim_next the next ready
-- step of the same run is claimed for the same worker (the chain fast path: no claim round trip).
-- If the process dies before this commits, nothing of the attempt is kept: the lease expires and
-- the reaper counts the attempt as lost.
-- Statements on the chain path: fence update, dataclip insert, successor probe and claim (the
-- claim rule inline: the successor's update, which also carries its attempt and `step.started`
-- event; run and input read); indexes used: the primary keys and step_runs (run_id, step_key),
-- each probed by key, so a step costs the same at any chain length.
-- Rows written per chained step without a state patch (bench --diagnose): step run insert (at run
-- creation) and two updates (claim, this commit), one output dataclip: 4 (was 9: an attempt row
-- inserted at the claim and updated on success, and the `step.started` and `step.succeeded`
-- event rows, now read from the step run: locations 0010 and 0016). No FK checks.
-- A plain chained step (one live successor that waits on it alone, no state patch) is committed
-- by the store's own statement instead, without this call (store/runs/chain-commit.ts: the same
-- writes, ~0.1 ms less per step); it comes here when that statement leaves the commit to it.
-- Wake-ups: no NOTIFY here; `wake` in the result lists the environments with work made ready that
-- this worker did not take, and the store signals them after the commit (wake.sql).
create or replace function {{schema}}.complete_step(
  p_step_run_id text, p_attempt integer, p_worker text,
  p_output text, p_output_id text,
  p_state_set jsonb, p_state_del text[],
  p_live text[], p_dead text[],
  p_claim_next boolean, p_lease_ms integer
) returns jsonb
language plpgsql
set enable_seqscan = off -- by key only: README.md, "By id"
-- every statement here finds its rows by key, the inlined claim's `= any(p_ids)` too: planned
-- once per connection (README.md, "Planned once"; without it that statement was planned anew on
-- each call and a chained step's server time went from ~110 to ~290 µs)
set plan_cache_mode = force_generic_plan
as $$
declare
  s record;
  v_body jsonb := p_output::jsonb;
  v_hash text := md5(v_body::text);
  v_prop record;
  v_status text;
  v_state jsonb;
  v_next jsonb;
  v_key text;
  c record;
  -- the variables the claim rule reads (fragments/claim.sql), for the chain fast path
  p_ids text[];
  p_take_from text;
  p_take_input_id text;
  p_take_input_hash text;
begin
  -- the fence (fragments/fence.sql), which also takes this step's `step.succeeded` event id first
  {{fragment:fence}}
  into s;
  if not found then
    return jsonb_build_object('status', 'fenced', 'wake', '[]'::jsonb);
  end if;

  insert into {{schema}}.dataclips (id, run_id, environment_id, kind, body, body_hash, size_bytes)
  values (p_output_id, s.run_id, s.environment_id, 'output', v_body, v_hash, octet_length(p_output));
  -- No attempt row: the success is the step run's (status succeeded, attempt_count = this
  -- attempt, and the attempt columns its claim set); the `attempts` view reads it from there
  -- (location 0016).

  if p_state_set is not null or p_state_del is not null then
    update {{schema}}.runs
       set state = (state - coalesce(p_state_del, '{}'::text[])) || coalesce(p_state_set, '{}'::jsonb), updated_at = now()
     where id = s.run_id
    returning status, state into v_status, v_state;
  end if;

  -- the step's own event first: propagate may claim the next step (its `step.started`), and a
  -- reader of the event log sees cause before effect. Without a state patch the event is the
  -- step run row itself (event_id above); a stream watching the run is woken for it by the
  -- claim of the successor on the fast path below (the same run: fragments/claim.sql), or else
  -- by notify_run_watchers before propagate (no-op when nobody streams)
  if p_state_set is not null or p_state_del is not null then
    insert into {{schema}}.run_events (run_id, kind, step_key, attempt, data)
    values (s.run_id, 'step.succeeded', s.step_key, p_attempt, jsonb_build_object(
      'outputDataclipId', p_output_id,
      'statePatch', jsonb_build_object('set', p_state_set, 'delete', to_jsonb(p_state_del))));
  end if;

  -- The chain fast path: one live edge, to a successor that waits on this step alone and has no
  -- concurrency limit, is claimed for this worker here, by the claim rule placed inline
  -- (fragments/claim.sql; its take condition checks "this step alone"). What propagate would do
  -- for it, without its two calls (propagate, claim_by_ids): 127–133 → 109–110 µs of server time
  -- per chained step, measured inside the server on the same rows (bench/RESULTS.md, "Issue 8,
  -- session 7"). Anything
  -- else (a join, a limit, a pruned edge, a successor not pending) takes propagate below.
  if p_claim_next and cardinality(p_live) = 1 and cardinality(p_dead) = 0 then
    select array[sr.id::text] into p_ids from {{schema}}.step_runs sr
     where sr.run_id = s.run_id and sr.step_key = p_live[1] and sr.concurrency_key is null;
    if p_ids is not null then
      p_take_from := s.step_key;
      p_take_input_id := p_output_id;
      p_take_input_hash := v_hash;
      {{fragment:claim}}
      select to_jsonb(t) into v_next from claim_rows t;
      if v_next is not null then
        return jsonb_build_object('status', 'committed', 'runStatus', coalesce(v_status, 'running'),
                                  'next', v_next, 'wake', {{schema}}.woken());
      end if;
    end if;
  end if;

  if p_state_set is null and p_state_del is null then
    perform {{schema}}.notify_run_watchers(s.run_id);
  end if;
  v_prop := {{schema}}.propagate(s.run_id, s.step_key, p_live, p_dead, p_output_id, v_hash,
                                 case when p_claim_next then p_worker end, p_lease_ms);

  if cardinality(v_prop.ready) = 0 then
    v_status := {{schema}}.after_quiet(s.run_id, s.scope_key, s.iteration);
    -- it readied nothing: the run may now wait on nothing but waitpoints (location 0014)
    perform {{schema}}.settle_run(s.run_id, s.step_key);
    return jsonb_build_object('status', 'committed', 'runStatus', v_status, 'wake', {{schema}}.woken());
  end if;

  if p_claim_next then
    -- claimed inside propagate (the chain fast path), else a join made ready above, unless it has
    -- a concurrency limit (claim_steps checks those); both through the one claim rule
    v_next := v_prop.claimed;
    if v_next is null then
      -- by (run_id, step_key) alone, like propagate (see there why), and `skip locked`: a row
      -- another worker's claim holds is left to it (waiting for it could deadlock: that claim may
      -- wait on this run's row, which this transaction updated)
      foreach v_key in array v_prop.ready loop
        c := null;
        select sr.id, sr.status, sr.concurrency_key into c from {{schema}}.step_runs sr
         where sr.run_id = s.run_id and sr.step_key = v_key
           for update skip locked;
        if c.status = 'ready' and c.concurrency_key is null then
          select to_jsonb(t) into v_next from {{schema}}.claim_by_ids(array[c.id::text], p_worker, p_lease_ms) t;
          exit when v_next is not null;
        end if;
      end loop;
    end if;
  end if;
  if cardinality(v_prop.ready) > (case when v_next is null then 0 else 1 end) then
    perform {{schema}}.wake(s.environment_id);
  end if;
  -- No settle_run here or on the fast path above: this commit left a step run of the run ready
  -- (or running, claimed), so the run cannot be `waiting` (location 0014).
  return jsonb_build_object('status', 'committed', 'runStatus', coalesce(v_status, 'running'),
                            'next', v_next, 'wake', {{schema}}.woken());
end $$;
