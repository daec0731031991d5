-- Extend the leases a worker still holds; returns the ids it holds (a missing id means the lease
-- was lost: reaped, canceled or fenced, and the worker must abort that attempt).
create or replace function {{schema}}.extend_leases(p_worker text, p_ids text[], p_lease_ms integer) returns text[]
language sql
set enable_seqscan = off -- by key only: README.md, "By id"
as $$
  with extended as (
    update {{schema}}.step_runs set lease_expires_at = now() + p_lease_ms * interval '1 millisecond'
     where id = any(p_ids) and (status || '') = 'running' -- by id: README.md
       and lease_owner = p_worker and lease_expires_at >= now()
    returning id
  )
  select coalesce(array_agg(id::text), '{}') from extended
$$;
