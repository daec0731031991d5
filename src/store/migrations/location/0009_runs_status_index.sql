-- Runs listed by status (GET /runs?status=failed): keyset order inside one status. Before it, a
-- status filter walked runs_env_created and filtered (the named prepared statement's generic
-- plan, from its sixth execution): a page of 50 runs of a rare status read the whole environment,
-- 255,750 rows removed by filter, 9,391 buffers, 93 ms at 256,000 runs; with it, 8 buffers and
-- 0.06 ms (bench/store-plans.ts, bench/RESULTS.md 2026-11-29). RunStore.listRuns sends one
-- `status = $n` branch per status, each an ordered, limited scan of this index.
create index runs_env_status_created on {{schema}}.runs (environment_id, status, created_at desc, id desc);
