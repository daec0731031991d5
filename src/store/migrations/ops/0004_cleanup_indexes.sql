-- Cleanup of a deleted environment's run data (control migration 0006, cleanup-store.ts) deletes
-- by environment id: bulk reruns had no index that starts with it (idempotency keys have their
-- primary key).
create index bulk_reruns_environment on {{schema}}.bulk_reruns (environment_id);
