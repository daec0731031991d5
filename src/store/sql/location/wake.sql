-- Wake-ups without NOTIFY in the transaction (signals.ts: a transaction that NOTIFYs commits
-- alone, with no group commit). A function that makes work ready records the environment here;
-- the top-level function returns `woken()` in its result and the store sends `weft_ready` after
-- the commit (RunStore → Signals). The list lives in a transaction-local setting, so nothing leaks
-- to the next transaction on the connection, and a rolled-back transaction wakes nobody.
create or replace function {{schema}}.wake(p_env text) returns void
language sql volatile as $$
  select set_config('weft.wake',
    case when coalesce(current_setting('weft.wake', true), '') = '' then p_env
         when p_env = any(string_to_array(current_setting('weft.wake', true), ',')) then current_setting('weft.wake', true)
         else current_setting('weft.wake', true) || ',' || p_env end, true)
$$;

-- The environments woken so far in this transaction (as a JSON array), and forget them: each
-- top-level function's result carries its own (complete_steps returns one list per item).
create or replace function {{schema}}.woken() returns jsonb
language plpgsql volatile as $$
declare
  v text := coalesce(current_setting('weft.wake', true), '');
begin
  if v = '' then
    return '[]'::jsonb;
  end if;
  perform set_config('weft.wake', '', true);
  return to_jsonb(string_to_array(v, ','));
end $$;

-- A top-level function's jsonb result with the environments it woke (see woken()).
create or replace function {{schema}}.with_woken(p_result jsonb) returns jsonb
language sql volatile as $$
  select p_result || jsonb_build_object('wake', {{schema}}.woken())
$$;
