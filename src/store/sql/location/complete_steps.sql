-- Group commit: several finished attempts in ONE statement, ONE transaction, ONE WAL flush.
-- Items are applied in the order given; the caller sorts them by run id so that concurrent
-- batches lock run rows in the same order. Each item is fenced on its own: a fenced item does not
-- affect the others. Returns the per-item results of complete_step, in order.
create or replace function {{schema}}.complete_steps(p_items jsonb) returns jsonb
language plpgsql as $$
declare
  item jsonb;
  results jsonb := '[]';
begin
  for item in select value from jsonb_array_elements(p_items) loop
    results := results || jsonb_build_array({{schema}}.complete_step(
      item->>'stepRunId', (item->>'attempt')::integer, item->>'worker',
      item->>'output', item->>'outputId',
      -- JSON null means "no patch" (SQL NULL); `state || 'null'` would turn the state into an array
      nullif(item->'stateSet', 'null'::jsonb),
      case when item->'stateDelete' = 'null'::jsonb or item->'stateDelete' is null then null
           else array(select jsonb_array_elements_text(item->'stateDelete')) end,
      array(select jsonb_array_elements_text(item->'live')), array(select jsonb_array_elements_text(item->'dead')),
      (item->>'claimNext')::boolean, (item->>'leaseMs')::integer));
  end loop;
  return results;
end $$;
