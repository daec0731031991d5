-- One notification per changing statement (not per row), after the change: the payload is the
-- schema, so processes of another Weft schema in the same database ignore it. These tables change
-- rarely (no per-request write such as a last-used timestamp), so the commit-time lock a notifying
-- transaction takes costs nothing measurable; workflow registration does not notify (the
-- current-version cache is short and invalidated in-process).
create or replace function {{schema}}.notify_control_changed() returns trigger language plpgsql as $$
begin
  perform pg_notify('weft_control_changed', '{{schema}}');
  return null;
end
$$;
