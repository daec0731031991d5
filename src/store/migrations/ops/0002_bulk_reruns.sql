-- Bulk reruns: recovery after an outage. One action reruns many runs (e.g. every failed run of a
-- workflow since a time), each from its failed step or a given one, and reports its progress.
--
-- Durable and resumable: the selected runs are written here when the action is created (items,
-- in order), so a process that dies mid-way loses nothing; any process picks the action up again
-- (lease on the action row, skip locked) and goes on with the items still pending.
-- Exactly once per source run: an item is processed in ONE transaction that locks its row, checks
-- it is still pending, creates the rerun (create_rerun, in the location schema of the same run-ops
-- database) and marks the item done with the rerun's id. A crash before the commit leaves neither;
-- after it, both. (Rejected: creating the rerun, then marking the item in a second statement —
-- a crash between them would rerun that run again on resume.)
-- Lives in the run-ops database because the reruns it writes do; the action names its environment.
create table {{schema}}.bulk_reruns (
  id text collate "C" primary key,
  environment_id text collate "C" not null,
  workflow_id text collate "C" not null,
  -- the request's filter, as given: { workflowId, status[], createdFrom?, createdTo? }
  filter jsonb not null,
  -- null: each run from its own failed step
  from_step text,
  version text not null check (version in ('original', 'current')),
  status text not null default 'running' check (status in ('running', 'succeeded', 'failed')),
  total integer not null check (total > 0),
  done integer not null default 0,
  failed integer not null default 0,
  -- the process working on it, until when (a dead process's lease expires; another takes over)
  lease_owner text,
  lease_expires_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz
);
-- Pick-up: actions still running, whose lease is free or expired, oldest first.
create index bulk_reruns_open on {{schema}}.bulk_reruns (created_at) where status = 'running';

create table {{schema}}.bulk_rerun_items (
  bulk_id text collate "C" not null references {{schema}}.bulk_reruns (id) on delete cascade,
  position integer not null,
  source_run_id text collate "C" not null,
  status text not null default 'pending' check (status in ('pending', 'done', 'failed')),
  -- the rerun created for it (done), or why it could not be rerun (failed)
  rerun_id text collate "C",
  from_step text,
  error jsonb,
  updated_at timestamptz not null default now(),
  primary key (bulk_id, source_run_id)
);
-- The next batch: pending items of an action, in selection order.
create index bulk_rerun_items_pending on {{schema}}.bulk_rerun_items (bulk_id, position) where status = 'pending';
