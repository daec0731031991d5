-- Issue 9 (listing across locations): every id column of a location compares byte for byte
-- (COLLATE "C"), so that the keyset order PostgreSQL returns, `(created_at, id) < (…)` in SQL,
-- and the in-memory merge of several locations' pages (JavaScript `<` on ASCII ids,
-- src/store/runs/queries.ts) agree. Under a locale collation (en_US.UTF-8 ignores punctuation at
-- first level, so `run_a0…` vs `run_b1…` may sort by their later characters) a page boundary
-- would skip or repeat rows.
-- The tables of 0001 were created this way; this migration makes it a checked property of every
-- location, whatever created its columns: any text column that holds an id (`id`, `*_id`,
-- `rerun_of`, `reused_from`) and does not collate "C" is altered to it (index rebuilt). A
-- location already right is not touched.
do $$
declare
  c record;
begin
  for c in
    select table_name, column_name
      from information_schema.columns
     where table_schema = '{{schema}}'
       and data_type = 'text'
       and (column_name = 'id' or column_name like '%\_id' or column_name in ('rerun_of', 'reused_from'))
       and column_name not in ('worker_id')
       and coalesce(collation_name, '') <> 'C'
       and table_name in (select table_name from information_schema.tables
                           where table_schema = '{{schema}}' and table_type = 'BASE TABLE')
  loop
    execute format('alter table %I.%I alter column %I type text collate "C"', '{{schema}}', c.table_name, c.column_name);
  end loop;
end
$$;
