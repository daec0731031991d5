-- The run state a rerun starts with, across a lineage of reruns: the function
-- replay_rerun_state lives in src/store/sql/location/replay_rerun_state.sql (functions are code,
-- applied after the DDL; migration 0007). This migration changes no table; it is kept so that
-- migration numbers stay consecutive.
select 1;
