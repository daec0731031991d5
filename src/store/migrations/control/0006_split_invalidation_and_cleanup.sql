-- Control-plane / run-ops split (docs/scale.md, docs/operations.md "Split the databases").
--
-- 1. Cache invalidation per organization. The control tables' triggers become row-level and name
--    the organization a changed row belongs to: the payload of `weft_control_changed` is
--    `<schema> <organization id>` (every process drops that organization's cached keys,
--    environments, flags and current versions: the per-organization epoch), or `<schema>` alone
--    when the organization cannot be found any more (a cascade already removed its parent: every
--    process drops everything). Identical payloads in one transaction are folded by PostgreSQL, so
--    deleting an organization with many keys sends one notification per distinct payload.
--    Workflows notify too now (a new current version reaches every server before its next read).
--    The function (row and statement aware) is src/store/sql/control/notify_control_changed.sql.
drop trigger api_keys_changed on {{schema}}.api_keys;
drop trigger environments_changed on {{schema}}.environments;
drop trigger projects_changed on {{schema}}.projects;
drop trigger organizations_changed on {{schema}}.organizations;

create trigger api_keys_changed after insert or update or delete on {{schema}}.api_keys
  for each row execute function {{schema}}.notify_control_changed();
create trigger environments_changed after insert or update or delete on {{schema}}.environments
  for each row execute function {{schema}}.notify_control_changed();
create trigger projects_changed after insert or update or delete on {{schema}}.projects
  for each row execute function {{schema}}.notify_control_changed();
create trigger organizations_changed after insert or update or delete on {{schema}}.organizations
  for each row execute function {{schema}}.notify_control_changed();
create trigger workflows_changed after insert or update of current_version_id or delete on {{schema}}.workflows
  for each row execute function {{schema}}.notify_control_changed();

-- 2. Cleanup of deleted tenants' run data. No foreign key crosses the split (run tables live in
--    other databases), so deleting an environment, a project or an organization records one job
--    per environment here, in the same transaction as the delete; `weft server` and `weft worker`
--    work the jobs off in bounded batches (src/store/cleanup-store.ts). A job is resumable: every
--    batch is its own transaction and deletes by environment id, so a crash repeats at most one
--    batch's work, and the job is done only when no run table of any location holds a row of
--    the environment.
create table {{schema}}.cleanup_jobs (
  environment_id text collate "C" primary key,
  organization_id text collate "C" not null,
  project_id text collate "C" not null,
  -- what was deleted: 'environment', 'project' or 'organization' (for the log and the operator)
  reason text not null check (reason in ('environment', 'project', 'organization')),
  status text not null default 'pending' check (status in ('pending', 'done')),
  -- rows deleted so far, per table (jsonb counters; informational)
  deleted jsonb not null default '{}',
  batches integer not null default 0,
  lease_owner text,
  lease_expires_at timestamptz,
  last_error text,
  requested_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  done_at timestamptz
);
create index cleanup_jobs_pending on {{schema}}.cleanup_jobs (requested_at) where status = 'pending';
