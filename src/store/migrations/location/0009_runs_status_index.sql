-- Runs listed by status (GET /runs?status=failed): keyset order inside one status. Before it, a
-- status filter walked runs_env_created and filtered: once the server's named prepared statement
-- switched to its generic plan (after five executions) a page of 50 `failed` runs read about
-- 5,000 rows at 256,000 runs (bench/store-plans.ts, bench/RESULTS.md). RunStore.listRuns sends
-- one `status = $n` branch per status, each an ordered, limited scan of this index.
create index runs_env_status_created on {{schema}}.runs (environment_id, status, created_at desc, id desc);
