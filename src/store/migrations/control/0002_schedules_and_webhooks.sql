-- Triggers that live in the control plane: cron schedules and webhooks.

-- ── schedules (owned by the scheduler) ─────────────────────────────────────────────────────────
-- A schedule fires runs of one workflow on a cron expression in a time zone. The input of each run
-- is chosen when the run starts (see SEMANTICS.md, Cron input). Exactly one run per
-- (schedule, slot) is guaranteed by the run-ops idempotency key `schedule:<id>:<slot>`.
create table {{schema}}.schedules (
  id text collate "C" primary key,
  environment_id text collate "C" not null references {{schema}}.environments (id) on delete cascade,
  workflow_id text collate "C" not null,
  -- schedules registered in code have a name, unique per environment and workflow
  name text,
  source text not null default 'api' check (source in ('api', 'code')),
  cron text not null,
  timezone text not null default 'UTC',
  input_mode text not null default 'none'
    check (input_mode in ('none', 'static', 'previous_final_state', 'previous_step_output')),
  input_value jsonb,
  input_step text,
  count_manual_runs boolean not null default false,
  overlap text not null default 'allow' check (overlap in ('allow', 'skip', 'queue', 'cancel_previous')),
  catch_up text not null default 'none' check (catch_up in ('none', 'last', 'all')),
  catch_up_limit integer not null default 10 check (catch_up_limit between 1 and 1000),
  enabled boolean not null default true,
  -- the next slot to fire; the scheduler advances it in the transaction that fires the slot
  next_slot_at timestamptz,
  -- the slot at next_slot_at is held back (overlap `queue`, or a previous-run input waiting for an
  -- active run to end): it fires as soon as it is unblocked, whatever its age and the catch-up policy
  next_slot_held boolean not null default false,
  last_slot_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create unique index schedules_name on {{schema}}.schedules (environment_id, workflow_id, name) where name is not null;
-- the due-schedules query of each environment's scheduler: an index range scan over enabled rows
-- up to now, oldest slot first (schedule-store.ts listDueSchedules)
create index schedules_due on {{schema}}.schedules (environment_id, next_slot_at) where enabled;

-- ── webhooks (owned by the webhook trigger) ────────────────────────────────────────────────────
-- `POST /hooks/{id}` starts a run of the workflow; the request (method, headers, query, body) is its
-- input dataclip (kind `webhook_request`). The id is the capability: no API key is asked, so it
-- carries 130 bits of fresh randomness besides its time-ordered body (see webhook-store.ts).
create table {{schema}}.webhooks (
  id text collate "C" primary key,
  environment_id text collate "C" not null references {{schema}}.environments (id) on delete cascade,
  workflow_id text collate "C" not null,
  -- a note for people ("stripe payments"); never interpreted
  label text,
  -- shared secret for `x-weft-signature: sha256=<hex HMAC-SHA256 of the raw body>`; null means
  -- unsigned requests are accepted. Kept in clear: verifying an HMAC needs the key itself.
  secret text,
  enabled boolean not null default true,
  created_at timestamptz not null default now()
);
create index webhooks_environment on {{schema}}.webhooks (environment_id, created_at);
