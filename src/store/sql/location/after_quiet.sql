-- Called when a resolved step readied nothing: at the top level, end the run if nothing is open;
-- inside a loop or parallel body, check whether that iteration or branch is complete.
create or replace function {{schema}}.after_quiet(p_run_id text, p_scope_key text, p_iteration integer) returns text
language plpgsql as $$
begin
  if p_scope_key is null then
    return {{schema}}.finish_if_done(p_run_id);
  end if;
  perform {{schema}}.scope_check(p_run_id, p_scope_key, p_iteration);
  return (select status from {{schema}}.runs where id = p_run_id);
end $$;
