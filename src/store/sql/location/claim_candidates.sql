-- The ready step runs of one environment a claim takes, oldest first, up to p_limit, locked
-- (rows other workers hold are skipped). One ordered walk of the partial index step_runs_ready
-- (environment_id, available_at, id) from its start, stopping after p_limit rows: the cost of a
-- claim does not grow with the number of ready rows behind them. Rows of workflows the worker does
-- not serve are read and passed over.
-- The walk is the only plan allowed: planned on estimates (a burst after a quiet spell, a fresh
-- database), PostgreSQL read every ready row and sorted them, or ANDed two bitmaps, to keep 20:
-- 600–950 buffers per claim while 1,000 runs were ready. `environment_id = any(...)` cannot be
-- read in index order on PostgreSQL 15, hence one call per environment (claim_steps).
create or replace function {{schema}}.claim_candidates(p_env text, p_workflows text[], p_limit integer)
returns text[]
language plpgsql
set enable_seqscan = off
set enable_bitmapscan = off
set enable_sort = off
as $$
begin
  return (select coalesce(array_agg(c.id), '{}') from (
    select s.id::text as id from {{schema}}.step_runs s
     where s.status = 'ready' and s.environment_id = p_env and s.available_at <= now()
       and s.workflow_id = any(p_workflows)
     order by s.available_at, s.id
     limit p_limit
     for update skip locked
  ) c);
end $$;
