-- SQL as code: the functions of this schema live in src/store/sql/<set>/<name>.sql, one per
-- operation, applied by the migrator after the DDL migrations in one transaction (migrator.ts).
-- This table records the content hash of the function set applied, so that a process that does
-- not migrate (weft worker, weft server) can refuse functions it does not know. One row.
-- From this migration on, a migration creates tables and indexes only, never a function.
create table {{schema}}.weft_functions (
  id boolean primary key default true check (id),
  hash text not null,
  files integer not null,
  applied_at timestamptz not null default now()
);
