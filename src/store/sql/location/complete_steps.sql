-- Group commit: several finished attempts in ONE statement, ONE transaction, ONE WAL flush.
-- Items are applied in the order given; the caller sorts them by run id so that concurrent
-- batches lock run rows in the same order. Each item is fenced on its own: a fenced item does not
-- affect the others. Returns the per-item results of complete_step, in order.
-- The items are decoded by one jsonb_to_recordset (JSON arrays become text[], JSON null SQL NULL),
-- not field by field: a `->>` per argument and an `array(select jsonb_array_elements_text(…))`
-- subquery per array ran 11 extractions and 3 subqueries per item.
create or replace function {{schema}}.complete_steps(p_items jsonb) returns jsonb
language plpgsql as $$
declare
  it record;
  results jsonb[] := '{}';
begin
  for it in
    select * from rows from (jsonb_to_recordset(p_items) as (
      "stepRunId" text, attempt integer, worker text, output text, "outputId" text,
      "stateSet" jsonb, "stateDelete" text[], live text[], dead text[],
      "claimNext" boolean, "leaseMs" integer)) with ordinality as i
     order by i.ordinality
  loop
    results := results || {{schema}}.complete_step(
      it."stepRunId", it.attempt, it.worker, it.output, it."outputId",
      -- JSON null (no patch) is SQL NULL here already; `state || 'null'` would make an array
      it."stateSet", it."stateDelete",
      coalesce(it.live, '{}'), coalesce(it.dead, '{}'), it."claimNext", it."leaseMs");
  end loop;
  return to_jsonb(results);
end $$;
