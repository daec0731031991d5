-- A run location: the run tables of one location tag ({{tag}}) in one run-ops database.
-- Every location schema is created from this same template, so locations differ only by name.
--
-- Relations inside a location use foreign keys; relations that may cross locations or databases
-- (rerun_of, parent_run_id, reused_from, workflow versions) are plain ids, resolved by id.

create table {{schema}}.runs (
  id text collate "C" primary key,
  environment_id text collate "C" not null,
  workflow_id text collate "C" not null,
  version_id text collate "C" not null,
  status text not null check (status in ('queued', 'running', 'waiting', 'paused', 'succeeded', 'failed', 'canceled')),
  trigger_kind text not null check (trigger_kind in ('manual', 'api', 'webhook', 'cron', 'rerun', 'cli', 'dashboard', 'child')),
  trigger_ref text,
  input_dataclip_id text collate "C",
  final_dataclip_id text collate "C",
  -- run state: top-level keys patched by committed steps
  state jsonb not null default '{}',
  save_dataclips boolean not null,
  -- most step runs of this run running at once (null: no limit)
  max_concurrency integer check (max_concurrency is null or max_concurrency > 0),
  idempotency_key text,
  rerun_of text collate "C",
  rerun_from_step text,
  parent_run_id text collate "C",
  parent_step_run_id text collate "C",
  error jsonb,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  updated_at timestamptz not null default now()
);

-- Keyset listing (SCALE.md): (created_at desc, id desc) per environment, and per workflow.
create index runs_env_created on {{schema}}.runs (environment_id, created_at desc, id desc);
create index runs_env_workflow_created on {{schema}}.runs (environment_id, workflow_id, created_at desc, id desc);
-- "latest succeeded run of a workflow" (cron previous-state input) and active-run scans.
create index runs_env_workflow_status on {{schema}}.runs (environment_id, workflow_id, status, finished_at desc);

create table {{schema}}.step_runs (
  id text collate "C" primary key,
  run_id text collate "C" not null references {{schema}}.runs (id) on delete cascade,
  environment_id text collate "C" not null,
  workflow_id text collate "C" not null,
  step_id text collate "C" not null,
  -- step id, or `step[i]` for a loop iteration / parallel branch
  step_key text collate "C" not null,
  -- 'step' and 'router' run user code; the others are control nodes run by the engine
  kind text not null default 'step',
  -- the enclosing loop / parallel step run key, and the iteration index inside it
  scope_key text collate "C",
  iteration integer,
  status text not null check (status in ('pending', 'ready', 'running', 'waiting', 'succeeded', 'failed', 'pruned', 'canceled')),
  -- join bookkeeping: parents not yet resolved, and the parents whose edge arrived live
  pending_parents integer not null default 0,
  live_from text[] collate "C" not null default '{}',
  parents text[] collate "C" not null default '{}',
  -- successor keys: all of them, and those reached when this step fails (failure/always edges)
  successors text[] collate "C" not null default '{}',
  failure_successors text[] collate "C" not null default '{}',
  on_exhausted text not null default 'fail' check (on_exhausted in ('fail', 'pause')),
  -- on a loop / parallel owner: what a body step failing for good does ('fail': fail the owner,
  -- canceling the rest of the body; 'collect': record it as that branch's result)
  on_scope_failure text check (on_scope_failure in ('fail', 'collect')),
  max_attempts integer not null check (max_attempts > 0),
  -- per-step concurrency limit across runs: at most concurrency_limit running with this key
  concurrency_key text collate "C",
  concurrency_limit integer,
  attempt_count integer not null default 0,
  available_at timestamptz not null default now(),
  lease_owner text,
  lease_expires_at timestamptz,
  input_dataclip_id text collate "C",
  -- md5 of the canonical (jsonb) text of the resolved input: rerun change detection
  input_hash text,
  output_dataclip_id text collate "C",
  -- rerun: the source run's step run whose output this one reuses (zero copy)
  reused_from text collate "C",
  error jsonb,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  unique (run_id, step_key)
);

-- Claim index: only ready rows, in the order they become claimable.
create index step_runs_ready on {{schema}}.step_runs (environment_id, available_at, id) where status = 'ready';
-- "Is anything of this run still open?" (asked when a commit readies nothing): an index probe.
create index step_runs_open on {{schema}}.step_runs (run_id, scope_key, iteration) where status in ('pending', 'ready', 'running', 'waiting');
-- per-step concurrency limits count running step runs by key
create index step_runs_limited on {{schema}}.step_runs (concurrency_key) where status = 'running' and concurrency_key is not null;
-- Reaper index: only running rows, by lease expiry.
create index step_runs_leases on {{schema}}.step_runs (lease_expires_at) where status = 'running';

-- An attempt is written when its step is claimed, before any user code runs.
create table {{schema}}.attempts (
  step_run_id text collate "C" not null references {{schema}}.step_runs (id) on delete cascade,
  number integer not null check (number > 0),
  run_id text collate "C" not null,
  worker_id text not null,
  status text not null check (status in ('running', 'succeeded', 'failed', 'lost', 'canceled')),
  error jsonb,
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  primary key (step_run_id, number)
);

create table {{schema}}.dataclips (
  id text collate "C" primary key,
  run_id text collate "C",
  environment_id text collate "C" not null,
  kind text not null check (kind in ('input', 'output', 'step_input', 'final', 'webhook_request', 'waitpoint_payload')),
  body jsonb,
  body_hash text,
  size_bytes integer not null,
  wiped_at timestamptz,
  created_at timestamptz not null default now()
);
create index dataclips_run on {{schema}}.dataclips (run_id);

create table {{schema}}.run_events (
  id bigint generated always as identity primary key,
  run_id text collate "C" not null,
  kind text not null,
  step_key text collate "C",
  attempt integer,
  data jsonb,
  created_at timestamptz not null default now()
);
create index run_events_run on {{schema}}.run_events (run_id, id);

-- What a parked step waits on: a time, a token completed by API, or a child run.
create table {{schema}}.waitpoints (
  id text collate "C" primary key,
  run_id text collate "C" not null references {{schema}}.runs (id) on delete cascade,
  step_run_id text collate "C" not null references {{schema}}.step_runs (id) on delete cascade,
  environment_id text collate "C" not null,
  kind text not null check (kind in ('sleep', 'approval', 'child_run')),
  status text not null default 'waiting' check (status in ('waiting', 'completed', 'timed_out', 'canceled')),
  resume_at timestamptz,
  child_run_id text collate "C",
  payload_schema jsonb,
  payload_dataclip_id text collate "C",
  created_at timestamptz not null default now(),
  completed_at timestamptz
);
create index waitpoints_due on {{schema}}.waitpoints (resume_at) where status = 'waiting';
create index waitpoints_child on {{schema}}.waitpoints (child_run_id) where child_run_id is not null;
create index waitpoints_step on {{schema}}.waitpoints (step_run_id);

-- Ids minted inside SQL (join inputs, merged final states) share the JavaScript format:
-- <prefix>_<tag><10 chars of ms time><16 random chars>, Crockford base32, lowercase.
create function {{schema}}.mint_id(p_prefix text) returns text
language plpgsql volatile as $$
declare
  alphabet constant text := '0123456789abcdefghjkmnpqrstvwxyz';
  ms bigint := floor(extract(epoch from clock_timestamp()) * 1000);
  out text := '';
begin
  for i in 1..10 loop
    out := substr(alphabet, (ms % 32)::int + 1, 1) || out;
    ms := ms / 32;
  end loop;
  for i in 1..16 loop
    out := out || substr(alphabet, floor(random() * 32)::int + 1, 1);
  end loop;
  return p_prefix || '_{{tag}}' || out;
end $$;

-- Claim the given ready step runs for a worker: mark them running with a lease, write their
-- attempt rows, start queued runs, log events. Returns what the worker needs to execute each step,
-- input body and run state included, so executing needs no further read.
-- Indexes: step_runs pk; runs pk; dataclips pk.
create function {{schema}}.claim_by_ids(p_ids text[], p_worker text, p_lease_ms integer)
returns table (
  step_run_id text, run_id text, step_id text, step_key text, workflow_id text, version_id text,
  environment_id text, attempt integer, max_attempts integer, input jsonb, state jsonb, save_dataclips boolean
)
language plpgsql as $$
begin
  return query
  with claimed as (
    update {{schema}}.step_runs s
       set status = 'running',
           attempt_count = s.attempt_count + 1,
           lease_owner = p_worker,
           lease_expires_at = now() + p_lease_ms * interval '1 millisecond',
           started_at = coalesce(s.started_at, now())
     where s.id = any(p_ids) and s.status = 'ready'
    returning s.id, s.run_id, s.step_id, s.step_key, s.workflow_id, s.environment_id, s.attempt_count,
              s.max_attempts, s.input_dataclip_id
  ), new_attempts as (
    insert into {{schema}}.attempts (step_run_id, number, run_id, worker_id, status)
    select c.id, c.attempt_count, c.run_id, p_worker, 'running' from claimed c
  ), started as (
    update {{schema}}.runs r set status = 'running', started_at = coalesce(r.started_at, now()), updated_at = now()
     where r.id in (select c.run_id from claimed c) and r.status = 'queued'
  ), logged as (
    insert into {{schema}}.run_events (run_id, kind, step_key, attempt, data)
    select c.run_id, 'step.started', c.step_key, c.attempt_count, jsonb_build_object('worker', p_worker) from claimed c
  )
  select c.id::text, c.run_id::text, c.step_id::text, c.step_key::text, c.workflow_id::text, r.version_id::text,
         c.environment_id::text, c.attempt_count, c.max_attempts, d.body, r.state, r.save_dataclips
    from claimed c
    join {{schema}}.runs r on r.id = c.run_id
    left join {{schema}}.dataclips d on d.id = c.input_dataclip_id;
end $$;

-- The worker's claim: one round trip. Picks up to p_limit ready rows of the given environments
-- and workflows from the partial index step_runs_ready, skipping rows other workers hold.
-- Concurrency limits (per step across runs, per run) are checked under an advisory lock per
-- limited key, held to the end of this statement's transaction, so two claimers cannot both take
-- the last slot; unlimited steps (the common case) skip that path entirely.
create function {{schema}}.claim_steps(p_worker text, p_envs text[], p_workflows text[], p_limit integer, p_lease_ms integer)
returns table (
  step_run_id text, run_id text, step_id text, step_key text, workflow_id text, version_id text,
  environment_id text, attempt integer, max_attempts integer, input jsonb, state jsonb, save_dataclips boolean
)
language plpgsql as $$
declare
  v_ids text[];
  v_limited record;
  v_keep text[] := '{}';
  v_taken jsonb := '{}';
  v_running integer;
begin
  select array_agg(p.id) into v_ids from (
    select s.id from {{schema}}.step_runs s
     where s.status = 'ready' and s.available_at <= now()
       and s.environment_id = any(p_envs) and s.workflow_id = any(p_workflows)
     order by s.available_at, s.id
     limit p_limit
     for update skip locked
  ) p;
  if v_ids is null then
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

-- Make a pending step run ready: resolve its input. One parent that succeeded: point at that
-- parent's output dataclip (no copy). A failed parent (through a failure edge): `{ error }`.
-- Several parents (a join): a new dataclip `{ [parentKey]: output | { error } }` over the live ones.
create function {{schema}}.make_ready(p_step_run_id text) returns void
language plpgsql as $$
declare
  s record;
  p record;
  v_body jsonb;
  v_input_id text;
  v_hash text;
begin
  select * into s from {{schema}}.step_runs where id = p_step_run_id;
  if cardinality(s.parents) = 1 then
    select sr.status, sr.error, sr.output_dataclip_id, d.body_hash into p
      from {{schema}}.step_runs sr left join {{schema}}.dataclips d on d.id = sr.output_dataclip_id
     where sr.run_id = s.run_id and sr.step_key = s.parents[1];
    if p.status = 'succeeded' then
      v_input_id := p.output_dataclip_id;
      v_hash := p.body_hash;
    else
      v_body := jsonb_build_object('error', p.error);
    end if;
  else
    select jsonb_object_agg(sr.step_id, case when sr.status = 'succeeded' then d.body else jsonb_build_object('error', sr.error) end)
      into v_body
      from {{schema}}.step_runs sr left join {{schema}}.dataclips d on d.id = sr.output_dataclip_id
     where sr.run_id = s.run_id and sr.step_key = any(s.live_from);
  end if;
  if v_input_id is null then
    v_input_id := {{schema}}.mint_id('dc');
    v_hash := md5(v_body::text);
    insert into {{schema}}.dataclips (id, run_id, environment_id, kind, body, body_hash, size_bytes)
    values (v_input_id, s.run_id, s.environment_id, 'step_input', v_body, v_hash, octet_length(v_body::text));
  end if;
  update {{schema}}.step_runs
     set status = 'ready', available_at = now(), input_dataclip_id = v_input_id, input_hash = v_hash
   where id = p_step_run_id;
end $$;

-- A step run resolved (succeeded or failed); its edges to p_live arrive live, to p_dead dead.
-- Successors whose parents are all resolved become ready (some edge arrived live) or pruned (none
-- did); pruning cascades along every edge of a pruned step. Returns the keys made ready and the
-- number pruned. Index: step_runs (run_id, step_key) unique.
-- Fast case, in the decrementing statement itself: a successor whose only parent is p_from and
-- whose edge is live becomes ready at once, its input pointing at p_from's output (p_output_id).
create function {{schema}}.propagate(
  p_run_id text, p_from text, p_live text[], p_dead text[], p_output_id text, p_output_hash text,
  p_claim_worker text default null, p_lease_ms integer default null,
  out ready text[], out pruned integer, out claimed jsonb
)
language plpgsql as $$
declare
  v_check text[] := '{}';
  v_next text[];
  r record;
begin
  ready := '{}';
  pruned := 0;
  -- `direct`: the only parent is p_from and its edge is live, so the successor is ready now with
  -- p_from's output as input. `take`: with p_claim_worker (the chain fast path), the first direct
  -- successor without a concurrency limit goes straight to running for that worker, in this same
  -- update (a limited one is left ready for the claim, which checks its limit).
  for r in
    update {{schema}}.step_runs u
       set pending_parents = u.pending_parents - 1,
           live_from = case when u.step_key = any(p_live) then array_append(u.live_from, p_from::text) else u.live_from end,
           status = case when f.take then 'running' when f.direct then 'ready' else u.status end,
           input_dataclip_id = case when f.direct then p_output_id else u.input_dataclip_id end,
           input_hash = case when f.direct then p_output_hash else u.input_hash end,
           available_at = case when f.direct then now() else u.available_at end,
           attempt_count = case when f.take then u.attempt_count + 1 else u.attempt_count end,
           lease_owner = case when f.take then p_claim_worker else u.lease_owner end,
           lease_expires_at = case when f.take then now() + p_lease_ms * interval '1 millisecond' else u.lease_expires_at end,
           started_at = case when f.take then coalesce(u.started_at, now()) else u.started_at end
      from (select d.id, d.direct,
                   d.direct and p_claim_worker is not null and d.concurrency_key is null
                     and row_number() over (partition by d.direct and d.concurrency_key is null order by d.id) = 1 as take
              from (select sr.id, sr.concurrency_key,
                           (sr.step_key = any(p_live) and sr.pending_parents = 1 and cardinality(sr.parents) = 1
                            and p_output_id is not null) as direct
                      from {{schema}}.step_runs sr
                     where sr.run_id = p_run_id and sr.step_key = any(p_live || p_dead) and sr.status = 'pending') d) f
     where u.id = f.id
    returning u.id, u.step_key, u.step_id, u.workflow_id, u.status, u.pending_parents, u.attempt_count, u.max_attempts
  loop
    if r.status = 'running' then
      ready := array_append(ready, r.step_key::text);
      claimed := jsonb_build_object('id', r.id, 'step_key', r.step_key, 'step_id', r.step_id,
                                    'workflow_id', r.workflow_id, 'attempt', r.attempt_count, 'max_attempts', r.max_attempts);
    elsif r.status = 'ready' then
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

-- Called when a resolved step readied nothing: at the top level, end the run if nothing is open;
-- inside a loop or parallel body, check whether that iteration or branch is complete.
create function {{schema}}.after_quiet(p_run_id text, p_scope_key text, p_iteration integer) returns text
language plpgsql as $$
begin
  if p_scope_key is null then
    return {{schema}}.finish_if_done(p_run_id);
  end if;
  perform {{schema}}.scope_check(p_run_id, p_scope_key, p_iteration);
  return (select status from {{schema}}.runs where id = p_run_id);
end $$;

-- A step inside the body of control node p_scope_key (iteration p_iteration) resolved and readied
-- nothing. The owner row is locked first (the same serialization as finish_if_done). When the
-- iteration has nothing open: open the next gated branch of a parallel, if any; when the whole
-- body has nothing open, the owner becomes ready so a worker runs its next transition.
-- Index: step_runs_open (run_id, scope_key, iteration).
create function {{schema}}.scope_check(p_run_id text, p_scope_key text, p_iteration integer) returns void
language plpgsql as $$
declare
  v_owner record;
  v_next integer;
begin
  select id, status, environment_id into v_owner from {{schema}}.step_runs
   where run_id = p_run_id and step_key = p_scope_key for update;
  if not found or v_owner.status <> 'waiting' then
    return;
  end if;
  if exists (select 1 from {{schema}}.step_runs where run_id = p_run_id and scope_key = p_scope_key and iteration = p_iteration
              and status in ('pending', 'ready', 'running', 'waiting')) then
    return;
  end if;
  -- open the next gated branch (its roots wait on a virtual parent)
  select min(iteration) into v_next from {{schema}}.step_runs
   where run_id = p_run_id and scope_key = p_scope_key and status = 'pending' and cardinality(parents) = 0 and pending_parents > 0;
  if v_next is not null then
    update {{schema}}.step_runs set status = 'ready', pending_parents = 0, available_at = now()
     where run_id = p_run_id and scope_key = p_scope_key and iteration = v_next and status = 'pending' and cardinality(parents) = 0;
    perform pg_notify('weft_ready', v_owner.environment_id);
    return;
  end if;
  if exists (select 1 from {{schema}}.step_runs where run_id = p_run_id and scope_key = p_scope_key
              and status in ('pending', 'ready', 'running', 'waiting')) then
    return;
  end if;
  update {{schema}}.step_runs set status = 'ready', available_at = now() where id = v_owner.id;
  perform pg_notify('weft_ready', v_owner.environment_id);
end $$;

-- Called when a commit readied nothing: if no step run of the run is open any more, end it.
-- The run row is locked first, so two transactions that each finish the last open branch
-- serialize here, and the second (re-reading after the first commits) sees the first's step run
-- resolved; without the lock each could see the other still running and neither would end the run.
-- Index: step_runs_open (partial, run_id).
create function {{schema}}.finish_if_done(p_run_id text) returns text
language plpgsql as $$
declare
  v_status text;
begin
  select status into v_status from {{schema}}.runs where id = p_run_id for update;
  if v_status <> 'running' then
    return v_status;
  end if;
  if exists (select 1 from {{schema}}.step_runs where run_id = p_run_id and status in ('pending', 'ready', 'running', 'waiting')) then
    return v_status;
  end if;
  perform {{schema}}.finish_run(p_run_id, 'succeeded', null);
  return 'succeeded';
end $$;

-- End a run. Final state: the succeeded step runs none of whose successors ran. One such leaf:
-- point at its output dataclip (no copy, no write). Several: one new dataclip { [key]: output }.
-- With save_dataclips off, every body of the run is dropped now (they were kept only while the run
-- was live, so that any worker could pick up any step and a crash loses nothing).
create function {{schema}}.finish_run(p_run_id text, p_status text, p_error jsonb) returns void
language plpgsql as $$
declare
  v_run record;
  v_count integer;
  v_single text;
  v_final text;
  v_body jsonb;
begin
  select id, environment_id, save_dataclips into v_run from {{schema}}.runs where id = p_run_id;
  select count(*), min(s.output_dataclip_id) into v_count, v_single
    from {{schema}}.step_runs s
   where s.run_id = p_run_id and s.status = 'succeeded' and s.scope_key is null
     and not exists (
       select 1 from {{schema}}.step_runs c
        where c.run_id = s.run_id and c.step_key = any(s.successors) and c.status in ('succeeded', 'failed'));
  if v_count = 1 then
    v_final := v_single;
  elsif v_count > 1 then
    select jsonb_object_agg(s.step_key, d.body) into v_body
      from {{schema}}.step_runs s join {{schema}}.dataclips d on d.id = s.output_dataclip_id
     where s.run_id = p_run_id and s.status = 'succeeded' and s.scope_key is null
       and not exists (
         select 1 from {{schema}}.step_runs c
          where c.run_id = s.run_id and c.step_key = any(s.successors) and c.status in ('succeeded', 'failed'));
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
  -- a child run ending wakes the parent step waiting on it (same location)
  with done as (
    update {{schema}}.waitpoints set status = 'completed', completed_at = now()
     where child_run_id = p_run_id and status = 'waiting' returning step_run_id, environment_id
  ), woke as (
    update {{schema}}.step_runs s set status = 'ready', available_at = now()
      from done where s.id = done.step_run_id and s.status = 'waiting'
    returning s.environment_id
  )
  select count(*) into v_count from (select pg_notify('weft_ready', environment_id) from woke) notified;
  -- No NOTIFY weft_run_finished here: the store signals it after the commit (see signals.ts).
end $$;

-- Commit a successful attempt: ONE round trip, ONE transaction (the statement's own).
-- Fenced by (step run, attempt number, worker, unexpired lease): a worker whose lease expired, or
-- whose step was reaped, canceled or re-claimed, changes nothing and gets status 'fenced'.
-- In that transaction: output dataclip, attempt and step run succeeded, state patch, successors
-- (joins, pruning), run completion and final state, events; and with p_claim_next the next ready
-- step of the same run is claimed for the same worker (the chain fast path: no claim round trip).
-- If the process dies before this commits, nothing of the attempt is kept: the lease expires and
-- the reaper counts the attempt as lost.
-- Statements on the chain path: fence update, dataclip insert, attempt update, successor update
-- (propagate), event insert, successor claim, attempt insert, state read; indexes used: the
-- primary keys, step_runs (run_id, step_key), step_runs_open.
create function {{schema}}.complete_step(
  p_step_run_id text, p_attempt integer, p_worker text,
  p_output text, p_output_id text,
  p_state_set jsonb, p_state_del text[],
  p_live text[], p_dead text[],
  p_claim_next boolean, p_lease_ms integer
) returns jsonb
language plpgsql as $$
declare
  s record;
  v_body jsonb := p_output::jsonb;
  v_hash text := md5(v_body::text);
  v_prop record;
  v_status text;
  v_state jsonb;
  c record;
  v_have_next boolean := false;
  v_input jsonb;
  v_next jsonb;
begin
  update {{schema}}.step_runs
     set status = 'succeeded', finished_at = now(), lease_owner = null, lease_expires_at = null,
         output_dataclip_id = p_output_id, error = null
   where id = p_step_run_id and status = 'running' and attempt_count = p_attempt
     and lease_owner = p_worker and lease_expires_at >= now()
  returning run_id, step_key, environment_id, scope_key, iteration into s;
  if not found then
    return jsonb_build_object('status', 'fenced');
  end if;

  insert into {{schema}}.dataclips (id, run_id, environment_id, kind, body, body_hash, size_bytes)
  values (p_output_id, s.run_id, s.environment_id, 'output', v_body, v_hash, octet_length(p_output));
  update {{schema}}.attempts set status = 'succeeded', finished_at = now()
   where step_run_id = p_step_run_id and number = p_attempt;

  if p_state_set is not null or p_state_del is not null then
    update {{schema}}.runs
       set state = (state - coalesce(p_state_del, '{}'::text[])) || coalesce(p_state_set, '{}'::jsonb), updated_at = now()
     where id = s.run_id
    returning status, state into v_status, v_state;
  end if;

  v_prop := {{schema}}.propagate(s.run_id, s.step_key, p_live, p_dead, p_output_id, v_hash,
                                 case when p_claim_next then p_worker end, p_lease_ms);

  insert into {{schema}}.run_events (run_id, kind, step_key, attempt, data)
  values (s.run_id, 'step.succeeded', s.step_key, p_attempt, jsonb_build_object(
    'outputDataclipId', p_output_id,
    'statePatch', case when p_state_set is null and p_state_del is null then null
                       else jsonb_build_object('set', p_state_set, 'delete', to_jsonb(p_state_del)) end));

  if cardinality(v_prop.ready) = 0 then
    v_status := {{schema}}.after_quiet(s.run_id, s.scope_key, s.iteration);
    return jsonb_build_object('status', 'committed', 'runStatus', v_status);
  end if;

  if p_claim_next then
    if v_prop.claimed is not null then
      -- claimed inside propagate's update (the chain fast path): its input is this output
      select (v_prop.claimed ->> 'id') as id, (v_prop.claimed ->> 'step_id') as step_id,
             (v_prop.claimed ->> 'step_key') as step_key, (v_prop.claimed ->> 'workflow_id') as workflow_id,
             (v_prop.claimed ->> 'attempt')::integer as attempt_count,
             (v_prop.claimed ->> 'max_attempts')::integer as max_attempts, p_output_id as input_dataclip_id
        into c;
      v_have_next := true;
    else
      -- a join made ready above: claim it unless it has a concurrency limit (the claim checks those)
      update {{schema}}.step_runs u
         set status = 'running', attempt_count = u.attempt_count + 1, lease_owner = p_worker,
             lease_expires_at = now() + p_lease_ms * interval '1 millisecond', started_at = coalesce(u.started_at, now())
       where u.id = (select id from {{schema}}.step_runs
                      where run_id = s.run_id and step_key = any(v_prop.ready) and status = 'ready'
                        and concurrency_key is null
                      order by id limit 1 for update skip locked)
      returning u.id, u.step_id, u.step_key, u.workflow_id, u.attempt_count, u.max_attempts, u.input_dataclip_id into c;
      v_have_next := found;
    end if;
    if v_have_next then
      insert into {{schema}}.attempts (step_run_id, number, run_id, worker_id, status)
      values (c.id, c.attempt_count, s.run_id, p_worker, 'running');
      insert into {{schema}}.run_events (run_id, kind, step_key, attempt, data)
      values (s.run_id, 'step.started', c.step_key, c.attempt_count, jsonb_build_object('worker', p_worker));
      if c.input_dataclip_id = p_output_id then
        v_input := v_body;
      else
        select body into v_input from {{schema}}.dataclips where id = c.input_dataclip_id;
      end if;
      if v_state is null then
        select status, state into v_status, v_state from {{schema}}.runs where id = s.run_id;
      end if;
      v_next := jsonb_build_object(
        'step_run_id', c.id, 'run_id', s.run_id, 'step_id', c.step_id, 'step_key', c.step_key,
        'workflow_id', c.workflow_id, 'environment_id', s.environment_id, 'attempt', c.attempt_count,
        'max_attempts', c.max_attempts, 'input', v_input, 'state', v_state);
    end if;
  end if;
  if cardinality(v_prop.ready) > (case when v_next is null then 0 else 1 end) then
    perform pg_notify('weft_ready', s.environment_id);
  end if;
  return jsonb_build_object('status', 'committed', 'runStatus', coalesce(v_status, 'running'), 'next', v_next);
end $$;

-- Cancel everything of a run that has not finished: running attempts (which fences them), open
-- step runs, and waitpoints. Returns the child runs those waitpoints were waiting on.
create function {{schema}}.cancel_open(p_run_id text) returns text[]
language plpgsql as $$
declare
  v_children text[];
begin
  update {{schema}}.attempts a set status = 'canceled', finished_at = now()
    from {{schema}}.step_runs sr
   where sr.run_id = p_run_id and sr.status = 'running' and a.step_run_id = sr.id and a.number = sr.attempt_count
     and a.status = 'running';
  update {{schema}}.step_runs set status = 'canceled', finished_at = now(), lease_owner = null, lease_expires_at = null
   where run_id = p_run_id and status in ('pending', 'ready', 'running', 'waiting');
  with w as (
    update {{schema}}.waitpoints set status = 'canceled', completed_at = now()
     where run_id = p_run_id and status = 'waiting' returning child_run_id
  )
  select coalesce(array_agg(child_run_id::text) filter (where child_run_id is not null), '{}') into v_children from w;
  return v_children;
end $$;

-- Record a failed attempt (p_attempt_status 'failed'), or a lost one found by the reaper ('lost').
-- p_retry_delay_ms not null: requeue after that delay. Null: the step is exhausted — it follows
-- its failure edges (failure_successors, or p_live/p_dead when the worker decided them, e.g. an
-- approval timeout). With no edge to follow: onExhausted 'pause' parks the step and pauses the run
-- (resume_run re-readies it); inside a loop or parallel body the owner fails (canceling the rest
-- of the body) or, for 'collect', the branch ends with this error; otherwise the run fails and
-- every unfinished step run of it is canceled (which fences their attempts). Any state draft of
-- the attempt is simply never written.
-- p_fence_worker: the worker must still hold an unexpired lease (worker path); the reaper passes
-- null and instead requires an expired lease, so a live worker's attempt is never reaped.
create function {{schema}}.fail_step(
  p_step_run_id text, p_attempt integer, p_fence_worker text, p_attempt_status text,
  p_error jsonb, p_retry_delay_ms integer, p_live text[] default null, p_dead text[] default null
) returns jsonb
language plpgsql as $$
declare
  s record;
  v_prop record;
  v_live text[];
  v_dead text[];
  v_owner record;
  v_children text[];
begin
  select id, run_id, step_key, environment_id, failure_successors, successors, on_exhausted, max_attempts,
         attempt_count, scope_key, iteration
    into s from {{schema}}.step_runs
   where id = p_step_run_id and status = 'running' and attempt_count = p_attempt
     and ((p_fence_worker is not null and lease_owner = p_fence_worker and lease_expires_at >= now())
       or (p_fence_worker is null and lease_expires_at < now()))
   for update;
  if not found then
    return jsonb_build_object('status', 'fenced');
  end if;

  update {{schema}}.attempts set status = p_attempt_status, error = p_error, finished_at = now()
   where step_run_id = p_step_run_id and number = p_attempt;

  if p_retry_delay_ms is not null and s.attempt_count < s.max_attempts then
    update {{schema}}.step_runs
       set status = 'ready', available_at = now() + p_retry_delay_ms * interval '1 millisecond',
           lease_owner = null, lease_expires_at = null, error = p_error
     where id = p_step_run_id;
    insert into {{schema}}.run_events (run_id, kind, step_key, attempt, data)
    values (s.run_id, case when p_attempt_status = 'lost' then 'step.lost' else 'step.retrying' end, s.step_key, p_attempt,
            jsonb_build_object('error', p_error, 'retryInMs', p_retry_delay_ms));
    perform pg_notify('weft_ready', s.environment_id);
    return jsonb_build_object('status', 'retrying', 'runId', s.run_id);
  end if;

  v_live := coalesce(p_live, s.failure_successors);
  v_dead := coalesce(p_dead, array(select unnest(s.successors) except select unnest(s.failure_successors)));

  if cardinality(v_live) = 0 and s.on_exhausted = 'pause' then
    update {{schema}}.step_runs set status = 'waiting', lease_owner = null, lease_expires_at = null, error = p_error
     where id = p_step_run_id;
    update {{schema}}.runs set status = 'paused', updated_at = now() where id = s.run_id and status = 'running';
    insert into {{schema}}.run_events (run_id, kind, step_key, attempt, data)
    values (s.run_id, 'run.paused', s.step_key, p_attempt, jsonb_build_object('error', p_error));
    return jsonb_build_object('status', 'failed', 'runStatus', 'paused', 'runId', s.run_id);
  end if;

  update {{schema}}.step_runs
     set status = 'failed', finished_at = now(), lease_owner = null, lease_expires_at = null, error = p_error
   where id = p_step_run_id;
  insert into {{schema}}.run_events (run_id, kind, step_key, attempt, data)
  values (s.run_id, 'step.failed', s.step_key, p_attempt, jsonb_build_object('error', p_error, 'lost', p_attempt_status = 'lost'));

  if cardinality(v_live) > 0 then
    v_prop := {{schema}}.propagate(s.run_id, s.step_key, v_live, v_dead, null, null);
    if cardinality(v_prop.ready) = 0 then
      return jsonb_build_object('status', 'failed', 'runStatus', {{schema}}.after_quiet(s.run_id, s.scope_key, s.iteration), 'runId', s.run_id);
    end if;
    perform pg_notify('weft_ready', s.environment_id);
    return jsonb_build_object('status', 'failed', 'runStatus', 'running', 'runId', s.run_id);
  end if;

  if s.scope_key is not null then
    select id, on_scope_failure into v_owner from {{schema}}.step_runs
     where run_id = s.run_id and step_key = s.scope_key for update;
    if v_owner.on_scope_failure = 'collect' then
      v_prop := {{schema}}.propagate(s.run_id, s.step_key, '{}', s.successors, null, null);
      perform {{schema}}.after_quiet(s.run_id, s.scope_key, s.iteration);
      return jsonb_build_object('status', 'failed', 'runStatus', 'running', 'runId', s.run_id);
    end if;
    -- fail fast: cancel the rest of the body, hand the owner the failure
    update {{schema}}.attempts a set status = 'canceled', finished_at = now()
      from {{schema}}.step_runs sr
     where sr.run_id = s.run_id and sr.scope_key = s.scope_key and sr.status = 'running'
       and a.step_run_id = sr.id and a.number = sr.attempt_count and a.status = 'running';
    perform {{schema}}.cancel_scope(s.run_id, s.scope_key);
    update {{schema}}.step_runs
       set status = 'ready', available_at = now(),
           error = jsonb_build_object('scopeFailure', jsonb_build_object('stepKey', s.step_key, 'error', p_error))
     where id = v_owner.id and status = 'waiting';
    perform pg_notify('weft_ready', s.environment_id);
    return jsonb_build_object('status', 'failed', 'runStatus', 'running', 'runId', s.run_id);
  end if;

  -- Fail the run: cancel what has not finished (a running attempt elsewhere is fenced by this).
  v_children := {{schema}}.cancel_open(s.run_id);
  perform {{schema}}.finish_run(s.run_id, 'failed',
    jsonb_build_object('stepKey', s.step_key, 'error', p_error));
  return jsonb_build_object('status', 'failed', 'runStatus', 'failed', 'runId', s.run_id, 'children', to_jsonb(v_children));
end $$;

-- Cancel every unfinished step run inside a body (nested bodies included: their keys carry the
-- owner's key as a prefix path) and the waitpoints they wait on.
create function {{schema}}.cancel_scope(p_run_id text, p_scope_key text) returns void
language plpgsql as $$
declare
  v_keys text[] := array[p_scope_key];
  v_next text[];
begin
  while cardinality(v_keys) > 0 loop
    with canceled as (
      update {{schema}}.step_runs set status = 'canceled', finished_at = now(), lease_owner = null, lease_expires_at = null
       where run_id = p_run_id and scope_key = any(v_keys) and status in ('pending', 'ready', 'running', 'waiting')
      returning id, step_key, kind
    ), waits as (
      update {{schema}}.waitpoints set status = 'canceled', completed_at = now()
       where step_run_id in (select id from canceled) and status = 'waiting'
    )
    select coalesce(array_agg(step_key::text) filter (where kind in ('forEach', 'times', 'while', 'parallel')), '{}')
      into v_next from canceled;
    v_keys := v_next;
  end loop;
end $$;

-- A control node ends a transition by parking: it waits (status 'waiting', no worker held) on a
-- waitpoint and/or on the body step runs it materializes here. Fenced like a commit.
-- p_park: { waitpoint?: { id, kind, resumeAt?, childRunId?, schema? },
--           body?: { onScopeFailure, nodes: [{ stepId, kind, parents[], successors[], failureSuccessors[],
--                    maxAttempts, onExhausted, concurrencyKey?, concurrencyLimit? }],
--                    iterations: [{ iteration, input (JSON text), gated }] } }
-- Body step run keys: `<stepId><owner's index path>[<iteration>]`.
create function {{schema}}.park_step(p_step_run_id text, p_attempt integer, p_worker text, p_park jsonb) returns jsonb
language plpgsql as $$
declare
  s record;
  v_path text;
  it jsonb;
  v_input_id text;
  v_input jsonb;
  v_ready integer := 0;
  w jsonb := p_park -> 'waitpoint';
  b jsonb := p_park -> 'body';
begin
  update {{schema}}.step_runs
     set status = 'waiting', lease_owner = null, lease_expires_at = null, error = null,
         on_scope_failure = coalesce(b ->> 'onScopeFailure', on_scope_failure)
   where id = p_step_run_id and status = 'running' and attempt_count = p_attempt
     and lease_owner = p_worker and lease_expires_at >= now()
  returning run_id, step_key, environment_id, workflow_id into s;
  if not found then
    return jsonb_build_object('status', 'fenced');
  end if;
  update {{schema}}.attempts set status = 'succeeded', finished_at = now()
   where step_run_id = p_step_run_id and number = p_attempt;
  if w is not null then
    insert into {{schema}}.waitpoints (id, run_id, step_run_id, environment_id, kind, resume_at, child_run_id, payload_schema)
    values (w ->> 'id', s.run_id, p_step_run_id, s.environment_id, w ->> 'kind', (w ->> 'resumeAt')::timestamptz,
            w ->> 'childRunId', w -> 'schema');
  end if;
  if b is not null then
    v_path := coalesce(substring(s.step_key from '(\[.*)$'), '');
    for it in select value from jsonb_array_elements(b -> 'iterations') loop
      v_input := (it ->> 'input')::jsonb;
      v_input_id := {{schema}}.mint_id('dc');
      insert into {{schema}}.dataclips (id, run_id, environment_id, kind, body, body_hash, size_bytes)
      values (v_input_id, s.run_id, s.environment_id, 'step_input', v_input, md5(v_input::text), octet_length(it ->> 'input'));
      insert into {{schema}}.step_runs (id, run_id, environment_id, workflow_id, step_id, step_key, kind, scope_key, iteration,
                                        status, pending_parents, parents, successors, failure_successors, max_attempts,
                                        on_exhausted, concurrency_key, concurrency_limit, input_dataclip_id, input_hash)
      select {{schema}}.mint_id('sr'), s.run_id, s.environment_id, s.workflow_id, n.step_id,
             n.step_id || v_path || '[' || (it ->> 'iteration') || ']', n.kind, s.step_key, (it ->> 'iteration')::integer,
             case when cardinality(n.parents) = 0 and not (it ->> 'gated')::boolean then 'ready' else 'pending' end,
             case when cardinality(n.parents) = 0 then (case when (it ->> 'gated')::boolean then 1 else 0 end) else cardinality(n.parents) end,
             array(select p || v_path || '[' || (it ->> 'iteration') || ']' from unnest(n.parents) p),
             array(select p || v_path || '[' || (it ->> 'iteration') || ']' from unnest(n.successors) p),
             array(select p || v_path || '[' || (it ->> 'iteration') || ']' from unnest(n.failure_successors) p),
             n.max_attempts, n.on_exhausted, n.concurrency_key, n.concurrency_limit,
             case when cardinality(n.parents) = 0 then v_input_id end,
             case when cardinality(n.parents) = 0 then md5(v_input::text) end
        from jsonb_to_recordset(b -> 'nodes') as n(step_id text, kind text, parents text[], successors text[],
             failure_successors text[], max_attempts integer, on_exhausted text, concurrency_key text, concurrency_limit integer);
      if not (it ->> 'gated')::boolean then
        v_ready := v_ready + 1;
      end if;
    end loop;
  end if;
  insert into {{schema}}.run_events (run_id, kind, step_key, attempt, data)
  values (s.run_id, 'step.waiting', s.step_key, p_attempt, jsonb_build_object(
    'waitpoint', w, 'iterations', case when b is null then null else jsonb_array_length(b -> 'iterations') end));
  if v_ready > 0 then
    perform pg_notify('weft_ready', s.environment_id);
  end if;
  return jsonb_build_object('status', 'parked');
end $$;

-- Complete an approval token with a payload (already validated against its schema by the API):
-- the payload becomes a dataclip and the step becomes ready for the worker to finish it.
create function {{schema}}.complete_waitpoint(p_id text, p_env text, p_payload text) returns jsonb
language plpgsql as $$
declare
  w record;
  v_payload_id text;
  v_body jsonb := p_payload::jsonb;
begin
  select * into w from {{schema}}.waitpoints where id = p_id and environment_id = p_env for update;
  if not found then
    return jsonb_build_object('status', 'not_found');
  end if;
  if w.status <> 'waiting' then
    return jsonb_build_object('status', 'not_waiting', 'waitpointStatus', w.status, 'completedAt', w.completed_at, 'runId', w.run_id);
  end if;
  if w.kind <> 'approval' then
    return jsonb_build_object('status', 'wrong_kind', 'kind', w.kind, 'runId', w.run_id);
  end if;
  v_payload_id := {{schema}}.mint_id('dc');
  insert into {{schema}}.dataclips (id, run_id, environment_id, kind, body, body_hash, size_bytes)
  values (v_payload_id, w.run_id, w.environment_id, 'waitpoint_payload', v_body, md5(v_body::text), octet_length(p_payload));
  update {{schema}}.waitpoints set status = 'completed', completed_at = now(), payload_dataclip_id = v_payload_id where id = p_id;
  update {{schema}}.step_runs set status = 'ready', available_at = now() where id = w.step_run_id and status = 'waiting';
  insert into {{schema}}.run_events (run_id, kind, data)
  values (w.run_id, 'waitpoint.completed', jsonb_build_object('waitpointId', p_id, 'payloadDataclipId', v_payload_id));
  perform pg_notify('weft_ready', w.environment_id);
  return jsonb_build_object('status', 'completed', 'runId', w.run_id, 'stepRunId', w.step_run_id, 'payloadDataclipId', v_payload_id);
end $$;

-- Timers: sleeps that are due complete, approvals past their timeout time out; either way the step
-- becomes ready and a worker finishes it. Several processes may run this: skip locked.
-- Index: waitpoints_due (partial, resume_at).
create function {{schema}}.fire_due_waitpoints(p_limit integer) returns integer
language plpgsql as $$
declare
  w record;
  n integer := 0;
begin
  for w in
    select id, run_id, step_run_id, environment_id, kind from {{schema}}.waitpoints
     where status = 'waiting' and resume_at <= now()
     order by resume_at limit p_limit for update skip locked
  loop
    update {{schema}}.waitpoints set status = case when w.kind = 'sleep' then 'completed' else 'timed_out' end, completed_at = now()
     where id = w.id;
    update {{schema}}.step_runs set status = 'ready', available_at = now() where id = w.step_run_id and status = 'waiting';
    insert into {{schema}}.run_events (run_id, kind, data)
    values (w.run_id, case when w.kind = 'sleep' then 'waitpoint.completed' else 'waitpoint.timed_out' end, jsonb_build_object('waitpointId', w.id));
    perform pg_notify('weft_ready', w.environment_id);
    n := n + 1;
  end loop;
  return n;
end $$;

-- Cancel a run: no new attempts (open step runs canceled, which fences running attempts), waits
-- canceled, the run ends 'canceled'; NOTIFY weft_cancel lets workers abort ctx.signal at once.
-- Returns the child runs it was waiting on, which the caller cancels in turn (they may live in
-- other locations).
create function {{schema}}.cancel_run(p_run_id text, p_env text, p_reason text) returns jsonb
language plpgsql as $$
declare
  v_status text;
  v_children text[];
begin
  select status into v_status from {{schema}}.runs where id = p_run_id and environment_id = p_env for update;
  if not found then
    return jsonb_build_object('status', 'not_found');
  end if;
  if v_status in ('succeeded', 'failed', 'canceled') then
    return jsonb_build_object('status', 'not_active', 'runStatus', v_status);
  end if;
  v_children := {{schema}}.cancel_open(p_run_id);
  perform {{schema}}.finish_run(p_run_id, 'canceled', jsonb_build_object('reason', p_reason));
  perform pg_notify('weft_cancel', p_run_id);
  return jsonb_build_object('status', 'canceled', 'children', to_jsonb(v_children));
end $$;

-- Resume a paused run: the steps that paused it become ready with a fresh attempt budget
-- (p_budgets: { stepId: maxAttempts }), optionally on another workflow version.
create function {{schema}}.resume_run(p_run_id text, p_env text, p_version_id text, p_budgets jsonb) returns jsonb
language plpgsql as $$
declare
  v_status text;
  v_steps text[];
begin
  select status into v_status from {{schema}}.runs where id = p_run_id and environment_id = p_env for update;
  if not found then
    return jsonb_build_object('status', 'not_found');
  end if;
  if v_status <> 'paused' then
    return jsonb_build_object('status', 'not_paused', 'runStatus', v_status);
  end if;
  update {{schema}}.runs set status = 'running', version_id = coalesce(p_version_id, version_id), updated_at = now() where id = p_run_id;
  with resumed as (
    update {{schema}}.step_runs
       set status = 'ready', available_at = now(),
           max_attempts = attempt_count + coalesce((p_budgets ->> step_id)::integer, max_attempts)
     where run_id = p_run_id and status = 'waiting' and kind in ('step', 'router') and error is not null
    returning step_key
  )
  select coalesce(array_agg(step_key::text), '{}') into v_steps from resumed;
  insert into {{schema}}.run_events (run_id, kind, data)
  values (p_run_id, 'run.resumed', jsonb_build_object('steps', to_jsonb(v_steps), 'versionId', p_version_id));
  perform pg_notify('weft_ready', p_env);
  return jsonb_build_object('status', 'resumed', 'steps', to_jsonb(v_steps));
end $$;

-- Extend the leases a worker still holds; returns the ids it holds (a missing id means the lease
-- was lost: reaped, canceled or fenced, and the worker must abort that attempt).
create function {{schema}}.extend_leases(p_worker text, p_ids text[], p_lease_ms integer) returns text[]
language sql as $$
  with extended as (
    update {{schema}}.step_runs set lease_expires_at = now() + p_lease_ms * interval '1 millisecond'
     where id = any(p_ids) and status = 'running' and lease_owner = p_worker and lease_expires_at >= now()
    returning id
  )
  select coalesce(array_agg(id::text), '{}') from extended
$$;

-- Group commit: several finished attempts in ONE statement, ONE transaction, ONE WAL flush.
-- Items are applied in the order given; the caller sorts them by run id so that concurrent
-- batches lock run rows in the same order. Each item is fenced on its own: a fenced item does not
-- affect the others. Returns the per-item results of complete_step, in order.
create function {{schema}}.complete_steps(p_items jsonb) returns jsonb
language plpgsql as $$
declare
  item jsonb;
  results jsonb := '[]';
begin
  for item in select value from jsonb_array_elements(p_items) loop
    results := results || jsonb_build_array({{schema}}.complete_step(
      item->>'stepRunId', (item->>'attempt')::integer, item->>'worker',
      item->>'output', item->>'outputId',
      -- JSON null means "no patch" (SQL NULL); `state || 'null'` would turn the state into an array
      nullif(item->'stateSet', 'null'::jsonb),
      case when item->'stateDelete' = 'null'::jsonb or item->'stateDelete' is null then null
           else array(select jsonb_array_elements_text(item->'stateDelete')) end,
      array(select jsonb_array_elements_text(item->'live')), array(select jsonb_array_elements_text(item->'dead')),
      (item->>'claimNext')::boolean, (item->>'leaseMs')::integer));
  end loop;
  return results;
end $$;
