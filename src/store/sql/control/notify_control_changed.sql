-- `weft_control_changed`: a control-plane row changed. Listeners: ControlStore.watchChanges.
-- Row-level since control migration 0006: the payload is `<schema> <organization id>` (every
-- process drops that organization's cached keys, environments, flags and current versions: the
-- per-organization epoch), or `<schema>` alone when the organization cannot be found any more (a
-- cascade is deleting its parents) or when fired per statement: every process drops everything.
-- The schema lets processes of another Weft schema in the same database ignore it. PostgreSQL
-- folds identical payloads within one transaction, so deleting an organization with many keys
-- sends a handful of notifications. These tables change rarely (no per-request write such as a
-- last-used timestamp), so the commit-time lock a notifying transaction takes costs nothing
-- measurable. Indexes: the primary keys of environments and projects.
create or replace function {{schema}}.notify_control_changed() returns trigger language plpgsql as $$
declare
  r record;
  v_org text;
begin
  if tg_level = 'ROW' then
    if tg_op = 'DELETE' then r := old; else r := new; end if;
    if tg_table_name = 'organizations' then
      v_org := r.id;
    elsif tg_table_name = 'projects' then
      v_org := r.organization_id;
    elsif tg_table_name = 'environments' then
      select p.organization_id into v_org from {{schema}}.projects p where p.id = r.project_id;
    else
      -- api_keys, workflows: through their environment
      select p.organization_id into v_org
        from {{schema}}.environments e join {{schema}}.projects p on p.id = e.project_id
       where e.id = r.environment_id;
    end if;
  end if;
  perform pg_notify('weft_control_changed', '{{schema}}' || coalesce(' ' || v_org, ''));
  return null;
end
$$;
