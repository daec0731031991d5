-- One idempotency table per run-ops database, apart from the run tables (SCALE.md): a trigger
-- claims (environment, workflow, key) here; when the run's location is in this database the claim
-- and the run insert share one statement.
--   state 'claimed': run_id is set and the run exists (or is being created in the same txn).
--   state 'pending': claimed ahead of creating the run in another database; expires_at bounds it.
create table {{schema}}.idempotency_keys (
  environment_id text collate "C" not null,
  workflow_id text collate "C" not null,
  key text collate "C" not null,
  run_id text collate "C" not null,
  input_hash text not null,
  state text not null default 'claimed' check (state in ('pending', 'claimed')),
  expires_at timestamptz not null,
  created_at timestamptz not null default now(),
  primary key (environment_id, workflow_id, key)
);

create index idempotency_keys_expiry on {{schema}}.idempotency_keys (expires_at);
