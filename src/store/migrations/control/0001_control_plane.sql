-- Control plane: tenancy, API keys and workflow versions. Small, slowly changing data.
-- Ids use COLLATE "C" everywhere so database order and JavaScript comparisons agree byte for byte.

create table {{schema}}.organizations (
  id text collate "C" primary key,
  name text not null,
  -- feature flags read through the cache-first resolver, e.g. {"runs.location": "b0"}
  flags jsonb not null default '{}',
  created_at timestamptz not null default now()
);

create table {{schema}}.projects (
  id text collate "C" primary key,
  organization_id text collate "C" not null references {{schema}}.organizations (id) on delete cascade,
  name text not null,
  save_dataclips boolean not null default true,
  retention_days integer check (retention_days is null or retention_days > 0),
  created_at timestamptz not null default now(),
  unique (organization_id, name)
);

create table {{schema}}.environments (
  id text collate "C" primary key,
  project_id text collate "C" not null references {{schema}}.projects (id) on delete cascade,
  name text not null,
  created_at timestamptz not null default now(),
  unique (project_id, name)
);

-- A key is shown once; only its sha256 is stored. token_prefix ("weft_dev_ab12") helps humans
-- tell keys apart in listings without revealing them.
create table {{schema}}.api_keys (
  id text collate "C" primary key,
  environment_id text collate "C" not null references {{schema}}.environments (id) on delete cascade,
  token_hash text not null unique,
  token_prefix text not null,
  label text,
  created_at timestamptz not null default now(),
  revoked_at timestamptz,
  last_used_at timestamptz
);

create table {{schema}}.workflows (
  environment_id text collate "C" not null references {{schema}}.environments (id) on delete cascade,
  id text collate "C" not null,
  description text,
  current_version_id text collate "C",
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (environment_id, id)
);

-- Immutable: a changed definition is a new row. graph holds nodes (with per-step hashes) and edges.
create table {{schema}}.workflow_versions (
  id text collate "C" primary key,
  environment_id text collate "C" not null,
  workflow_id text collate "C" not null,
  version integer not null check (version > 0),
  hash text not null,
  graph jsonb not null,
  created_at timestamptz not null default now(),
  unique (environment_id, workflow_id, version),
  unique (environment_id, workflow_id, hash),
  foreign key (environment_id, workflow_id) references {{schema}}.workflows (environment_id, id) on delete cascade
);
