-- The run statuses a run never leaves. The one SQL copy: the list is rendered from
-- ENDED_RUN_STATUSES in src/core/statuses.ts (the TypeScript copy) by the migrator.
create or replace function {{schema}}.run_ended(p_status text) returns boolean
language sql immutable parallel safe as $$
  select p_status in ({{ended_run_statuses}})
$$;
