-- THE claim rule, the one copy: a claimed step run becomes `running` with a fresh attempt number
-- and a lease for the worker, and carries its attempt (worker, start, and the id of its
-- `step.started` event: location 0016; no attempt row, which is written only if the attempt ends
-- otherwise than in success, end_attempts.sql). A `queued` or `waiting` run becomes `running` in
-- claim_by_ids, after this fragment (`claim_by_ids.sql`, its `started`); not here, because the
-- other place, the chain's successor in complete_step, claims in a run that is already `running`:
-- the step before it was running until that commit, and a run is `queued` only before its first
-- claim and `waiting` only when no step run of it is ready or running (settle_run.sql,
-- settle_waiting_runs.sql). That update on the chain's path updated no row and still cost
-- ~13 µs of ~150 µs per step (opening the runs table's six indexes for it on each execution;
-- bench/chain-in-server.ts, RESULTS.md "Issue 8, session 11").
-- The migrator places it where a function names it (`fragment:claim` in double braces),
-- followed there by a select from `claim_rows` (one row per claimed step, what the worker needs to execute it):
-- `claim_by_ids.sql` (the claim by ids: the worker's claims, a join made ready) and
-- `complete_step.sql` (the chain's successor, taken in the commit without a call).
-- Reads the PL/pgSQL variables p_ids, p_worker, p_lease_ms, p_take_from, p_take_input_id and
-- p_take_input_hash of the function it is placed in. Its aliases start with `claim_` so that no
-- caller's variable (`s`, `c`, `r` are common) can shadow them.
--
-- Which rows: the given ids that are `ready`; with p_take_from (the chain fast path), also a
-- `pending` row whose only parent is p_take_from and which waits on it alone: it is resolved here
-- (input = that parent's output p_take_input_id, no copy) and claimed in the same row update, so
-- the successor of a chained step is written once, and never enters the step_runs_ready index.
-- Writes per claimed step: the step run update (not HOT: status is in partial index predicates;
-- one entry in step_runs_event_log for its `step.started`).
-- Indexes read: step_runs pk; runs pk; dataclips pk, and no other: the status test cannot be
-- served by a partial index (README.md, "By id").
with claimed as (
  update {{schema}}.step_runs claim_s
     set status = 'running',
         attempt_count = claim_s.attempt_count + 1,
         lease_owner = p_worker,
         lease_expires_at = now() + p_lease_ms * interval '1 millisecond',
         started_at = coalesce(claim_s.started_at, now()),
         pending_parents = case when claim_s.status = 'pending' then 0 else claim_s.pending_parents end,
         live_from = case when claim_s.status = 'pending' then array[p_take_from] else claim_s.live_from end,
         input_dataclip_id = case when claim_s.status = 'pending' then p_take_input_id else claim_s.input_dataclip_id end,
         input_hash = case when claim_s.status = 'pending' then p_take_input_hash else claim_s.input_hash end,
         available_at = case when claim_s.status = 'pending' then now() else claim_s.available_at end,
         -- the attempt, until it ends (location 0016); its `step.started` event id comes from the
         -- run_events id sequence, so the run's event log keeps one order (location 0010)
         attempt_worker = p_worker,
         attempt_started_at = now(),
         attempt_event_id = nextval('{{schema}}.run_events_id_seq')
   where claim_s.id = any(p_ids)
     -- `status || ''`: by primary key only, never through a partial index (README.md, "By id")
     and ((claim_s.status || '') = 'ready'
          or (p_take_from is not null and (claim_s.status || '') = 'pending' and claim_s.pending_parents = 1
              and claim_s.parents = array[p_take_from]::text[]))
  returning claim_s.id, claim_s.run_id, claim_s.step_id, claim_s.step_key, claim_s.workflow_id,
            claim_s.environment_id, claim_s.attempt_count, claim_s.max_attempts, claim_s.input_dataclip_id
), claim_rows as (
  select claim_c.id::text as step_run_id, claim_c.run_id::text as run_id, claim_c.step_id::text as step_id,
         claim_c.step_key::text as step_key, claim_c.workflow_id::text as workflow_id,
         claim_r.version_id::text as version_id, claim_c.environment_id::text as environment_id,
         claim_c.attempt_count as attempt, claim_c.max_attempts as max_attempts, claim_d.body as input,
         claim_r.state as state, claim_r.save_dataclips as save_dataclips
    from claimed claim_c
    join {{schema}}.runs claim_r on claim_r.id = claim_c.run_id
    left join {{schema}}.dataclips claim_d on claim_d.id = claim_c.input_dataclip_id
   -- a stream that watches the run is woken for this `step.started` (and, in the chain's commit,
   -- for the `step.succeeded` before it: the same run); for an unwatched run a null test only
   -- (location 0015). notify_watched answers true: no row is ever dropped here
   where claim_r.watched_until is null or claim_r.watched_until < now()
      or {{schema}}.notify_watched(claim_c.run_id)
)
