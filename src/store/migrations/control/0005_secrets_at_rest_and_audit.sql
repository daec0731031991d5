-- Webhook secrets encrypted at rest, and the audit trail (issue 11).

-- ── webhook secrets ──────────────────────────────────────────────────────────────────────────────
-- `secret` now holds `v1.<iv>.<tag>.<ciphertext>` (AES-256-GCM, the webhook id as associated data)
-- and `secret_key_id` the id of the key that sealed it (src/core/secret-box.ts). A row with a secret
-- and no key id is a secret written before this migration, still in clear: SQL cannot encrypt it
-- (the key lives in the process environment, never in the database), so the store re-seals it the
-- first time it is read by a process that has a key, and `weft secrets rotate` re-seals them all.
alter table {{schema}}.webhooks add column secret_key_id text;
-- what `weft secrets rotate` looks for: secrets in clear or sealed with a key other than the current
create index webhooks_secret_key on {{schema}}.webhooks (secret_key_id) where secret is not null;

-- ── audit trail ──────────────────────────────────────────────────────────────────────────────────
-- Who did what over the API: cancel, resume, rerun (one and bulk), waitpoint completion, keys
-- created and revoked, environments and projects paused or changed, organization flags. One row per
-- action that took effect (a refused or no-op request writes none). `seq` orders the rows and is
-- the keyset cursor of GET /api/v1/audit. Actor columns are copied, not referenced: the row must
-- outlive the key (a revoked key's actions stay attributed).
create table {{schema}}.audit_log (
  seq bigint generated always as identity primary key,
  at timestamptz not null default now(),
  -- the environment of the acting key: GET /api/v1/audit shows an admin its environment's rows
  environment_id text collate "C" not null,
  actor_key_id text collate "C" not null,
  actor_key_prefix text not null,
  actor_label text,
  action text not null,
  target_type text not null,
  target_id text collate "C" not null,
  -- what the action needs to be understood later (scopes granted, flags set, run ids of a bulk)
  details jsonb,
  request_id text
);
create index audit_log_environment on {{schema}}.audit_log (environment_id, seq);
create index audit_log_target on {{schema}}.audit_log (environment_id, target_id, seq);
