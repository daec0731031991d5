-- Abort the chained commit's statement (store/runs/chain-commit.ts) when its attempt was fenced
-- in and its successor, seen eligible at the statement's start, could no longer be claimed: a
-- transaction that committed meanwhile changed that step run (a cancel of its scope, say). The
-- error rolls the whole statement back, so nothing of the attempt is kept, and the store commits
-- the attempt again with complete_step, which takes every other path (propagate). SQLSTATE WF001
-- is the store's own: nothing else raises it.
create or replace function {{schema}}.chain_take_conflict(p_step_run_id text, p_successor text) returns boolean
language plpgsql volatile as $$
begin
  raise exception 'the chained commit of step run % could not take its successor %', p_step_run_id, p_successor
    using errcode = 'WF001';
end $$;
